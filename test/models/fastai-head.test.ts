/** fastai's `create_head(nf, n_out)` as vision_learner builds and initialises it. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { createFastaiHead, fastaiHeadLayout } from '../../src-main/engine/models/fastai-head.js';

before(async () => {
  await selectBackend();
});

function disposeModel(m: tf.LayersModel): void {
  for (const w of m.weights) w.dispose();
}

describe('fastai head', () => {
  test('layer sequence of create_head(512, 37): concat pool, BN, dropout 0.25, linear 512, ReLU, BN, dropout 0.5, linear 37', () => {
    const head = createFastaiHead({ numFeatures: 512, numClasses: 37, seed: 1 });
    try {
      const layers = head.layers.map((l) => `${l.getClassName()}:${l.name}`);
      assert.deepEqual(layers, [
        'InputLayer:head.input',
        'GlobalMaxPooling2D:head.pool_max',
        'GlobalAveragePooling2D:head.pool_avg',
        'Concatenate:head.concat',
        'BatchNormalization:head.bn1',
        'Dropout:head.drop1',
        'Dense:head.lin1',
        'ReLU:head.relu1',
        'BatchNormalization:head.bn2',
        'Dropout:head.drop2',
        'Dense:head.lin2',
      ]);
      const cfg = (name: string) => head.getLayer(name).getConfig() as Record<string, unknown>;
      assert.deepEqual([cfg('head.drop1').rate, cfg('head.drop2').rate], [0.25, 0.5]);
      assert.deepEqual([cfg('head.lin1').units, cfg('head.lin1').useBias, cfg('head.lin2').units, cfg('head.lin2').useBias], [512, false, 37, false]);
      for (const bn of ['head.bn1', 'head.bn2']) assert.deepEqual([cfg(bn).epsilon, cfg(bn).momentum], [1e-5, 0.9]);
      // PyTorch parameter count of the same head: 2*1024 + 1024*512 + 2*512 + 512*37.
      const trainable = head.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
      assert.equal(trainable, 546_304);
      assert.deepEqual(head.outputs[0].shape, [null, 37]);
    } finally {
      disposeModel(head);
    }
  });

  test('fastai dropout rule and options', () => {
    assert.deepEqual(fastaiHeadLayout({ numFeatures: 512, numClasses: 2 }), { sizes: [1024, 512, 2], dropouts: [0.25, 0.5], batchNorms: [true, true] });
    assert.deepEqual(fastaiHeadLayout({ numFeatures: 8, numClasses: 3, linFeatures: [64, 32], ps: 0.4 }).dropouts, [0.2, 0.2, 0.4]);
    assert.deepEqual(fastaiHeadLayout({ numFeatures: 8, numClasses: 3, concatPool: false, firstBn: false }), { sizes: [8, 512, 3], dropouts: [0.25, 0.5], batchNorms: [false, true] });
    assert.throws(() => fastaiHeadLayout({ numFeatures: 8, numClasses: 3, ps: [0.1] }), /1 dropout values for 2 linear layers/);
    assert.throws(() => createFastaiHead({ numFeatures: 8, numClasses: 0 }), /numClasses must be a positive integer, got 0/);
    // Without a first BatchNorm the first Linear keeps its bias (fastai's LinBnDrop(bias=not bn)).
    const head = createFastaiHead({ numFeatures: 8, numClasses: 3, firstBn: false });
    assert.equal((head.getLayer('head.lin1').getConfig() as { useBias: boolean }).useBias, true);
    disposeModel(head);
  });

  test('init: untruncated Kaiming normal (std sqrt(2/fan_in)) for linears, BatchNorm weight 1 and bias 1e-3', () => {
    const head = createFastaiHead({ numFeatures: 512, numClasses: 37, seed: 7 });
    try {
      const w = head.getLayer('head.lin1').getWeights()[0];
      assert.deepEqual(w.shape, [1024, 512]);
      const v = w.dataSync() as Float32Array;
      let sum = 0;
      let sq = 0;
      for (const x of v) {
        sum += x;
        sq += x * x;
      }
      const mean = sum / v.length;
      const std = Math.sqrt(sq / v.length - mean * mean);
      const want = Math.sqrt(2 / 1024);
      assert.ok(Math.abs(mean) < (3 * want) / Math.sqrt(v.length), `mean ${mean}`);
      assert.ok(Math.abs(std / want - 1) < 0.01, `std ${std}, want ${want}`);
      // A normal has 4.55% of its mass beyond 2 std; TF.js' heNormal (truncated at 2 std) has none.
      const tails = v.filter((x) => Math.abs(x) > 2 * want).length / v.length;
      assert.ok(tails > 0.04 && tails < 0.051, `fraction beyond 2 std: ${tails}`);
      const w2 = head.getLayer('head.lin2').getWeights()[0].dataSync() as Float32Array;
      const std2 = Math.sqrt(w2.reduce((n, x) => n + x * x, 0) / w2.length);
      assert.ok(Math.abs(std2 / Math.sqrt(2 / 512) - 1) < 0.03, `lin2 std ${std2}`);
      for (const name of ['head.bn1', 'head.bn2']) {
        const [gamma, beta, mean0, var0] = head.getLayer(name).getWeights().map((t) => Array.from(t.dataSync()));
        assert.ok(gamma.every((g) => g === 1) && beta.every((b) => Math.abs(b - 1e-3) < 1e-9), name);
        assert.ok(mean0.every((m) => m === 0) && var0.every((x) => x === 1), name);
      }
    } finally {
      disposeModel(head);
    }
  });

  test('inference equals the formula: [max, avg] -> BN -> linear -> ReLU -> BN -> linear', () => {
    const nf = 3;
    const head = createFastaiHead({ numFeatures: nf, numClasses: 2, linFeatures: [4], seed: 3 });
    try {
      // Distinct running statistics, so a BatchNorm using the wrong statistic or epsilon shows.
      const setBn = (name: string, n: number, k: number) =>
        head.getLayer(name).setWeights([
          tf.tensor1d(Array.from({ length: n }, (_, i) => 0.5 + 0.1 * i * k)),
          tf.tensor1d(Array.from({ length: n }, (_, i) => -0.2 + 0.05 * i)),
          tf.tensor1d(Array.from({ length: n }, (_, i) => 0.3 * Math.sin(i + k))),
          tf.tensor1d(Array.from({ length: n }, (_, i) => 0.01 + 0.5 * i)),
        ]);
      setBn('head.bn1', 2 * nf, 1);
      setBn('head.bn2', 4, 2);
      // A 2x2 map per channel where max and mean differ.
      const fmap = [
        [1, -2, 0.5],
        [3, 0, -1],
        [-4, 2, 2],
        [0.5, 1, 6],
      ];
      const x = tf.tensor4d(fmap.flat(), [1, 2, 2, nf]);
      const got = Array.from((head.predict(x) as tf.Tensor).dataSync());

      const weights = (name: string) => head.getLayer(name).getWeights().map((t) => Array.from(t.dataSync()));
      const bn = (v: number[], name: string) => {
        const [g, b, m, s] = weights(name);
        return v.map((xi, i) => ((xi - m[i]) / Math.sqrt(s[i] + 1e-5)) * g[i] + b[i]);
      };
      const dense = (v: number[], name: string, units: number) => {
        const k = weights(name)[0];
        return Array.from({ length: units }, (_, o) => v.reduce((acc, xi, i) => acc + xi * k[i * units + o], 0));
      };
      const max = [0, 1, 2].map((c) => Math.max(...fmap.map((p) => p[c])));
      const avg = [0, 1, 2].map((c) => fmap.reduce((n, p) => n + p[c], 0) / 4);
      let h = bn([...max, ...avg], 'head.bn1');
      h = dense(h, 'head.lin1', 4).map((z) => Math.max(0, z));
      h = bn(h, 'head.bn2');
      const want = dense(h, 'head.lin2', 2);
      got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-5, `output ${i}: ${g} vs ${want[i]}`));
      x.dispose();
    } finally {
      disposeModel(head);
    }
  });

  test('training mode applies dropout; inference does not', () => {
    const head = createFastaiHead({ numFeatures: 16, numClasses: 4, seed: 5 });
    try {
      const x = tf.randomUniform([8, 3, 3, 16], 0, 1, 'float32', 11);
      const a = head.apply(x, { training: false }) as tf.Tensor;
      const b = head.apply(x, { training: false }) as tf.Tensor;
      const c = head.apply(x, { training: true }) as tf.Tensor;
      assert.equal(tf.tidy(() => a.sub(b).abs().max().dataSync()[0]), 0);
      assert.ok(tf.tidy(() => a.sub(c).abs().max().dataSync()[0]) > 1e-3);
      tf.dispose([x, a, b, c]);
    } finally {
      disposeModel(head);
    }
  });
});
