/** The pipeline on the real Oxford-IIIT Pet sample in ../shared (skipped, saying so, when absent). */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { scanDataset } from '../../src-main/engine/data/dataset.js';
import { decodeImage } from '../../src-main/engine/data/decode.js';
import { findImageFiles } from '../../src-main/engine/data/find-images.js';
import { ImageCache } from '../../src-main/engine/data/image-cache.js';
import { torchRandperm } from '../../src-main/engine/data/mt19937.js';
import { prepareDataset } from '../../src-main/engine/data/prepare.js';
import { makeTempDir } from '../helpers/images.js';
import { PETS_SAMPLE, sharedSkipReason } from '../helpers/shared.js';

const skip = sharedSkipReason('data', 'oxford-pets-sample');
const split = { kind: 'random', validPct: 0.2, seed: 42 } as const;

describe('Oxford-IIIT Pet sample (975 real photos)', { skip }, () => {
  let cacheDir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir: cacheDir, cleanup } = await makeTempDir('fs-pets-cache-')));
  after(() => cleanup?.());

  test('is-cat gives 518 cats and 457 dogs, split 780/195 exactly as fastai (valid = randperm[:195])', async () => {
    const scan = await scanDataset({ root: PETS_SAMPLE, label: { kind: 'is-cat' }, split });
    assert.deepEqual(scan.classes.map((c) => [c.name, c.count]), [['cat', 518], ['dog', 457]]);
    assert.equal(scan.train.length, 780);
    assert.equal(scan.valid.length, 195);
    const { files } = await findImageFiles(PETS_SAMPLE);
    const perm = torchRandperm(975, 42);
    assert.deepEqual(scan.valid.map((i) => i.relPath), perm.slice(0, 195).map((i) => files[i]));
    assert.deepEqual(scan.train.map((i) => i.relPath), perm.slice(195).map((i) => files[i]));
    assert.deepEqual(scan.problems, []);
  });

  test('the breed pattern gives the 37 breeds', async () => {
    const scan = await scanDataset({ root: PETS_SAMPLE, label: { kind: 'regex', pattern: '^(.+)_\\d+\\.' }, split });
    assert.equal(scan.vocab.length, 37);
    assert.equal(scan.skipped.length, 0);
    assert.deepEqual(scan.classes.filter((c) => c.count === 200).map((c) => c.name), ['Abyssinian', 'Bengal', 'american_bulldog']);
  });

  test('the quirky files decode: a GIF and an RGBA PNG named .jpg', async () => {
    const gif = await decodeImage(await readFile(path.join(PETS_SAMPLE, 'Abyssinian_34.jpg')), { size: 224, mode: 'valid' });
    const png = await decodeImage(await readFile(path.join(PETS_SAMPLE, 'Abyssinian_5.jpg')), { size: 224, mode: 'valid' });
    assert.equal(gif.format, 'gif');
    assert.equal(png.format, 'png');
    for (const img of [gif, png]) assert.equal(img.data.length, 224 * 224 * 3);
  });

  test('a full pass decodes every photo into the cache; the next pass decodes none', async () => {
    const scan = await scanDataset({ root: PETS_SAMPLE, label: { kind: 'is-cat' }, split });
    const cache = new ImageCache(cacheDir);
    const cold = await prepareDataset(scan, { cache, size: 64 });
    assert.deepEqual([cold.stats.decoded, cold.stats.fromCache, cold.stats.failed], [975, 0, 0]);
    const warm = await prepareDataset(scan, { cache, size: 64 });
    assert.deepEqual([warm.stats.decoded, warm.stats.fromCache, warm.stats.failed], [0, 975, 0]);
    assert.equal(warm.train.length + warm.valid.length, 975);
  });
});
