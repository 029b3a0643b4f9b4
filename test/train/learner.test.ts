/**
 * The learner on real photos and the real MobileNetV2-0.35 backbone from ../shared, at a tiny image
 * size so a whole fine_tune takes seconds: what freezing trains, lr_find's restore, tensor leaks,
 * cancel, resume and reproducibility.
 */
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { DataLoader } from '../../src-main/engine/data/data-loader.js';
import { scanDataset } from '../../src-main/engine/data/dataset.js';
import { ImageCache } from '../../src-main/engine/data/image-cache.js';
import { prepareDataset } from '../../src-main/engine/data/prepare.js';
import { createModel, isBatchNorm, type FinetuneModel } from '../../src-main/engine/models/create-model.js';
import { CancelledError, imageNetwork, Learner } from '../../src-main/engine/train/learner.js';
import { runTraining, type RunRecord, type TrainConfig } from '../../src-main/engine/train/run-training.js';
import { findLearningRate } from '../../src-main/worker/jobs/lr-find.js';
import { makeTempDir } from '../helpers/images.js';
import { MOBILENET_V2_035, petsSubset, sharedSkipReason } from '../helpers/shared.js';

const skip = sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') || sharedSkipReason('data', 'oxford-pets-sample');
const SIZE = 32;

async function values(v: tf.LayerVariable): Promise<Float32Array> {
  return (await v.read().data()) as Float32Array;
}
const changed = (a: Float32Array, b: Float32Array) => a.some((x, i) => x !== b[i]);

describe('Learner on MobileNetV2-0.35 and real photos', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  let cacheDir: string;
  before(async () => {
    await selectBackend();
    ({ dir, cleanup } = await makeTempDir('fs-learner-'));
    root = await petsSubset(dir, 16);
    cacheDir = path.join(dir, 'cache');
  });
  after(() => cleanup?.());

  async function setup(signal?: AbortSignal): Promise<{ learner: Learner; model: FinetuneModel }> {
    const scan = await scanDataset({ root, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.25, seed: 42 } });
    const cache = new ImageCache(path.join(cacheDir, 'images'));
    const prepared = await prepareDataset(scan, { cache, size: SIZE });
    const model = await createModel({ arch: 'mobilenet_v2_0.35', numClasses: 2, weights: { path: MOBILENET_V2_035 }, inputSize: SIZE, head: { seed: 1 } });
    const common = { cache, size: SIZE, normalization: model.preprocessing, batchSize: 8 };
    const learner = new Learner({
      network: imageNetwork(model),
      train: new DataLoader(prepared.train, { ...common, split: 'train', seed: 1 }),
      valid: new DataLoader(prepared.valid, { ...common, split: 'valid' }),
      signal,
    });
    return { learner, model };
  }

  test('frozen: head and body BatchNorm train, body convolutions do not; unfrozen: everything trains; no tensor leaks', async () => {
    const { learner, model } = await setup();
    const bodyLayers = model.paramGroups[0].layers;
    const conv = bodyLayers.find((l) => !isBatchNorm(l))!.trainableWeights[0];
    const bn = bodyLayers.find((l) => isBatchNorm(l))!;
    const headKernel = model.paramGroups[2].layers.find((l) => !isBatchNorm(l))!.trainableWeights[0];
    const before = { conv: await values(conv), gamma: await values(bn.trainableWeights[0]), moving: await values(bn.nonTrainableWeights[0]), head: await values(headKernel) };

    const counts: number[] = [];
    learner.setFrozen(true);
    await learner.fitOneCycle(2, { lrMax: [1e-3, 1e-3, 1e-2] }, 'frozen', { afterEpoch: async () => void counts.push(tf.memory().numTensors) });
    assert.equal(changed(before.conv, await values(conv)), false, 'frozen body convolution must not change');
    assert.ok(changed(before.gamma, await values(bn.trainableWeights[0])), 'BatchNorm weight trains while frozen (train_bn)');
    assert.ok(changed(before.moving, await values(bn.nonTrainableWeights[0])), 'BatchNorm running statistics keep updating');
    assert.ok(changed(before.head, await values(headKernel)), 'the head trains');
    assert.equal(counts[0], counts[1], `live tensors after each epoch: ${counts}`);

    learner.setFrozen(false);
    await learner.fitOneCycle(1, { lrMax: [1e-4, 1e-3, 1e-2] }, 'unfrozen');
    assert.ok(changed(before.conv, await values(conv)), 'unfrozen body convolution trains');
    learner.dispose();
    model.dispose();
  });

  test('lr_find sweeps exponentially, suggests rates, and restores weights and BatchNorm statistics exactly', async () => {
    const { learner, model } = await setup();
    const snapshot = await Promise.all(model.model.weights.map(values));
    const result = await learner.lrFind({ numIt: 30 });
    assert.ok(result.points.length > 5 && result.points.length <= 30);
    for (let i = 1; i < result.points.length; i++) assert.ok(result.points[i].lr > result.points[i - 1].lr);
    assert.ok(result.suggestions && result.suggestions.valley.lr > 1e-7 && result.suggestions.valley.lr < 10);
    const after = await Promise.all(model.model.weights.map(values));
    after.forEach((w, i) => assert.equal(changed(snapshot[i], w), false, `weight ${model.model.weights[i].name} restored`));
    learner.dispose();
    model.dispose();
  });

  test('cancel stops within a batch and leaves finite, usable weights', async () => {
    const controller = new AbortController();
    const { learner, model } = await setup(controller.signal);
    let batches = 0;
    (learner as unknown as { onEvent: (e: { type: string }) => void }).onEvent = (e) => {
      if (e.type === 'batch' && ++batches === 2) controller.abort();
    };
    await assert.rejects(learner.fitOneCycle(3, { lrMax: [1e-3, 1e-3, 1e-2] }), CancelledError);
    assert.equal(batches, 2, 'no batch started after the cancel');
    const v = await learner.validate().catch((e) => e);
    assert.ok(v instanceof CancelledError, 'the learner stays cancelled (its signal is aborted)');
    for (const w of model.model.weights) assert.ok((await values(w)).every(Number.isFinite), `${w.name} is finite`);
    learner.dispose();
    model.dispose();
  });
});

