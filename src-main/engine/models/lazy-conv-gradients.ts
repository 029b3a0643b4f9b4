/**
 * Training-time convolutions whose gradients are computed only where they are needed.
 *
 * tfjs-layers' Conv2D always calls `tf.fused.conv2d`, and with a linear activation that op records
 * one custom-gradient node that computes the input gradient AND the filter gradient every time.
 * Two of those are wasted in fine-tuning: the filter gradients of frozen layers (fastai's first
 * phase freezes the whole body, so about a third of its backward convolutions) and the input
 * gradient of the first layer (nothing trains below it). Measured on ResNet-18 @224, WebAssembly:
 * about 45% of a frozen step and 3% of an unfrozen one.
 *
 * So while training (`training: true`) each Conv2D layer runs the same computation as plain ops
 * (Conv2D, then the bias add and the activation), whose registered gradients tfjs evaluates only
 * for inputs on the path to the variables asked for. Inference, export and the saved model are
 * untouched: the layer's config and weights do not change, and outside training it keeps the
 * fused kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { overrideTrainingCall } from './training-call.js';
import { absorbPaddingWhileTraining } from './training-padding.js';

/** The fields of tfjs-layers' Conv2D that `call` reads (protected in its typings). */
interface Conv2DInternals {
  kernel: { read(): tf.Tensor };
  bias: { read(): tf.Tensor } | null;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number[];
  kernelSize: number[];
  activation: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string };
}

/** `pad`: pixels on every side, of the ZeroPadding2D before it (see training-padding.ts), else its own. */
function trainingCall(layer: Conv2DInternals, x: tf.Tensor4D, pad?: number): tf.Tensor {
  return tf.tidy(() => {
    const strides = layer.strides as [number, number];
    const dilations = layer.dilationRate as [number, number];
    let y: tf.Tensor = tf.conv2d(x, layer.kernel.read() as tf.Tensor4D, strides, pad ?? (layer.padding as 'same' | 'valid'), 'NHWC', dilations);
    if (layer.bias) y = tf.add(y, layer.bias.read());
    return layer.activation.getClassName() === 'linear' ? y : layer.activation.apply(y);
  });
}

/** Switches every channels-last 2D convolution layer of `layers` to lazy gradients while training. */
export function useLazyConvGradients(layers: Iterable<tf.layers.Layer>): number {
  let patched = 0;
  for (const layer of layers) {
    if (layer.getClassName() !== 'Conv2D') continue;
    const conv = layer as unknown as Conv2DInternals & tf.layers.Layer;
    if (conv.dataFormat !== 'channelsLast' || !['same', 'valid'].includes(conv.padding)) continue;
    const undilated = conv.dilationRate.every((d) => d === 1);
    const pad = conv.padding === 'valid' && undilated ? absorbPaddingWhileTraining(layer, conv.kernelSize) : undefined;
    overrideTrainingCall(layer, (x) => trainingCall(conv, x as tf.Tensor4D, pad));
    patched++;
  }
  return patched;
}
