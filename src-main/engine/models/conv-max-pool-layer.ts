/**
 * A convolution followed by a max pool: ResNet's stem (conv -> BatchNorm -> relu -> max pool) as
 * one layer of the folded inference model (inference-model.ts). On the wasm backend it is one
 * kernel (CONV_MAX_POOL2D), which pools the convolution's output as it writes it, so that the
 * full-size output never reaches memory. Elsewhere (tfjs-node, cpu) it is the fused convolution
 * and the max pool, the ops the unfolded model runs.
 *
 * Only inference builds it (from a rewritten topology), so it is not trainable and is never saved.
 */
import * as tf from '@tensorflow/tfjs';
import { CONV_MAX_POOL2D } from '../wasm-kernels/index.js';

export type PoolPad = 'same' | 'valid' | number;

export interface ConvMaxPoolArgs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  strides: [number, number];
  pad: PoolPad;
  dilations: [number, number];
  activation: 'linear' | 'relu' | 'relu6';
  poolSize: [number, number];
  poolStrides: [number, number];
  poolPad: PoolPad;
}

/** maxPool(activation(conv(x, filter) + bias)). */
export function convMaxPool2d(a: ConvMaxPoolArgs): tf.Tensor4D {
  if (tf.getKernel(CONV_MAX_POOL2D, tf.getBackend())) {
    const inputs = { x: a.x, filter: a.filter, bias: a.bias };
    const attrs = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dilations: a.dilations, activation: a.activation, poolSize: a.poolSize, poolStrides: a.poolStrides, poolPad: a.poolPad };
    return tf.engine().runKernel(CONV_MAX_POOL2D, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const y = tf.fused.conv2d({ x: a.x, filter: a.filter, bias: a.bias, strides: a.strides, pad: a.pad, dilations: a.dilations, activation: a.activation });
    return tf.maxPool(y, a.poolSize, a.poolStrides, a.poolPad);
  });
}

interface ConvMaxPoolConfig {
  filters: number;
  kernelSize: [number, number];
  strides: [number, number];
  /** 'same', 'valid', or pixels on every side (a ZeroPadding2D folded in); likewise poolPad. */
  pad: PoolPad;
  dilationRate: [number, number];
  activation: ConvMaxPoolArgs['activation'];
  poolSize: [number, number];
  poolStrides: [number, number];
  poolPad: PoolPad;
}

const pair = (v: number | number[]) => (Array.isArray(v) ? [v[0], v[1]] : [v, v]) as [number, number];

/** Input x; the output is the pool's. Weights: kernel, bias. */
export class ConvMaxPool2D extends tf.layers.Layer {
  static readonly className = 'FinetuneConvMaxPool2D';
  private readonly conv: ConvMaxPoolConfig;
  private kernel?: tf.LayerVariable;
  private bias?: tf.LayerVariable;

  constructor(args: ConvMaxPoolConfig & { name?: string; trainable?: boolean; dtype?: tf.DataType }) {
    super({ name: args.name, trainable: false, dtype: args.dtype });
    this.conv = {
      filters: args.filters,
      kernelSize: pair(args.kernelSize),
      strides: pair(args.strides),
      pad: args.pad,
      dilationRate: pair(args.dilationRate),
      activation: args.activation,
      poolSize: pair(args.poolSize),
      poolStrides: pair(args.poolStrides),
      poolPad: args.poolPad,
    };
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    const channels = shape[shape.length - 1];
    if (typeof channels !== 'number') throw new Error(`${this.name}: the input's channels must be known`);
    const [kh, kw] = this.conv.kernelSize;
    this.kernel = this.addWeight('kernel', [kh, kw, channels, this.conv.filters], 'float32', tf.initializers.zeros());
    this.bias = this.addWeight('bias', [this.conv.filters], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w] = inputShape as tf.Shape;
    const c = this.conv;
    // One spatial axis through the convolution and the pool (null: not known until called).
    const side = (size: number | null, axis: 0 | 1): number | null => {
      if (size === null) return null;
      const conv = tf.backend_util.computeConv2DInfo([1, size, size, 1], [c.kernelSize[axis], c.kernelSize[axis], 1, 1], c.strides[axis], c.dilationRate[axis], c.pad);
      return tf.backend_util.computePool2DInfo([1, conv.outHeight, conv.outHeight, 1], c.poolSize[axis], c.poolStrides[axis], 1, c.poolPad).outHeight;
    };
    return [n, side(h, 0), side(w, 1), c.filters];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const c = this.conv;
    return convMaxPool2d({
      x: (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D,
      filter: this.kernel!.read() as tf.Tensor4D,
      bias: this.bias!.read() as tf.Tensor1D,
      strides: c.strides,
      pad: c.pad,
      dilations: c.dilationRate,
      activation: c.activation,
      poolSize: c.poolSize,
      poolStrides: c.poolStrides,
      poolPad: c.poolPad,
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.conv };
  }
}
tf.serialization.registerClass(ConvMaxPool2D);
