/** Quick mode on real photos and the real MobileNetV2-0.35 backbone (tiny image size). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { DataLoader } from '../../src-main/engine/data/data-loader.js';
import { scanDataset } from '../../src-main/engine/data/dataset.js';
import { ImageCache } from '../../src-main/engine/data/image-cache.js';
import { prepareDataset } from '../../src-main/engine/data/prepare.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { imageNetwork, Learner } from '../../src-main/engine/train/learner.js';
import { computeFeatures, FeatureLoader, pooledHeadNetwork } from '../../src-main/engine/train/quick.js';
import { runTraining } from '../../src-main/engine/train/run-training.js';
import { makeTempDir } from '../helpers/images.js';
import { MOBILENET_V2_035, petsSubset, sharedSkipReason } from '../helpers/shared.js';

const skip = sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') || sharedSkipReason('data', 'oxford-pets-sample');
const SIZE = 32;

describe('quick mode: head training on cached body features', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  before(async () => {
    await selectBackend();
    ({ dir, cleanup } = await makeTempDir('fs-quick-'));
    root = await petsSubset(dir, 12);
  });
  after(() => cleanup?.());

  test('features are cached once; the trained head is the full model\'s head (same validation)', async () => {
    const scan = await scanDataset({ root, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.25, seed: 42 } });
    const cache = new ImageCache(path.join(dir, 'images'));
    const prepared = await prepareDataset(scan, { cache, size: SIZE });
    const model = await createModel({ arch: 'mobilenet_v2_0.35', numClasses: 2, weights: { path: MOBILENET_V2_035 }, inputSize: SIZE, head: { seed: 3 } });
    const items = [...prepared.train, ...prepared.valid];
    const featureDir = path.join(dir, 'features');
    let last = { done: 0, total: 0, fromCache: 0 };
    const features = await computeFeatures(model, items, cache, featureDir, { onProgress: (p) => (last = p) });
    assert.deepEqual(last, { done: items.length, total: items.length, fromCache: 0 });
    const again = await computeFeatures(model, items, cache, featureDir, { onProgress: (p) => (last = p) });
    assert.equal(last.fromCache, items.length, 'second pass reads every feature from the cache');
    assert.deepEqual(again, features);

    const dim = 2 * model.numFeatures;
    const nTrain = prepared.train.length;
    const headLearner = new Learner({
      network: pooledHeadNetwork(model),
      train: new FeatureLoader(prepared.train, features.subarray(0, nTrain * dim), dim, 4, true, 1),
      valid: new FeatureLoader(prepared.valid, features.subarray(nTrain * dim), dim, 4, false),
    });
    await headLearner.fitOneCycle(3, { lrMax: [1e-2] }, 'quick');
    const viaFeatures = await headLearner.validate();
    const common = { cache, size: SIZE, normalization: model.preprocessing, batchSize: 4 };
    const imageLearner = new Learner({
      network: imageNetwork(model),
      train: new DataLoader(prepared.train, { ...common, split: 'train' }),
      valid: new DataLoader(prepared.valid, { ...common, split: 'valid' }),
    });
    const viaImages = await imageLearner.validate();
    assert.ok(Math.abs(viaFeatures.loss - viaImages.loss) < 1e-4, `${viaFeatures.loss} vs ${viaImages.loss}`);
    assert.deepEqual(viaFeatures.confusion, viaImages.confusion);
    headLearner.dispose();
    imageLearner.dispose();
    model.dispose();
  });

  test('runTraining in quick mode: head epochs, then an optional unfrozen epoch', async () => {
    const base = {
      dataset: { root, label: { kind: 'is-cat' as const }, split: { kind: 'random' as const, validPct: 0.25, seed: 42 } },
      arch: 'mobilenet_v2_0.35',
      weights: { path: MOBILENET_V2_035 },
      size: SIZE,
      mode: 'quick' as const,
      quickEpochs: 3,
      cacheDir: path.join(dir, 'cache'),
    };
    const headOnly = await runTraining({ ...base, epochs: 0, outDir: path.join(dir, 'q0') });
    assert.equal(headOnly.status, 'completed');
    assert.deepEqual(headOnly.epochs.map((r) => r.phase), ['quick', 'quick', 'quick']);
    assert.ok(headOnly.validation);
    const withFineTune = await runTraining({ ...base, epochs: 1, outDir: path.join(dir, 'q1') });
    assert.deepEqual(withFineTune.epochs.map((r) => r.phase), ['quick', 'quick', 'quick', 'unfrozen']);
  });
});
