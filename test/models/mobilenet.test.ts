/**
 * Real MobileNet weights end to end: file loading, preprocessing and the cut, judged by what the
 * network sees in real photos (../shared/data/oxford-pets-sample).
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { selectBackend } from '../../src-main/engine/backend.js';
import { CATALOGUE } from '../../src-main/engine/models/catalogue.js';
import { createModel, normalizePixels } from '../../src-main/engine/models/create-model.js';
import { loadLayersModelFromDisk } from '../../src-main/engine/models/layers-model-files.js';
import { cutAtLayer } from '../../src-main/engine/models/mobilenet.js';
import { PETS_SAMPLE, sharedPath, sharedSkipReason } from '../helpers/shared.js';

before(async () => {
  await selectBackend();
});

/** Resize the short side to `size` and take the centre square (torchvision's Resize + CenterCrop). */
async function centreCrop(file: string, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').resize(size, size, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3, file);
  return new Uint8Array(data);
}

async function pixelBatch(files: string[], size: number): Promise<tf.Tensor4D> {
  const out = new Uint8Array(files.length * size * size * 3);
  for (const [i, f] of files.entries()) out.set(await centreCrop(f, size), i * size * size * 3);
  return tf.tensor4d(out, [files.length, size, size, 3], 'int32');
}

describe('MobileNet v1 0.25 with its ImageNet classifier', () => {
  const skip = sharedSkipReason('weights', 'mobilenet_v1_0.25_224') || sharedSkipReason('data', 'oxford-pets-sample', 'Siamese_109.jpg');
  test("Siamese_109.jpg is 'Siamese cat' (284, p > 0.9); pug_127.jpg is 'pug' (254)", { skip }, async (t) => {
    const model = await loadLayersModelFromDisk(sharedPath('weights', 'mobilenet_v1_0.25_224'));
    try {
      const pixels = await pixelBatch([path.join(PETS_SAMPLE, 'Siamese_109.jpg'), path.join(PETS_SAMPLE, 'pug_127.jpg')], 224);
      const probs = tf.tidy(() => model.predict(normalizePixels(pixels, CATALOGUE['mobilenet_v1_0.25'].preprocessing)) as tf.Tensor2D);
      const rows = (await probs.array()) as number[][];
      tf.dispose([pixels, probs]);
      const top = rows.map((r) => r.reduce((best, p, i) => (p > r[best] ? i : best), 0));
      t.diagnostic(`Siamese_109: class ${top[0]} p=${rows[0][top[0]].toFixed(4)}; pug_127: class ${top[1]} p=${rows[1][top[1]].toFixed(4)}`);
      assert.equal(top[0], 284);
      assert.ok(rows[0][284] > 0.9, `p(Siamese cat) = ${rows[0][284]}`);
      assert.equal(top[1], 254);
    } finally {
      model.dispose();
    }
  });
});

describe('cutting a model at its feature layer', () => {
  test('a file that ends before the requested layer is refused, naming its last layers', { skip: sharedSkipReason('weights', 'mobilenet_v1_1.00_224_truncated') }, async () => {
    const model = await loadLayersModelFromDisk(sharedPath('weights', 'mobilenet_v1_1.00_224_truncated'));
    try {
      assert.throws(() => cutAtLayer(model, 'conv_pw_13_relu'), /no layer "conv_pw_13_relu" to cut at \(its last layers: .*conv_dw_13_relu\)/);
      const body = cutAtLayer(model, 'conv_dw_13_relu');
      assert.deepEqual(body.outputs[0].shape, [null, 7, 7, 1024]);
    } finally {
      model.dispose();
    }
  });
});

/** Plain logistic regression (full-batch gradient descent, L2), on standardised features. */
function logisticRegression(x: number[][], y: number[], steps = 400, lr = 0.5, l2 = 1e-2): (v: number[]) => number {
  const d = x[0].length;
  const mean = Array.from({ length: d }, (_, j) => x.reduce((n, r) => n + r[j], 0) / x.length);
  const std = Array.from({ length: d }, (_, j) => Math.sqrt(x.reduce((n, r) => n + (r[j] - mean[j]) ** 2, 0) / x.length) + 1e-6);
  const z = (v: number[]) => v.map((a, j) => (a - mean[j]) / std[j]);
  const xs = x.map(z);
  const w = new Float64Array(d);
  let b = 0;
  for (let s = 0; s < steps; s++) {
    const gw = new Float64Array(d);
    let gb = 0;
    for (const [i, r] of xs.entries()) {
      const p = 1 / (1 + Math.exp(-(r.reduce((n, a, j) => n + a * w[j], 0) + b)));
      const e = p - y[i];
      for (let j = 0; j < d; j++) gw[j] += e * r[j];
      gb += e;
    }
    for (let j = 0; j < d; j++) w[j] -= lr * (gw[j] / xs.length + l2 * w[j]);
    b -= (lr * gb) / xs.length;
  }
  return (v) => {
    const r = z(v);
    return 1 / (1 + Math.exp(-(r.reduce((n, a, j) => n + a * w[j], 0) + b)));
  };
}

describe('MobileNetV2 0.35 backbone features', () => {
  const skip = sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') || sharedSkipReason('data', 'oxford-pets-sample');
  test('a logistic regression on them tells cats from dogs well above chance', { skip }, async (t) => {
    // Cat breeds start with an uppercase letter. Every k-th file of each, so all breeds take part.
    const files = (await readdir(PETS_SAMPLE)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
    const pick = (list: string[], n: number) => Array.from({ length: n }, (_, i) => list[Math.floor((i * list.length) / n)]);
    const perClass = 60;
    const cats = pick(files.filter((f) => /^[A-Z]/.test(f)), perClass);
    const dogs = pick(files.filter((f) => /^[a-z]/.test(f)), perClass);

    const m = await createModel({ arch: 'mobilenet_v2_0.35', numClasses: 2, weights: { path: sharedPath('weights') } });
    try {
      const features = async (names: string[]) => {
        const out: number[][] = [];
        for (let i = 0; i < names.length; i += 20) {
          const pixels = await pixelBatch(names.slice(i, i + 20).map((f) => path.join(PETS_SAMPLE, f)), m.inputSize);
          const pooled = tf.tidy(() => (m.body.predict(normalizePixels(pixels, m.preprocessing)) as tf.Tensor4D).mean([1, 2]));
          out.push(...((await pooled.array()) as number[][]));
          tf.dispose([pixels, pooled]);
        }
        return out;
      };
      const catF = await features(cats);
      const dogF = await features(dogs);
      assert.equal(catF[0].length, 1280);
      // Alternate files between train and test: disjoint, and both halves cover all breeds.
      const half = <T>(a: T[], r: number) => a.filter((_, i) => i % 2 === r);
      const trainX = [...half(catF, 0), ...half(dogF, 0)];
      const trainY = [...half(catF, 0).map(() => 1), ...half(dogF, 0).map(() => 0)];
      const testX = [...half(catF, 1), ...half(dogF, 1)];
      const testY = [...half(catF, 1).map(() => 1), ...half(dogF, 1).map(() => 0)];
      const predict = logisticRegression(trainX, trainY);
      const correct = testX.filter((v, i) => (predict(v) > 0.5 ? 1 : 0) === testY[i]).length;
      const accuracy = correct / testX.length;
      t.diagnostic(`held-out accuracy ${correct}/${testX.length} = ${accuracy.toFixed(3)} (chance 0.5)`);
      assert.ok(accuracy >= 0.85, `cats vs dogs accuracy ${accuracy}`);
    } finally {
      m.dispose();
    }
  });
});
