/**
 * Decode once: every image of a scanned dataset goes through `decodeImage` into the on-disk
 * cache, several at a time (sharp decodes on libuv's thread pool, so the event loop that talks
 * to the UI stays free). Files that cannot be read or decoded are listed as skipped, with the
 * reason, and dropped from their split; the run goes on.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeImage, DEFAULT_MAX_PIXELS } from './decode.js';
import { summarize, type DatasetItem, type DatasetScan, type SkippedFile } from './dataset.js';
import { cacheKey, contentHash, ImageCache } from './image-cache.js';

export interface PreparedItem extends DatasetItem {
  /** Cache entry holding this item's decoded pixels. */
  cacheKey: string;
}

export interface PrepareProgress {
  done: number;
  total: number;
  decoded: number;
  fromCache: number;
  failed: number;
}

export interface PrepareOptions {
  cache: ImageCache;
  size: number;
  maxPixels?: number;
  /** Images decoded at once; defaults to the number of CPU cores (at least 2). */
  concurrency?: number;
  onProgress?: (p: PrepareProgress) => void;
  signal?: AbortSignal;
}

export interface PreparedDataset {
  scan: DatasetScan;
  size: number;
  train: PreparedItem[];
  valid: PreparedItem[];
  stats: PrepareProgress & { seconds: number };
}

export function validateImageSize(size: number): void {
  if (!Number.isInteger(size) || size < 16 || size > 1024) {
    throw new Error(`The image size must be a whole number of pixels from 16 to 1024 (224 is the usual choice); got ${size}.`);
  }
}

function abortError(): Error {
  const err = new Error('Preparing the images was cancelled.');
  err.name = 'AbortError';
  return err;
}

export async function prepareDataset(scan: DatasetScan, options: PrepareOptions): Promise<PreparedDataset> {
  validateImageSize(options.size);
  const started = performance.now();
  const jobs: { item: DatasetItem; mode: 'train' | 'valid' }[] = [
    ...scan.train.map((item) => ({ item, mode: 'train' as const })),
    ...scan.valid.map((item) => ({ item, mode: 'valid' as const })),
  ];
  const keys: (string | undefined)[] = new Array(jobs.length);
  const failures: SkippedFile[] = [];
  const progress: PrepareProgress = { done: 0, total: jobs.length, decoded: 0, fromCache: 0, failed: 0 };
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;

  async function prepareOne(index: number): Promise<void> {
    const { item, mode } = jobs[index];
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(path.join(scan.root, item.relPath));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'the file disappeared or is a broken link' : code === 'EACCES' ? 'permission denied' : code;
      failures.push({ relPath: item.relPath, stage: 'decode', reason: `cannot read the file (${why}); check that it exists and is readable` });
      progress.failed++;
      return;
    }
    const key = cacheKey({ contentHash: contentHash(bytes), size: options.size, mode });
    if (await options.cache.has(key)) {
      keys[index] = key;
      progress.fromCache++;
      return;
    }
    try {
      const image = await decodeImage(bytes, { size: options.size, mode, maxPixels });
      await options.cache.put(key, image);
      keys[index] = key;
      progress.decoded++;
    } catch (err) {
      if ((err as Error).name !== 'DecodeError') throw err;
      failures.push({ relPath: item.relPath, stage: 'decode', reason: (err as Error).message });
      progress.failed++;
    }
  }

  const concurrency = Math.max(1, options.concurrency ?? Math.max(2, os.availableParallelism()));
  let next = 0;
  async function worker(): Promise<void> {
    while (next < jobs.length) {
      if (options.signal?.aborted) throw abortError();
      const index = next++;
      await prepareOne(index);
      progress.done++;
      options.onProgress?.({ ...progress });
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  if (options.signal?.aborted) throw abortError();

  const prepared = jobs.map(({ item }, i) => (keys[i] ? { ...item, cacheKey: keys[i]! } : undefined));
  const train = prepared.slice(0, scan.train.length).filter((x): x is PreparedItem => x !== undefined);
  const valid = prepared.slice(scan.train.length).filter((x): x is PreparedItem => x !== undefined);
  failures.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  const updated = summarize({ ...scan, train, valid, skipped: [...scan.skipped, ...failures] });
  return { scan: updated, size: options.size, train, valid, stats: { ...progress, seconds: (performance.now() - started) / 1000 } };
}
