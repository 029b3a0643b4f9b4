/**
 * ReLU layers capped at 6 (MobileNet's relu6) that train through one op. tfjs-layers' ReLU with
 * `maxValue` computes relu, then clipByValue: two passes forward and two gradient passes back per
 * layer (MobileNetV2 has 35). While training, tf.relu6 computes the same values in one pass, and
 * its gradient is the same mask (0 < x <= 6) in one pass (wasm-kernels/fused-grads.ts).
 * Inference, export and the saved config keep the layer's own call.
 */
import * as tf from '@tensorflow/tfjs';
import { overrideTrainingCall } from './training-call.js';

/** Switches the ReLU layers of `layers` whose maxValue is 6 to tf.relu6 while training. */
export function useRelu6Training(layers: Iterable<tf.layers.Layer>): number {
  let patched = 0;
  for (const layer of layers) {
    if (layer.getClassName() !== 'ReLU' || layer.getConfig().maxValue !== 6) continue;
    overrideTrainingCall(layer, (x) => tf.relu6(x));
    patched++;
  }
  return patched;
}
