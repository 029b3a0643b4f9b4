/**
 * Quick mode, for machines without a GPU: the frozen body runs once per image (inference mode,
 * validation crop) and its concat-pooled features (max then average, what fastai's head pools
 * first) are cached on disk; then only the rest of the head trains on them, as Teachable Machine
 * and Create ML do. An epoch costs a few milliseconds instead of a full forward and backward pass
 * through the CNN. What it gives up: the body's BatchNorm layers and weights stay at their
 * ImageNet values and every epoch sees the same crop of each image, so accuracy can fall a little
 * short of fastai's fine_tune; a short full fine-tune afterwards closes most of that gap.
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, epochRng, type Batch } from '../data/data-loader.js';
import type { ImageCache } from '../data/image-cache.js';
import { randpermWith } from '../data/mt19937.js';
import type { PreparedItem } from '../data/prepare.js';
import type { FinetuneModel } from '../models/create-model.js';
import { foldBatchNorms } from '../models/inference-model.js';
import { Learner, type BatchSource, type EpochRow, type TrainableNetwork } from './learner.js';
import type { RunEvent, TrainConfig } from './run-training.js';
import type { PreparedDataset } from '../data/prepare.js';

const POOLING_LAYERS = new Set(['GlobalMaxPooling2D', 'GlobalAveragePooling2D', 'Concatenate']);

/**
 * The head after its pooling, as a model of its own that shares the head's layers (and so its
 * weights): training it trains the full model's head.
 */
export function pooledHeadNetwork(m: FinetuneModel): TrainableNetwork {
  const layers = m.head.layers.filter((l) => l.getClassName() !== 'InputLayer' && !POOLING_LAYERS.has(l.getClassName()));
  const input = tf.input({ shape: [2 * m.numFeatures], name: 'pooled_features' });
  let x: tf.SymbolicTensor = input;
  for (const layer of layers) x = layer.apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: x, name: 'pooled_head' });
  const headGroup = m.paramGroups[m.paramGroups.length - 1];
  return { model, paramGroups: [{ layers: headGroup.layers }], sampleShape: [2 * m.numFeatures], numClasses: m.head.outputs[0].shape[1] as number };
}

/** Identifies what a cached feature vector depends on: the image's decoded pixels and the exact body. */
export function featureKeyPrefix(m: FinetuneModel): string {
  const weights = 'path' in m.weights ? String(m.weights.path) : m.weights.source;
  return `${m.arch}|${weights}|${m.inputSize}`;
}

export interface FeatureProgress {
  done: number;
  total: number;
  fromCache: number;
}

/**
 * Concat-pooled body features of every item, [items.length * 2 * numFeatures], computed once and
 * cached under `cacheDir` (one small file per image, written atomically).
 */
export async function computeFeatures(
  m: FinetuneModel,
  items: readonly PreparedItem[],
  images: ImageCache,
  cacheDir: string,
  options: { microBatch?: number; onProgress?: (p: FeatureProgress) => void; signal?: AbortSignal } = {},
): Promise<Float32Array> {
  const dim = 2 * m.numFeatures;
  const out = new Float32Array(items.length * dim);
  const prefix = featureKeyPrefix(m);
  const fileOf = (item: PreparedItem) => {
    const key = createHash('sha256').update(`${prefix}|${item.cacheKey}`).digest('hex').slice(0, 40);
    return path.join(cacheDir, key.slice(0, 2), `${key}.f32`);
  };
  const missing: number[] = [];
  let fromCache = 0;
  for (let i = 0; i < items.length; i++) {
    const buf = await fs.readFile(fileOf(items[i])).catch(() => undefined);
    if (buf && buf.length === dim * 4) {
      out.set(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)), i * dim);
      fromCache++;
    } else missing.push(i);
  }
  options.onProgress?.({ done: fromCache, total: items.length, fromCache });

  if (missing.length === 0) return out;
  const batchSize = Math.max(1, options.microBatch ?? 32);
  const loader = new DataLoader(missing.map((i) => items[i]), { cache: images, size: m.inputSize, split: 'valid', normalization: m.preprocessing, batchSize });
  // The body with its BatchNorms folded: the same features, fewer passes (inference-model.ts).
  const body = await foldBatchNorms(m.body);
  try {
    let done = fromCache;
    let k = 0;
    for await (const batch of loader.epoch(0)) {
      if (options.signal?.aborted) throw Object.assign(new Error('Computing features was cancelled.'), { name: 'AbortError' });
      const pooled = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, [batch.n, m.inputSize, m.inputSize, 3]);
        const fm = body.model.apply(x, { training: false }) as tf.Tensor4D;
        return tf.concat([tf.max(fm, [1, 2]), tf.mean(fm, [1, 2])], 1);
      });
      const values = (await pooled.data()) as Float32Array;
      pooled.dispose();
      for (let j = 0; j < batch.n; j++) {
        const index = missing[k + j];
        const vec = values.subarray(j * dim, (j + 1) * dim);
        out.set(vec, index * dim);
        const file = fileOf(items[index]);
        await fs.mkdir(path.dirname(file), { recursive: true });
        const tmp = `${file}.${randomUUID()}.tmp`;
        await fs.writeFile(tmp, new Uint8Array(vec.buffer, vec.byteOffset, vec.byteLength));
        await fs.rename(tmp, file);
      }
      k += batch.n;
      done += batch.n;
      options.onProgress?.({ done, total: items.length, fromCache });
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    body.dispose();
  }
  return out;
}

