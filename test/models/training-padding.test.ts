/**
 * ResNet's pads done by the layer after them while training (src-main/engine/models/training-padding.ts):
 * the same loss and gradients as with the ZeroPadding2D layers, no pad or Slice kernel left, and
 * the pads that must stay (not half the kernel, a max pool after something that can be negative)
 * kept.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { useLazyConvGradients } from '../../src-main/engine/models/lazy-conv-gradients.js';
import { usePaddedPoolsWhileTraining } from '../../src-main/engine/models/training-padding.js';

const pad = (x: tf.SymbolicTensor, padding: number | [[number, number], [number, number]], name: string) =>
  tf.layers.zeroPadding2d({ padding, name }).apply(x) as tf.SymbolicTensor;

/** A ResNet stem and downsampling conv in small, plus two pads that must stay. */
function buildNet(): tf.LayersModel {
  const input = tf.input({ shape: [13, 12, 3] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 7, strides: 2, padding: 'valid', useBias: false, name: 'stem' }).apply(pad(input, 3, 'stem.pad')) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  const relu = tf.layers.reLU({ name: 'relu' }).apply(x) as tf.SymbolicTensor;
  const pooled = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'pool' }).apply(pad(relu, 1, 'pool.pad')) as tf.SymbolicTensor;
  const down = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', name: 'down' }).apply(pad(pooled, 1, 'down.pad')) as tf.SymbolicTensor;
  // Kept: [0, 1] is not half the kernel; the pool reads the BatchNorm's output, which can be negative.
  const odd = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', name: 'odd' }).apply(pad(relu, [[0, 1], [0, 1]], 'odd.pad')) as tf.SymbolicTensor;
  const signed = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'signed' }).apply(pad(x, 1, 'signed.pad')) as tf.SymbolicTensor;
  const features = [down, odd, signed].map((t) => tf.layers.flatten().apply(t) as tf.SymbolicTensor);
  const out = tf.layers.dense({ units: 3, name: 'fc' }).apply(tf.layers.concatenate().apply(features)) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

const x = () => tf.randomNormal([4, 13, 12, 3], 0, 1, 'float32', 5);
const y = () => tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);

function trainingGrads(model: tf.LayersModel) {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y(), model.apply(x(), { training: true }) as tf.Tensor) as tf.Scalar, vars);
}

describe('pads absorbed while training', () => {
  before(async () => {
    await selectBackend({ force: 'cpu' });
  });

  test('same loss and gradients, and only the pads that must stay still run', async () => {
    // The reference is tfjs-layers' own net; the patched twin has its training-time forms.
    const reference = buildNet();
    const patched = buildNet();
    patched.setWeights(reference.getWeights());
    assert.equal(useLazyConvGradients(patched.layers), 3);
    assert.equal(usePaddedPoolsWhileTraining(patched.layers), 1);
    const a = trainingGrads(reference);
    const profile = await tf.profile(() => {
      const { value, grads } = trainingGrads(patched);
      return [value, ...Object.values(grads)];
    });
    const [value, ...grads] = profile.result as tf.Tensor[];
    assert.ok(Math.abs(a.value.dataSync()[0] - value.dataSync()[0]) <= 1e-6 * Math.abs(a.value.dataSync()[0]));
    Object.values(a.grads).forEach((g, i) => {
      const d = tf.max(tf.abs(tf.sub(g, grads[i]))).dataSync()[0];
      const scale = tf.max(tf.abs(g)).dataSync()[0];
      assert.ok(d <= 1e-5 * Math.max(scale, 1), `gradient ${i}: max |difference| ${d} (scale ${scale})`);
    });
    const pads = profile.kernels.filter((k) => k.name === 'PadV2').length;
    assert.equal(pads, 2, 'only odd.pad and signed.pad run');
    tf.dispose([a.value, ...Object.values(a.grads), value, ...grads]);
    // Inference keeps every pad layer's own call.
    const inference = await tf.profile(() => patched.predict(x()) as tf.Tensor);
    assert.equal(inference.kernels.filter((k) => k.name === 'PadV2').length, 5);
    const d = tf.max(tf.abs(tf.sub(reference.predict(x()) as tf.Tensor, inference.result as tf.Tensor))).dataSync()[0];
    assert.equal(d, 0);
  });
});
