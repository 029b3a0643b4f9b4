/**
 * "Find a learning rate" on its own, before training: the same setup as a run (label, split,
 * decode once, `vision_learner(dls, arch)` with a frozen body) and then fastai's `lr_find()`.
 * Nothing is saved; the sweep leaves the model untouched and the model is thrown away.
 */
import path from 'node:path';
import { selectBackend } from '../../engine/backend.js';
import { DataLoader } from '../../engine/data/data-loader.js';
import { hasErrors, scanDataset } from '../../engine/data/dataset.js';
import { ImageCache } from '../../engine/data/image-cache.js';
import { prepareDataset } from '../../engine/data/prepare.js';
import { createModel } from '../../engine/models/create-model.js';
import { imageNetwork, Learner, type LrFindResult } from '../../engine/train/learner.js';
import { chooseBatchSize, defaultMicroBatch, type RunEvent, type TrainConfig } from '../../engine/train/run-training.js';

const errorsOf = (problems: { level: string; message: string }[]) => problems.filter((p) => p.level === 'error').map((p) => p.message).join(' ');

export async function findLearningRate(config: TrainConfig, emit: (e: RunEvent) => void, signal: AbortSignal): Promise<LrFindResult> {
  const size = config.size ?? 224;
  emit({ type: 'stage', stage: 'backend', message: 'Starting the compute backend' });
  const backend = await selectBackend();
  emit({ type: 'stage', stage: 'scan', message: `Labelling and splitting ${config.dataset.root}` });
  const scan = await scanDataset(config.dataset);
  if (hasErrors(scan)) throw new Error(errorsOf(scan.problems));
  emit({ type: 'stage', stage: 'prepare', message: `Decoding ${scan.train.length + scan.valid.length} images at ${size}px (once; cached)` });
  const cache = new ImageCache(path.join(config.cacheDir, 'images'));
  const prepared = await prepareDataset(scan, { cache, size, signal, onProgress: (p) => emit({ type: 'prepare', ...p }) });
  if (hasErrors(prepared.scan)) throw new Error(errorsOf(prepared.scan.problems));

  emit({ type: 'stage', stage: 'model', message: `Building ${config.arch} with fastai's head for ${scan.vocab.length} classes` });
  const model = await createModel({ arch: config.arch, numClasses: scan.vocab.length, weights: config.weights ?? 'imagenet', inputSize: size, store: { ...config.store, signal }, seed: config.seed ?? 42, head: { seed: config.seed ?? 42 } });
  const batchSize = chooseBatchSize(config.batchSize, prepared.train.length);
  const dl = { cache, size, normalization: model.preprocessing, batchSize };
  const learner = new Learner({
    network: imageNetwork(model),
    train: new DataLoader(prepared.train, { ...dl, split: 'train', seed: config.seed ?? 42 }),
    valid: new DataLoader(prepared.valid, { ...dl, split: 'valid' }),
    microBatch: defaultMicroBatch(backend.name, size, batchSize),
    onEvent: emit,
    signal,
  });
  try {
    emit({ type: 'stage', stage: 'lr-find', message: `Sweeping the learning rate from 1e-7 to 10 (batch size ${batchSize}, ${backend.label})` });
    // vision_learner returns a frozen learner; lr_find in lesson 1 runs on it.
    learner.setFrozen(true);
    return await learner.lrFind();
  } finally {
    learner.dispose();
    model.dispose();
  }
}