/** Batches of cached features: shuffled (seeded) with the last partial batch dropped for training; in order for validation. */
export class FeatureLoader implements BatchSource {
  constructor(
    readonly items: readonly PreparedItem[],
    private readonly features: Float32Array,
    private readonly dim: number,
    readonly batchSize: number,
    private readonly training: boolean,
    private readonly seed = 0,
  ) {}

  get length(): number {
    return this.training ? Math.floor(this.items.length / this.batchSize) : Math.ceil(this.items.length / this.batchSize);
  }

  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const n = this.items.length;
    const order = this.training ? randpermWith(n, epochRng(this.seed, epoch)) : Array.from({ length: n }, (_, i) => i);
    for (let b = 0; b < this.length; b++) {
      const idx = order.slice(b * this.batchSize, Math.min(n, (b + 1) * this.batchSize));
      const x = new Float32Array(idx.length * this.dim);
      const y = new Int32Array(idx.length);
      idx.forEach((i, k) => {
        x.set(this.features.subarray(i * this.dim, (i + 1) * this.dim), k * this.dim);
        y[k] = this.items[i].classIndex;
      });
      yield { x, y, n: idx.length, items: idx.map((i) => this.items[i]) };
    }
  }
}

export interface HeadTrainingOptions {
  model: FinetuneModel;
  prepared: PreparedDataset;
  cache: ImageCache;
  batchSize: number;
  microBatch: number;
  quickEpochs: number;
  config: Pick<TrainConfig, 'cacheDir' | 'baseLr' | 'seed'>;
  emit: (e: RunEvent) => void;
  signal?: AbortSignal;
  afterEpoch?: (row: EpochRow) => Promise<void>;
}

/**
 * Quick mode's training: features once, then `fit_one_cycle(quickEpochs, base_lr)` on the head
 * alone. Returns the feature learner, which validates exactly as the full model does (same body in
 * inference mode, same head), so it can also interpret the result.
 */
export async function trainHeadOnFeatures(o: HeadTrainingOptions): Promise<Learner> {
  const { model, prepared } = o;
  const items = [...prepared.train, ...prepared.valid];
  o.emit({ type: 'stage', stage: 'features', message: `Computing ${model.arch} features of ${items.length} images (once; cached)` });
  const features = await computeFeatures(model, items, o.cache, path.join(o.config.cacheDir, 'features'), {
    microBatch: o.microBatch,
    signal: o.signal,
    onProgress: (p) => o.emit({ type: 'features', ...p }),
  });
  const dim = 2 * model.numFeatures;
  const trainFeatures = features.subarray(0, prepared.train.length * dim);
  const validFeatures = features.subarray(prepared.train.length * dim);
  const network = pooledHeadNetwork(model);
  const learner = new Learner({
    network,
    train: new FeatureLoader(prepared.train, trainFeatures, dim, o.batchSize, true, o.config.seed ?? 42),
    valid: new FeatureLoader(prepared.valid, validFeatures, dim, o.batchSize, false),
    onEvent: o.emit,
    signal: o.signal,
  });
  o.emit({ type: 'stage', stage: 'train', message: `Training the head on the features: fit_one_cycle(${o.quickEpochs})` });
  await learner.fitOneCycle(o.quickEpochs, { lrMax: [o.config.baseLr ?? 2e-3] }, 'quick', { afterEpoch: o.afterEpoch });
  return learner;
}
