import assert from 'node:assert/strict';
import { symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { DataLoader, type Batch } from '../../src-main/engine/data/data-loader.js';
import { hasErrors, scanDataset, type DatasetOptions } from '../../src-main/engine/data/dataset.js';
import { findImageFiles } from '../../src-main/engine/data/find-images.js';
import { ImageCache } from '../../src-main/engine/data/image-cache.js';
import { IMAGENET_NORMALIZATION } from '../../src-main/engine/data/normalize.js';
import { prepareDataset } from '../../src-main/engine/data/prepare.js';
import { makeTempDir, solidJpeg, writeFiles } from '../helpers/images.js';

const RED: [number, number, number] = [220, 30, 30];
const BLUE: [number, number, number] = [30, 30, 220];
const isCatRandom = (root: string, validPct = 0.25): DatasetOptions => ({ root, label: { kind: 'is-cat' }, split: { kind: 'random', validPct, seed: 42 } });

describe('finding images (fastai get_image_files)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir());
    const jpg = await solidJpeg(8, 8);
    await writeFiles(dir, {
      'b/Z.JPG': jpg,
      'a.png': jpg,
      'b/a/c.jpeg': jpg,
      '.hidden.jpg': jpg,
      '.git/x.jpg': jpg,
      'notes.txt': 'hello',
      'model.mat': 'x',
      'B.webp': jpg,
    });
  });
  after(() => cleanup());

  test('recursive, image extensions in any case, hidden files and folders skipped, sorted by code point', async () => {
    const { files } = await findImageFiles(dir);
    assert.deepEqual(files, ['B.webp', 'a.png', 'b/Z.JPG', 'b/a/c.jpeg']);
  });

  test('a missing folder or a file instead of a folder is a clear error', async () => {
    await assert.rejects(findImageFiles(path.join(dir, 'nope')), /does not exist or cannot be read \(ENOENT\)\. Pick an existing folder/);
    await assert.rejects(findImageFiles(path.join(dir, 'a.png')), /is a file, not a folder/);
  });
});

describe('scanning a folder: labels, split, problems', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir()));
  after(() => cleanup());

  test('counts per class, split sizes, examples, vocab sorted', async () => {
    const root = path.join(dir, 'pets');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`Cat_${i}.jpg`] = await solidJpeg(12, 10, RED);
    for (let i = 0; i < 6; i++) files[`dog_${i}.jpg`] = await solidJpeg(10, 12, BLUE);
    await writeFiles(root, files);
    const scan = await scanDataset(isCatRandom(root));
    assert.deepEqual(scan.vocab, ['cat', 'dog']);
    assert.equal(scan.found, 12);
    assert.equal(scan.valid.length, 3);
    assert.equal(scan.train.length, 9);
    assert.deepEqual(scan.classes.map((c) => [c.name, c.count, c.train + c.valid]), [['cat', 6, 6], ['dog', 6, 6]]);
    assert.ok(scan.classes[0].examples.every((e) => e.startsWith('Cat_')));
    assert.deepEqual(scan.problems, []);
    assert.equal(hasErrors(scan), false);
  });

  test('an empty folder is an error that says what to do', async () => {
    const root = path.join(dir, 'empty');
    await writeFiles(root, { 'readme.txt': 'no images here' });
    const scan = await scanDataset(isCatRandom(root));
    assert.ok(hasErrors(scan));
    assert.match(scan.problems[0].message, /No images were found in .*empty.*Pick the folder that contains the photos/);
  });

  test('a rule that yields one class is an error naming the rule and the class', async () => {
    const root = path.join(dir, 'onlydogs');
    await writeFiles(root, { 'a_1.jpg': await solidJpeg(8, 8), 'b_2.jpg': await solidJpeg(8, 8) });
    const scan = await scanDataset(isCatRandom(root, 0.5));
    assert.ok(hasErrors(scan));
    assert.match(scan.problems[0].message, /put all 2 images in one class \("dog"\)\. A classifier needs at least two classes/);
  });

  test('a class with too few images is a warning; files the rule cannot label are skipped with the reason', async () => {
    const root = path.join(dir, 'breeds');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 8; i++) files[`pug_${i}.jpg`] = await solidJpeg(8, 8);
    files['beagle_1.jpg'] = await solidJpeg(8, 8);
    files['IMG1234.jpg'] = await solidJpeg(8, 8);
    await writeFiles(root, files);
    const scan = await scanDataset({ root, label: { kind: 'regex', pattern: '^(.+)_\\d+\\.' }, split: { kind: 'random', validPct: 0.2, seed: 1 } });
    assert.equal(hasErrors(scan), false);
    assert.deepEqual(scan.vocab, ['beagle', 'pug']);
    assert.deepEqual(scan.skipped, [{ relPath: 'IMG1234.jpg', stage: 'label', reason: 'the file name does not match the label pattern ^(.+)_\\d+\\.' }]);
    assert.ok(scan.problems.some((p) => p.level === 'warning' && /Class "beagle" has only 1 image\(s\)/.test(p.message)));
  });

  test('the split is over every file found, so a file that fails labelling does not move the others', async () => {
    const root = path.join(dir, 'stable');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 10; i++) files[`Cat_${i}.jpg`] = await solidJpeg(8, 8);
    for (let i = 0; i < 10; i++) files[`dog_${i}.jpg`] = await solidJpeg(8, 8);
    await writeFiles(root, files);
    const before = await scanDataset({ root, label: { kind: 'regex', pattern: '^(\\w+)_\\d' }, split: { kind: 'random', validPct: 0.2, seed: 42 } });
    await writeFile(path.join(root, 'Cat_9.jpg'), await solidJpeg(8, 8)); // same name, still found
    const withBadName = await scanDataset({ root, label: { kind: 'regex', pattern: '^(\\w+)_[0-8]' }, split: { kind: 'random', validPct: 0.2, seed: 42 } });
    const names = (items: { relPath: string }[]) => items.map((i) => i.relPath);
    const dropped = new Set(['Cat_9.jpg', 'dog_9.jpg']);
    assert.deepEqual(names(withBadName.valid), names(before.valid).filter((n) => !dropped.has(n)));
    assert.deepEqual(names(withBadName.train), names(before.train).filter((n) => !dropped.has(n)));
  });

  test('folder split with folder labels (train/<class>/…, valid/<class>/…)', async () => {
    const root = path.join(dir, 'mnist');
    const jpg = await solidJpeg(8, 8);
    await writeFiles(root, { 'train/3/a.jpg': jpg, 'train/7/b.jpg': jpg, 'train/7/c.jpg': jpg, 'valid/3/d.jpg': jpg, 'valid/7/e.jpg': jpg, 'test/x.jpg': jpg });
    const scan = await scanDataset({ root, label: { kind: 'folder' }, split: { kind: 'folder', trainName: 'train', validName: 'valid' } });
    assert.deepEqual(scan.vocab, ['3', '7']);
    assert.deepEqual(scan.train.map((i) => i.relPath), ['train/3/a.jpg', 'train/7/b.jpg', 'train/7/c.jpg']);
    assert.deepEqual(scan.valid.map((i) => [i.relPath, i.classIndex]), [['valid/3/d.jpg', 0], ['valid/7/e.jpg', 1]]);
    assert.deepEqual(scan.skipped.map((s) => [s.relPath, s.stage]), [['test/x.jpg', 'split']]);
  });
});

