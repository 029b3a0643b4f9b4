/**
 * A convolution that adds a residual before its activation: the end of a ResNet block
 * (conv -> BatchNorm -> add shortcut -> relu) as one layer of the folded inference model
 * (inference-model.ts). On the wasm backend it is one kernel (RESIDUAL_CONV2D), whose Winograd
 * output transform adds the shortcut as it writes each output: no Add and no Relu pass over the
 * block's output. Elsewhere (tfjs-node, cpu) it is the fused convolution, the add and the
 * activation, the ops the unfolded model runs.
 */
import * as tf from '@tensorflow/tfjs';
import { RESIDUAL_CONV2D } from '../wasm-kernels/index.js';
import { type FusedConvArgs, type FusedConvConfig, FusedConvLayer } from './fused-conv-layer.js';

export interface ResidualConvArgs extends FusedConvArgs {
  residual: tf.Tensor4D;
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

/** Inputs [x, residual]; the output has the residual's shape. Weights: kernel, bias. */
export class ResidualConv2D extends FusedConvLayer<FusedConvConfig> {
  static readonly className = 'FinetuneResidualConv2D';

  constructor(args: FusedConvConfig & { name?: string; dtype?: tf.DataType }) {
    super(args, {});
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (inputShape as tf.Shape[])[1];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, residual] = inputs as tf.Tensor4D[];
    return residualConv2d({ x, residual, ...this.convArgs() });
  }
}
tf.serialization.registerClass(ResidualConv2D);
