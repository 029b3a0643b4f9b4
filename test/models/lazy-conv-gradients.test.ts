/**
 * Conv2D layers switched to lazy gradients (src-main/engine/models/lazy-conv-gradients.ts): the
 * same loss and gradients as tfjs-layers' fused path, but no filter gradient for a frozen layer
 * and no input gradient for the first layer; inference keeps the fused kernel.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { useLazyConvGradients } from '../../src-main/engine/models/lazy-conv-gradients.js';

function buildNet(): tf.LayersModel {
  const input = tf.input({ shape: [9, 9, 4] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'c1' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'c2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 4, kernelSize: 1, activation: 'relu6', name: 'c3' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'fc' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Two nets with identical weights, the second switched to lazy gradients. */
function twins(): [tf.LayersModel, tf.LayersModel] {
  const fused = buildNet();
  const lazy = buildNet();
  lazy.setWeights(fused.getWeights());
  assert.equal(useLazyConvGradients(lazy.layers), 3);
  return [fused, lazy];
}

const x = () => tf.randomNormal([5, 9, 9, 4], 0, 1, 'float32', 3);
const y = () => tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0], 'int32'), 3);

function trainingGrads(model: tf.LayersModel) {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y(), model.apply(x(), { training: true }) as tf.Tensor) as tf.Scalar, vars);
}

async function kernelCounts(f: () => tf.TensorContainer): Promise<Map<string, number>> {
  const info = await tf.profile(f);
  const counts = new Map<string, number>();
  for (const k of info.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

describe('lazy convolution gradients', () => {
  before(async () => {
    await selectBackend({ force: 'cpu' });
  });

  test('loss and every gradient equal the fused path', () => {
    const [fused, lazy] = twins();
    const a = trainingGrads(fused);
    const b = trainingGrads(lazy);
    assert.equal(a.value.dataSync()[0], b.value.dataSync()[0]);
    // Variable names differ between the twins (tfjs numbers them); their order does not.
    const ga = Object.values(a.grads);
    const gb = Object.values(b.grads);
    assert.equal(gb.length, ga.length);
    ga.forEach((g, i) => {
      const d = tf.max(tf.abs(tf.sub(g, gb[i]))).dataSync()[0];
      const scale = tf.max(tf.abs(g)).dataSync()[0];
      assert.ok(d <= 1e-6 * Math.max(scale, 1), `gradient ${i}: max |difference| ${d} (scale ${scale})`);
    });
    tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  });

  test('a frozen layer gets no filter gradient and the first layer no input gradient', async () => {
    const [fused, lazy] = twins();
    for (const m of [fused, lazy]) m.getLayer('c2').trainable = false;
    const run = (m: tf.LayersModel) => () => {
      const { value, grads } = trainingGrads(m);
      return [value, ...Object.values(grads)];
    };
    const before = await kernelCounts(run(fused));
    const after = await kernelCounts(run(lazy));
    // Fused (c1 and c2 linear: custom-gradient nodes; c3 relu6 is unfused while recording by tfjs
    // itself): dW and dx for all three. Lazy: dW for c1 and c3 only; dx for c2 and c3 only.
    assert.equal(before.get('Conv2DBackpropFilter'), 3);
    assert.equal(before.get('Conv2DBackpropInput'), 3);
    assert.equal(after.get('Conv2DBackpropFilter'), 2);
    assert.equal(after.get('Conv2DBackpropInput'), 2);
  });

  test('inference still runs the fused kernel and gives the same outputs', async () => {
    const [fused, lazy] = twins();
    const counts = await kernelCounts(() => lazy.predict(x()) as tf.Tensor);
    assert.equal(counts.get('FusedConv2D'), 3);
    assert.equal(counts.get('Conv2D'), undefined);
    const d = tf.max(tf.abs(tf.sub(fused.predict(x()) as tf.Tensor, lazy.predict(x()) as tf.Tensor))).dataSync()[0];
    assert.equal(d, 0);
  });
});