describe('preparing images: decode once, skip bad files, cache by content', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir());
    root = path.join(dir, 'data');
    const files: Record<string, Buffer | string> = {};
    for (let i = 0; i < 10; i++) files[`Cat_${i}.jpg`] = await solidJpeg(40 + i, 30, RED);
    for (let i = 0; i < 10; i++) files[`dog_${i}.jpg`] = await solidJpeg(30, 40 + i, BLUE);
    const good = await solidJpeg(64, 64);
    files['dog_empty.jpg'] = Buffer.alloc(0);
    files['dog_text.jpg'] = 'this is not an image';
    const noisy = await sharp({ create: { width: 60, height: 60, channels: 3, noise: { type: 'gaussian', mean: 128, sigma: 60 }, background: 'black' } }).jpeg().toBuffer();
    files['Cat_truncated.jpg'] = noisy.subarray(0, Math.floor(noisy.length / 3));
    files['dog_corrupt.png'] = Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(100, 7)]);
    files['Cat_huge.jpg'] = good; // refused by a low pixel limit below
    await writeFiles(root, files);
    await symlink(path.join(root, 'gone.jpg'), path.join(root, 'dog_broken_link.jpg'));
  });
  after(() => cleanup());

  test('bad files are listed with reasons and skipped; the rest are decoded and cached', async () => {
    const scan = await scanDataset(isCatRandom(root, 0.2));
    assert.equal(scan.found, 26);
    const cache = new ImageCache(path.join(dir, 'cache'));
    const progress: number[] = [];
    const prepared = await prepareDataset(scan, { cache, size: 32, maxPixels: 64 * 64 - 1, onProgress: (p) => progress.push(p.done) });
    const reasons = Object.fromEntries(prepared.scan.skipped.map((s) => [s.relPath, s.reason]));
    assert.deepEqual(Object.keys(reasons).sort(), ['Cat_huge.jpg', 'Cat_truncated.jpg', 'dog_broken_link.jpg', 'dog_corrupt.png', 'dog_empty.jpg', 'dog_text.jpg']);
    assert.match(reasons['dog_empty.jpg'], /empty \(0 bytes\)/);
    assert.match(reasons['dog_text.jpg'], /contains text/);
    assert.match(reasons['Cat_truncated.jpg'], /truncated or damaged/);
    assert.match(reasons['dog_corrupt.png'], /truncated or damaged|could not be decoded/);
    assert.match(reasons['Cat_huge.jpg'], /64x64 .* safety limit/);
    assert.match(reasons['dog_broken_link.jpg'], /cannot read the file \(the file disappeared or is a broken link\)/);
    assert.equal(prepared.train.length + prepared.valid.length, 20);
    assert.deepEqual(prepared.scan.classes.map((c) => c.count), [10, 10]);
    assert.deepEqual(progress, Array.from({ length: 26 }, (_, i) => i + 1));
    assert.deepEqual([prepared.stats.decoded, prepared.stats.fromCache, prepared.stats.failed], [20, 0, 6]);

    // A second pass decodes nothing; changing one file or the size rebuilds only what changed.
    const again = await prepareDataset(scan, { cache, size: 32, maxPixels: 64 * 64 - 1 });
    assert.deepEqual([again.stats.decoded, again.stats.fromCache], [0, 20]);
    await writeFile(path.join(root, 'Cat_3.jpg'), await solidJpeg(41, 31, RED));
    const changed = await prepareDataset(scan, { cache, size: 32, maxPixels: 64 * 64 - 1 });
    assert.deepEqual([changed.stats.decoded, changed.stats.fromCache], [1, 19]);
    const resized = await prepareDataset(scan, { cache, size: 24, maxPixels: 64 * 64 - 1 });
    assert.deepEqual([resized.stats.decoded, resized.stats.fromCache], [20, 0]);
  });

  test('a torn cache entry is rebuilt, not trusted', async () => {
    const scan = await scanDataset(isCatRandom(root, 0.2));
    const cache = new ImageCache(path.join(dir, 'cache2'));
    const first = await prepareDataset(scan, { cache, size: 16 });
    const key = first.train[0].cacheKey;
    await writeFile(path.join(cache.dir, key.slice(0, 2), `${key}.rgb`), Buffer.from('FSI1short'));
    assert.equal(await cache.get(key), undefined);
  });

  test('cancelling stops the pass with an AbortError', async () => {
    const scan = await scanDataset(isCatRandom(root, 0.2));
    const controller = new AbortController();
    const run = prepareDataset(scan, {
      cache: new ImageCache(path.join(dir, 'cache3')),
      size: 32,
      concurrency: 1,
      signal: controller.signal,
      onProgress: (p) => p.done === 3 && controller.abort(),
    });
    await assert.rejects(run, (err: Error) => err.name === 'AbortError' && /cancelled/.test(err.message));
  });

  test('data loader: shuffled training batches drop the last partial batch; validation keeps order and all items', async () => {
    const scan = await scanDataset(isCatRandom(root, 0.2));
    const cache = new ImageCache(path.join(dir, 'cache'));
    const prepared = await prepareDataset(scan, { cache, size: 32, maxPixels: 64 * 64 - 1 });
    const common = { cache, size: 32, normalization: IMAGENET_NORMALIZATION, batchSize: 6 };
    const train = new DataLoader(prepared.train, { ...common, split: 'train', seed: 7 });
    const valid = new DataLoader(prepared.valid, { ...common, split: 'valid' });
    assert.equal(prepared.train.length, 16);
    assert.equal(train.length, 2);
    assert.equal(valid.length, Math.ceil(prepared.valid.length / 6));

    const seen = async (dl: DataLoader, epoch: number) => {
      const names: string[] = [];
      for await (const b of dl.epoch(epoch)) {
        assert.equal(b.x.length, b.n * 32 * 32 * 3);
        names.push(...b.items.map((i) => i.relPath));
      }
      return names;
    };
    const e0 = await seen(train, 0);
    assert.equal(e0.length, 12);
    assert.deepEqual(await seen(train, 0), e0, 'same seed and epoch, same order');
    assert.notDeepEqual(await seen(train, 1), e0, 'each epoch reshuffles');
    assert.deepEqual(await seen(valid, 0), prepared.valid.map((i) => i.relPath));

    // Pixels: a red cat normalises to ImageNet-normalised red; labels follow the vocab.
    const first = (await valid.epoch(0).next()).value as Batch;
    const k = first.items.findIndex((i) => i.label === 'cat');
    const { mean, std } = IMAGENET_NORMALIZATION;
    const r = first.x[k * 32 * 32 * 3 + (16 * 32 + 16) * 3];
    assert.ok(Math.abs(r - (RED[0] / 255 - mean[0]) / std[0]) < 0.1, `red channel ${r}`);
    assert.equal(first.y[k], 0);
  });

  test('show_batch: labelled square crops as the model sees them', async () => {
    const scan = await scanDataset(isCatRandom(root, 0.2));
    const cache = new ImageCache(path.join(dir, 'cache'));
    const prepared = await prepareDataset(scan, { cache, size: 32, maxPixels: 64 * 64 - 1 });
    const dl = new DataLoader(prepared.train, { cache, size: 32, split: 'train', normalization: IMAGENET_NORMALIZATION, seed: 3 });
    const shown = await dl.showBatch(4);
    assert.equal(shown.length, 4);
    for (const { item, image } of shown) {
      assert.deepEqual([image.width, image.height, image.data.length], [32, 32, 32 * 32 * 3]);
      const [r, , b] = image.data.subarray((16 * 32 + 16) * 3);
      assert.equal(item.label === 'cat', r > b, `${item.relPath} is ${item.label} but pixel is ${r},${b}`);
    }
  });
});
