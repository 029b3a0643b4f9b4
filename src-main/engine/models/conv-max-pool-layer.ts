/**
 * A convolution followed by a max pool: ResNet's stem (conv -> BatchNorm -> relu -> max pool) as
 * one layer of the folded inference model (inference-model.ts). On the wasm backend it is one
 * kernel (CONV_MAX_POOL2D), which pools the convolution's output as it writes it, so that the
 * full-size output never reaches memory. Elsewhere (tfjs-node, cpu) it is the fused convolution
 * and the max pool, the ops the unfolded model runs.
 */
import * as tf from '@tensorflow/tfjs';
import { CONV_MAX_POOL2D } from '../wasm-kernels/index.js';
import { type FusedConvArgs, type FusedConvConfig, FusedConvLayer, type LayerPad, pair } from './fused-conv-layer.js';

/** The max pool after the convolution. */
interface MaxPoolAfter {
  poolSize: [number, number];
  poolStrides: [number, number];
  poolPad: LayerPad;
}

export type ConvMaxPoolArgs = FusedConvArgs & MaxPoolAfter;

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

type ConvMaxPoolConfig = FusedConvConfig & MaxPoolAfter;

/** Input x; the output is the pool's. Weights: kernel, bias. */
export class ConvMaxPool2D extends FusedConvLayer<ConvMaxPoolConfig> {
  static readonly className = 'FinetuneConvMaxPool2D';

  constructor(args: ConvMaxPoolConfig & { name?: string; dtype?: tf.DataType }) {
    super(args, { poolSize: pair(args.poolSize), poolStrides: pair(args.poolStrides), poolPad: args.poolPad });
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
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    const c = this.conv;
    return convMaxPool2d({ x, ...this.convArgs(), poolSize: c.poolSize, poolStrides: c.poolStrides, poolPad: c.poolPad });
  }
}
tf.serialization.registerClass(ConvMaxPool2D);