describe('runTraining: records, cancel, resume, reproducibility', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  before(async () => {
    await selectBackend();
    ({ dir, cleanup } = await makeTempDir('fs-run-'));
    root = await petsSubset(dir, 16);
  });
  after(() => cleanup?.());

  const config = (outDir: string, extra: Partial<TrainConfig> = {}): TrainConfig => ({
    dataset: { root, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.25, seed: 42 } },
    arch: 'mobilenet_v2_0.35',
    weights: { path: MOBILENET_V2_035 },
    size: SIZE,
    epochs: 1,
    batchSize: 8,
    outDir: path.join(dir, outDir),
    cacheDir: path.join(dir, 'cache'),
    ...extra,
  });

  test('fine_tune(1): two phases, a saved model, run.json; same seed gives the same numbers', async () => {
    const first = await runTraining(config('a'));
    const second = await runTraining(config('b'));
    assert.equal(first.status, 'completed');
    assert.deepEqual(first.epochs.map((r) => r.phase), ['frozen', 'unfrozen']);
    assert.equal(first.dataset.train + first.dataset.valid, 32);
    assert.ok(first.validation && first.validation.confusion.flat().reduce((a, b) => a + b) === first.dataset.valid);
    await access(path.join(dir, 'a', 'model', 'checkpoint.json'));
    const saved: RunRecord = JSON.parse(await readFile(path.join(dir, 'a', 'run.json'), 'utf8'));
    assert.deepEqual(saved.epochs.map((r) => r.trainLoss), first.epochs.map((r) => r.trainLoss));
    assert.deepEqual(second.epochs.map((r) => [r.trainLoss, r.validLoss]), first.epochs.map((r) => [r.trainLoss, r.validLoss]), 'reproducible');
    await assert.rejects(access(path.join(dir, 'a', 'checkpoint')), 'checkpoint removed after a completed run');
  });

  test("the wizard's lr_find: the same seed sweeps the same curve (dropout is seeded, as in a run)", async () => {
    // Unseeded, the dropout masks differed per sweep: on 26 photos (batches of 8), two sweeps in
    // sixty stopped early (after 6 and 23 of ~88 batches), and the first suggested nothing.
    const sweep = () => findLearningRate(config('lr'), () => {}, new AbortController().signal);
    const first = await sweep();
    const second = await sweep();
    assert.ok(first.points.length > 20 && first.suggestions, `${first.points.length} points`);
    assert.deepEqual(second.points, first.points);
    assert.deepEqual(second.suggestions, first.suggestions);
  });

  test('cancel during the unfrozen phase saves the model; --resume finishes from the checkpoint', async () => {
    const controller = new AbortController();
    const cancelled = await runTraining(config('c'), {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'batch' && e.phase === 'unfrozen') controller.abort();
      },
    });
    assert.equal(cancelled.status, 'cancelled');
    assert.deepEqual(cancelled.epochs.map((r) => r.phase), ['frozen']);
    await access(path.join(dir, 'c', 'model', 'checkpoint.json'));
    await access(path.join(dir, 'c', 'checkpoint', 'checkpoint.json'));

    const resumed = await runTraining(config('c', { resume: true }));
    assert.equal(resumed.status, 'completed');
    assert.deepEqual(resumed.resumedFrom, { phase: 1, epoch: 0 });
    assert.deepEqual(resumed.epochs.map((r) => r.phase), ['frozen', 'unfrozen']);
    assert.equal(resumed.epochs[0].trainLoss, cancelled.epochs[0].trainLoss);
  });
});
