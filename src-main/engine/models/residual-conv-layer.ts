/**
 * A convolution that adds a residual before its activation: the end of a ResNet block
 * (conv -> BatchNorm -> add shortcut -> relu) as one layer of the folded inference model
 * (inference-model.ts). On the wasm backend it is one kernel (RESIDUAL_CONV2D), whose Winograd
 * output transform adds the shortcut as it writes each output: no Add and no Relu pass over the
 * block's output. Elsewhere (tfjs-node, cpu) it is the fused convolution, the add and the
 * activation, the ops the unfolded model runs.
 *
 * Only inference builds it (from a rewritten topology), so it is not trainable and is never saved.
 */
import * as tf from '@tensorflow/tfjs';
import { RESIDUAL_CONV2D } from '../wasm-kernels/index.js';

export type ResidualActivation = 'linear' | 'relu' | 'relu6';

export interface ResidualConvArgs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  residual: tf.Tensor4D;
  strides: [number, number];
  pad: 'same' | 'valid' | number;
  dilations: [number, number];
  activation: ResidualActivation;
}

/** activation(conv(x, filter) + bias + residual). */
export function residualConv2d(a: ResidualConvArgs): tf.Tensor4D {
  if (tf.getKernel(RESIDUAL_CONV2D, tf.getBackend())) {
    const inputs = { x: a.x, filter: a.filter, bias: a.bias, residual: a.residual };
    const attrs = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dilations: a.dilations, activation: a.activation };
    return tf.engine().runKernel(RESIDUAL_CONV2D, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const sum = tf.add(tf.fused.conv2d({ x: a.x, filter: a.filter, bias: a.bias, strides: a.strides, pad: a.pad, dilations: a.dilations }), a.residual) as tf.Tensor4D;
    return a.activation === 'relu' ? tf.relu(sum) : a.activation === 'relu6' ? tf.relu6(sum) : sum;
  });
}

interface ResidualConvConfig {
  filters: number;
  kernelSize: [number, number];
  strides: [number, number];
  /** 'same', 'valid', or pixels on every side (a ZeroPadding2D folded in). */
  pad: 'same' | 'valid' | number;
  dilationRate: [number, number];
  activation: ResidualActivation;
}

/** Inputs [x, residual]; the output has the residual's shape. Weights: kernel, bias. */
export class ResidualConv2D extends tf.layers.Layer {
  static readonly className = 'FinetuneResidualConv2D';
  private readonly conv: ResidualConvConfig;
  private kernel?: tf.LayerVariable;
  private bias?: tf.LayerVariable;

  constructor(args: ResidualConvConfig & { name?: string; trainable?: boolean; dtype?: tf.DataType }) {
    super({ name: args.name, trainable: false, dtype: args.dtype });
    const pair = (v: number | number[]) => (Array.isArray(v) ? [v[0], v[1]] : [v, v]) as [number, number];
    this.conv = {
      filters: args.filters,
      kernelSize: pair(args.kernelSize),
      strides: pair(args.strides),
      pad: args.pad,
      dilationRate: pair(args.dilationRate),
      activation: args.activation,
    };
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const [xShape] = inputShape as tf.Shape[];
    const channels = xShape[xShape.length - 1];
    if (typeof channels !== 'number') throw new Error(`${this.name}: the input's channels must be known`);
    const [kh, kw] = this.conv.kernelSize;
    this.kernel = this.addWeight('kernel', [kh, kw, channels, this.conv.filters], 'float32', tf.initializers.zeros());
    this.bias = this.addWeight('bias', [this.conv.filters], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (inputShape as tf.Shape[])[1];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, residual] = inputs as tf.Tensor4D[];
    const c = this.conv;
    return residualConv2d({
      x,
      residual,
      filter: this.kernel!.read() as tf.Tensor4D,
      bias: this.bias!.read() as tf.Tensor1D,
      strides: c.strides,
      pad: c.pad,
      dilations: c.dilationRate,
      activation: c.activation,
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.conv };
  }
}
tf.serialization.registerClass(ResidualConv2D);
