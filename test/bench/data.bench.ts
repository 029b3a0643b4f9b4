/**
 * npm run bench:data [-- --size 224 --folder <dir>]
 *
 * Images per second for the dataset pipeline (read + hash + decode + crop + resize + write to
 * the cache) on the real Pets sample, cold and warm, next to a plain single-threaded sharp loop
 * doing the same decode/crop/resize/write in the same run; plus the data loader's batch rate.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { centreCropBox } from '../../src-main/engine/data/crop.js';
import { DataLoader } from '../../src-main/engine/data/data-loader.js';
import { scanDataset } from '../../src-main/engine/data/dataset.js';
import { ImageCache } from '../../src-main/engine/data/image-cache.js';
import { IMAGENET_NORMALIZATION } from '../../src-main/engine/data/normalize.js';
import { prepareDataset } from '../../src-main/engine/data/prepare.js';
import { PETS_SAMPLE, sharedSkipReason } from '../helpers/shared.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '224' }, folder: { type: 'string' }, concurrency: { type: 'string' } } });
const size = Number(values.size);
const folder = values.folder ?? PETS_SAMPLE;
if (!values.folder && sharedSkipReason('data', 'oxford-pets-sample')) {
  console.log(`bench:data skipped: ${sharedSkipReason('data', 'oxford-pets-sample')} (or pass --folder <dir>)`);
  process.exit(0);
}

const work = await mkdtemp(path.join(os.tmpdir(), 'fs-bench-data-'));
try {
  // The label rule does not matter for decoding speed; is-cat labels every file.
  const scan = await scanDataset({ root: folder, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0, seed: 42 } });
  const files = scan.train.map((i) => i.relPath);
  const n = files.length;
  if (n === 0) throw new Error(`no images found in ${folder}`);
  console.log(`bench:data on ${n} images from ${folder}, size ${size}, ${os.availableParallelism()} cores, sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}`);

  // Reference: one image at a time, libvips limited to one thread, same decode/crop/resize, raw file written.
  const vipsThreads = sharp.concurrency();
  sharp.concurrency(1);
  let t = performance.now();
  for (const [i, rel] of files.entries()) {
    const buf = await readFile(path.join(folder, rel));
    const meta = await sharp(buf).metadata();
    const rotated = (meta.orientation ?? 1) >= 5;
    const box = centreCropBox(rotated ? meta.height! : meta.width!, rotated ? meta.width! : meta.height!, size);
    const raw = await sharp(buf).autoOrient().extract(box).resize(size, size, { fit: 'fill', kernel: 'linear' }).flatten({ background: '#ffffff' }).toColourspace('srgb').raw().toBuffer();
    await writeFile(path.join(work, `ref-${i}.rgb`), raw);
  }
  const refRate = n / ((performance.now() - t) / 1000);
  sharp.concurrency(vipsThreads);

    const cache = new ImageCache(path.join(work, 'cache'));
  const concurrency = values.concurrency ? Number(values.concurrency) : undefined;
  t = performance.now();
  const cold = await prepareDataset(scan, { cache, size, concurrency });
  const coldRate = n / ((performance.now() - t) / 1000);
  t = performance.now();
  const warm = await prepareDataset(scan, { cache, size, concurrency });
  const warmRate = n / ((performance.now() - t) / 1000);
  if (cold.stats.decoded + cold.stats.failed !== n || warm.stats.fromCache !== cold.stats.decoded) throw new Error('cache did not behave: cold/warm counts are off');

  const loader = new DataLoader(cold.train, { cache, size, split: 'train', normalization: IMAGENET_NORMALIZATION, batchSize: 64, seed: 1 });
  t = performance.now();
  let images = 0;
  for await (const batch of loader.epoch(0)) images += batch.n;
  const loaderRate = images / ((performance.now() - t) / 1000);

  const row = (name: string, rate: number) => console.log(`${name.padEnd(58)} ${rate.toFixed(0).padStart(6)} img/s   ${(rate / refRate).toFixed(2)}x`);
  console.log('');
  row('plain sharp loop, 1 image at a time, 1 libvips thread', refRate);
  row(`pipeline, cold cache (decode + crop + resize + cache write)`, coldRate);
  row('pipeline, warm cache (read + hash, nothing decoded)', warmRate);
  row('data loader from cache (random crop + normalise, batch 64)', loaderRate);
  console.log(`\n(${cold.stats.failed} images could not be decoded and were skipped)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
