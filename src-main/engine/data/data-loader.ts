/**
 * fastai's DataLoader over prepared (cached) images: training batches shuffled with a seeded
 * generator and the last partial batch dropped; validation batches in order, all kept. Each
 * training image gets a fresh random square crop every epoch, cut from its cached short-side
 * resize, so no JPEG is decoded twice. Pixels come out normalised, NHWC float32.
 */
import * as tf from '@tensorflow/tfjs';
import { randomCropOffset } from './crop.js';
import type { RgbImage } from './decode.js';
import type { ImageCache } from './image-cache.js';
import { MT19937, randpermWith } from './mt19937.js';
import { normalizeInto, type Normalization } from './normalize.js';
import type { PreparedItem } from './prepare.js';

export const DEFAULT_BATCH_SIZE = 64;

export interface DataLoaderOptions {
  cache: ImageCache;
  size: number;
  split: 'train' | 'valid';
  normalization: Normalization;
  batchSize?: number;
  /** Seeds the per-epoch shuffle and crop positions (training only). */
  seed?: number;
}

export interface Batch {
  /** `n * size * size * 3` normalised floats, NHWC. */
  x: Float32Array;
  /** Class index of each image. */
  y: Int32Array;
  n: number;
  items: PreparedItem[];
}

export interface BatchTensors {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
}

/** A square `size` crop of an RGB image at (left, top). */
export function cropRgb(image: RgbImage, left: number, top: number, size: number): Uint8Array {
  if (image.width === size && image.height === size) return image.data;
  const out = new Uint8Array(size * size * 3);
  const rowBytes = size * 3;
  for (let y = 0; y < size; y++) {
    const src = ((top + y) * image.width + left) * 3;
    out.set(image.data.subarray(src, src + rowBytes), y * rowBytes);
  }
  return out;
}

/** A different, reproducible generator for each (seed, epoch). */
export function epochRng(seed: number, epoch: number): MT19937 {
  return new MT19937((seed + Math.imul(0x9e3779b1, epoch + 1)) >>> 0);
}

export class DataLoader {
  readonly batchSize: number;
  private readonly seed: number;

  constructor(
    readonly items: readonly PreparedItem[],
    private readonly options: DataLoaderOptions,
  ) {
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new Error(`The batch size must be a whole number of at least 1; got ${this.batchSize}.`);
    this.seed = options.seed ?? 0;
  }

  get isTraining(): boolean {
    return this.options.split === 'train';
  }

  /** Batches per epoch: partial last batch dropped for training, kept for validation. */
  get length(): number {
    const n = this.items.length;
    return this.isTraining ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The item order and crop draws of one epoch (training: shuffled; validation: as given). */
  plan(epoch: number): { order: number[]; cropDraws: Float64Array } {
    const n = this.items.length;
    if (!this.isTraining) return { order: Array.from({ length: n }, (_, i) => i), cropDraws: new Float64Array(n).fill(0.5) };
    const rng = epochRng(this.seed, epoch);
    const order = randpermWith(n, rng);
    const cropDraws = new Float64Array(n);
    for (let i = 0; i < n; i++) cropDraws[i] = rng.nextFloat();
    return { order, cropDraws };
  }

  /** Yields the batches of one epoch, reading the next batch while the caller uses the current one. */
  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const { order, cropDraws } = this.plan(epoch);
    const count = this.length;
    const load = (b: number) => {
      const idx = order.slice(b * this.batchSize, Math.min(order.length, (b + 1) * this.batchSize));
      return this.loadBatch(idx, idx.map((i) => cropDraws[i]));
    };
    let pending = count > 0 ? load(0) : undefined;
    for (let b = 0; b < count; b++) {
      const batch = await pending!;
      pending = b + 1 < count ? load(b + 1) : undefined;
      yield batch;
    }
  }

  async loadBatch(indices: number[], cropDraws: ArrayLike<number>): Promise<Batch> {
    const { size, cache, normalization } = this.options;
    const pixels = size * size * 3;
    const x = new Float32Array(indices.length * pixels);
    const y = new Int32Array(indices.length);
    const items = indices.map((i) => this.items[i]);
    const images = await Promise.all(items.map((item) => this.readCached(item)));
    images.forEach((image, k) => {
      const { left, top } = randomCropOffset(image.width, image.height, size, cropDraws[k]);
      normalizeInto(cropRgb(image, left, top, size), x, k * pixels, normalization);
      y[k] = items[k].classIndex;
    });
    return { x, y, n: indices.length, items };
  }

  /**
   * A `show_batch`-style sample: the first `n` images of an epoch's first batch, cropped as the
   * model sees them (un-normalised RGB), with their labels.
   */
  async showBatch(n: number, epoch = 0): Promise<{ item: PreparedItem; image: RgbImage }[]> {
    const { order, cropDraws } = this.plan(epoch);
    const chosen = order.slice(0, Math.min(n, order.length));
    const size = this.options.size;
    return Promise.all(
      chosen.map(async (i) => {
        const image = await this.readCached(this.items[i]);
        const { left, top } = randomCropOffset(image.width, image.height, size, cropDraws[i]);
        return { item: this.items[i], image: { data: cropRgb(image, left, top, size), width: size, height: size } };
      }),
    );
  }

  private async readCached(item: PreparedItem): Promise<RgbImage> {
    const image = await this.options.cache.get(item.cacheKey);
    if (!image) throw new Error(`The cached pixels of ${item.relPath} are missing (the cache folder ${this.options.cache.dir} was changed while in use); prepare the dataset again.`);
    return image;
  }
}

export function batchToTensors(batch: Batch, size: number): BatchTensors {
  return { x: tf.tensor4d(batch.x, [batch.n, size, size, 3]), y: tf.tensor1d(batch.y, 'int32') };
}
