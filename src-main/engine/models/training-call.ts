/**
 * Replacing what a tfjs-layers layer computes while training, and only then: the training-time
 * forms in lazy-conv-gradients.ts and training-batch-norm.ts compute the same maths with cheaper
 * gradients; inference, export and the saved config keep the layer's own `call`.
 */
import type * as tf from '@tensorflow/tfjs';

/** `train(x)` runs for `training: true` calls; when it returns null the layer's own call runs. */
export function overrideTrainingCall(layer: tf.layers.Layer, train: (x: tf.Tensor) => tf.Tensor | null): void {
  const ownCall = layer.call.bind(layer);
  layer.call = (inputs, kwargs) => {
    if (kwargs?.training !== true) return ownCall(inputs, kwargs);
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return train(x) ?? ownCall(inputs, kwargs);
  };
}
