import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { defaultCacheDir } from '../../src-main/engine/paths.js';
import { archiveName, DATASETS, DEFAULT_DATASET_ID, findDataset } from '../../src-main/engine/download/registry.js';
import { resolveSource } from '../../src-main/engine/download/source.js';

const PETS_URL = 'https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz';

describe('registry', () => {
  test('Pets is the default and carries fastai/fastdownload’s exact checks', () => {
    const pets = findDataset(DEFAULT_DATASET_ID);
    assert.equal(pets.url, PETS_URL);
    assert.equal(pets.sizeBytes, 811_706_944);
    assert.deepEqual(pets.checksum, { algorithm: 'md5-first-mib', value: 'e4db5c768afd933bb91f5f594d7417a4' });
    assert.equal(pets.folderName, 'oxford-iiit-pet');
    assert.deepEqual(pets.requiredPaths, ['images', 'annotations']);
    assert.equal(pets.imageCount, 7390);
  });

  test('every entry is well formed', () => {
    assert.equal(new Set(DATASETS.map((d) => d.id)).size, DATASETS.length, 'ids are unique');
    for (const d of DATASETS) {
      assert.match(d.id, /^[a-z0-9-]+$/);
      assert.equal(new URL(d.url).protocol, 'https:');
      // fastai names the extracted folder after the archive (fastdownload's untar_dir rename).
      assert.equal(archiveName(d.url), `${d.folderName}.tgz`);
      assert.ok(Number.isInteger(d.sizeBytes) && d.sizeBytes > 0);
      if (d.checksum) assert.match(d.checksum.value, /^[0-9a-f]{32}$/);
      assert.ok(d.requiredPaths.length > 0);
    }
  });

  test('lookup is case-insensitive and unknown ids list the known ones', () => {
    assert.equal(findDataset(' PETS ').id, 'pets');
    assert.throws(() => findDataset('imagenet'), /Unknown dataset "imagenet". Known datasets: pets, mnist-tiny/);
  });
});

describe('resolveSource', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ft-source-'));
    await mkdir(path.join(dir, 'archives'));
    await writeFile(path.join(dir, 'archives', 'oxford-iiit-pet.tgz'), 'x');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('no settings: the original URL', () => {
    assert.deepEqual(resolveSource(PETS_URL, { env: {} }), { kind: 'origin', url: PETS_URL, originalUrl: PETS_URL });
  });

  test('a mirror gets the file name appended, with or without a trailing slash', () => {
    for (const base of ['http://10.0.0.5:8000/fastai', 'http://10.0.0.5:8000/fastai/']) {
      assert.equal(resolveSource(PETS_URL, { mirrorBaseUrl: base, env: {} }).url, 'http://10.0.0.5:8000/fastai/oxford-iiit-pet.tgz');
    }
    assert.equal(resolveSource(PETS_URL, { env: { FINETUNE_MIRROR_URL: 'http://m/' } }).url, 'http://m/oxford-iiit-pet.tgz');
    // The explicit setting wins over the environment.
    assert.equal(resolveSource(PETS_URL, { mirrorBaseUrl: 'http://setting/', env: { FINETUNE_MIRROR_URL: 'http://env/' } }).url, 'http://setting/oxford-iiit-pet.tgz');
    assert.throws(() => resolveSource(PETS_URL, { mirrorBaseUrl: 'not a url', env: {} }), /mirror "not a url" is not a URL/);
  });

  test('a local archive file or folder wins over any mirror', () => {
    const file = path.join(dir, 'archives', 'oxford-iiit-pet.tgz');
    const env = { FINETUNE_MIRROR_URL: 'http://m/' };
    assert.deepEqual(resolveSource(PETS_URL, { localPath: file, env }), { kind: 'local', path: file, url: pathToFileURL(file).href, originalUrl: PETS_URL });
    assert.equal(resolveSource(PETS_URL, { localPath: path.join(dir, 'archives'), env }).kind, 'local');
    assert.equal(resolveSource(PETS_URL, { env: { ...env, FINETUNE_ARCHIVE_DIR: path.join(dir, 'archives') } }).kind, 'local');
  });

  test('an explicit local path that is missing is an error; an env folder without the file falls through', () => {
    assert.throws(() => resolveSource(PETS_URL, { localPath: path.join(dir, 'nope.tgz'), env: {} }), /local archive .*nope\.tgz does not exist/);
    const r = resolveSource('https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz', { env: { FINETUNE_ARCHIVE_DIR: path.join(dir, 'archives'), FINETUNE_MIRROR_URL: 'http://m/' } });
    assert.deepEqual([r.kind, r.url], ['mirror', 'http://m/mnist_tiny.tgz']);
  });
});

describe('defaultCacheDir', () => {
  test('FINETUNE_STUDIO_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(defaultCacheDir({ FINETUNE_STUDIO_CACHE: '/data/ft', XDG_CACHE_HOME: '/x' }), path.resolve('/data/ft'));
    assert.equal(defaultCacheDir({ FINETUNE_STUDIO_CACHE: '~/ft' }), path.join(os.homedir(), 'ft'));
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/xdg' }), path.join('/xdg', 'finetune-studio'));
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: 'relative/ignored' }), path.join(os.homedir(), '.cache', 'finetune-studio'));
    assert.equal(defaultCacheDir({}), path.join(os.homedir(), '.cache', 'finetune-studio'));
  });
});
