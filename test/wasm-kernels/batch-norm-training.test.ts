/**
 * Training-mode BatchNorm layers through one op with a closed-form gradient on wasm
 * (wasm-kernels/batch-norm-training.ts, models/training-batch-norm.ts) against tfjs-layers'
 * own composition on `cpu`: output, gradients for x, gamma and beta, and the moving averages.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useFastBatchNormTraining } from '../../src-main/engine/models/training-batch-norm.js';
import { randomArray, relativeMaxError, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

before(useWasmWithTrainingKernels);

interface Result {
  values: Float32Array[];
  kernels: string[];
}

/** One training call of a fresh BatchNormalization layer on `backend`; everything flattened. */
async function trainOnce(backend: 'cpu' | 'wasm', shape: number[], seed: number, fast: boolean): Promise<Result> {
  await tf.setBackend(backend);
  const c = shape[shape.length - 1];
  const r = rng(seed);
  // Channels with different means and scales, as real activations have.
  const x = tf.tensor(Float32Array.from({ length: sizeOf(shape) }, (_, i) => (r() * 2 - 1) * (1 + (i % c)) + (i % c) * 3), shape);
  const dy = tf.tensor(randomArray(sizeOf(shape), rng(seed + 1)), shape);
  const layer = tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 });
  layer.build(shape);
  layer.setWeights([tf.tensor(randomArray(c, rng(seed + 2))).add(1), tf.tensor(randomArray(c, rng(seed + 3))), tf.zeros([c]), tf.ones([c])]);
  if (fast) assert.equal(useFastBatchNormTraining([layer]), 1);
  const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
  const info = await tf.profile(() => {
    const f = (xx: tf.Tensor) => tf.sum(tf.mul(layer.apply(xx, { training: true }) as tf.Tensor, dy));
    const { value, grads } = tf.variableGrads(() => f(x) as tf.Scalar, [gamma, beta]);
    const dx = tf.grad((xx: tf.Tensor) => f(xx))(x);
    const y = layer.apply(x, { training: false }) as tf.Tensor; // inference after the (two) updates
    return [value, dx, grads[gamma.name], grads[beta.name], y];
  });
  const outs = info.result as tf.Tensor[];
  const values = [...outs, ...layer.getWeights().slice(2)].map((t) => t.dataSync() as Float32Array);
  tf.dispose([x, dy, ...outs]);
  for (const w of layer.weights) w.dispose();
  return { values, kernels: info.kernels.map((k) => k.name) };
}

test('matches tfjs-layers on cpu: loss, dx, dgamma, dbeta, moving mean and variance', async () => {
  const names = ['loss', 'dx', 'dgamma', 'dbeta', 'inference output', 'moving mean', 'moving variance'];
  for (const [i, shape] of [[3, 5, 7, 8], [2, 3, 3, 6], [6, 10], [16, 4, 4, 12]].entries()) {
    const reference = await trainOnce('cpu', shape, 10 * i, false);
    const actual = await trainOnce('wasm', shape, 10 * i, true);
    assert.ok(actual.kernels.includes('FinetuneBatchNormGrad'), `${shape}: the fast path ran (${[...new Set(actual.kernels)].join(', ')})`);
    reference.values.forEach((ref, k) => {
      const err = relativeMaxError(ref, actual.values[k]);
      assert.ok(err <= 1e-4, `${shape} ${names[k]}: relative max error ${err.toExponential(2)}`);
    });
  }
  await tf.setBackend('wasm');
});

test('inference and other backends keep the layer as it was', async () => {
  await tf.setBackend('cpu');
  const layer = tf.layers.batchNormalization({ axis: -1 });
  layer.build([2, 4]);
  useFastBatchNormTraining([layer]);
  const info = await tf.profile(() => layer.apply(tf.ones([2, 4]), { training: true }) as tf.Tensor);
  assert.ok(!info.kernels.some((k) => k.name.startsWith('Finetune')), 'cpu keeps the tfjs-layers path');
  for (const w of layer.weights) w.dispose();
  await tf.setBackend('wasm');
});
