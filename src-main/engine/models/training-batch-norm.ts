/**
 * BatchNormalization layers that train through one op with a closed-form gradient on the wasm
 * backend (wasm-kernels/batch-norm-training.ts) instead of tfjs-layers' composition of tf.moments
 * and batchNormalization, whose ~10 tape nodes per layer cost about a quarter of a MobileNetV2
 * training step there. Same maths (batch mean, biased batch variance, Keras' moving-average
 * update); other backends, inference and the saved model are untouched.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormTraining, canBatchNormTrain } from '../wasm-kernels/batch-norm-training.js';
import { overrideTrainingCall } from './training-call.js';

/** The fields of tfjs-layers' BatchNormalization that `call` reads (protected in its typings). */
interface BatchNormInternals {
  axis: number;
  epsilon: number;
  momentum: number;
  gamma: tf.LayerVariable | null;
  beta: tf.LayerVariable | null;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

/** Keras' update: moving -= (moving - value) * (1 - momentum). */
function movingAverage(variable: tf.LayerVariable, value: tf.Tensor, momentum: number): void {
  tf.tidy(() => {
    const current = variable.read();
    variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - momentum)));
  });
}

/** Switches the BatchNormalization layers of `layers` to the fused training op (wasm only). */
export function useFastBatchNormTraining(layers: Iterable<tf.layers.Layer>): number {
  let patched = 0;
  for (const layer of layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const bn = layer as unknown as BatchNormInternals & tf.layers.Layer;
    overrideTrainingCall(layer, (x) => {
      const lastAxis = bn.axis === -1 || bn.axis === x.rank - 1;
      if (!lastAxis || !bn.gamma || !bn.beta || !canBatchNormTrain(x)) return null;
      return tf.tidy(() => {
        const { y, mean, variance } = batchNormTraining(x, bn.gamma!.read(), bn.beta!.read(), bn.epsilon);
        movingAverage(bn.movingMean, mean, bn.momentum);
        movingAverage(bn.movingVariance, variance, bn.momentum);
        return y;
      });
    });
    patched++;
  }
  return patched;
}
