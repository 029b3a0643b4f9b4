/**
 * Weights from a mirror, the cache or a local folder, through the real downloader, against a local
 * HTTP server on 127.0.0.1 that serves files from ../shared (nothing is copied into the repo).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { CATALOGUE, type CatalogueEntry } from '../../src-main/engine/models/catalogue.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { loadLayersModelFromDisk } from '../../src-main/engine/models/layers-model-files.js';
import { resolveWeights, WEIGHTS_DIR_ENV, WEIGHTS_MIRROR_ENV, type WeightsProgress } from '../../src-main/engine/models/weight-store.js';
import { makeTempDir } from '../helpers/images.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';
import { startLocalServer, type LocalServer } from './local-http-server.js';

const skip = sharedSkipReason('fixtures', 'resnet18.weights.safetensors') || sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top');
const RESNET18 = sharedPath('fixtures', 'resnet18.weights.safetensors');
const V2_DIR = sharedPath('weights', 'mobilenet_v2_0.35_224_no_top');

describe('weight store', { skip }, () => {
  let server: LocalServer;
  let v2ShardSize = 0;

  before(async () => {
    await selectBackend();
    v2ShardSize = (await stat(path.join(V2_DIR, 'weights.bin'))).size;
    server = await startLocalServer({
      '/m/resnet18.tv_in1k/model.safetensors': { file: RESNET18 },
      '/m/mobilenet_v2_0.35_224_no_top/model.json': { file: path.join(V2_DIR, 'model.json') },
      '/m/mobilenet_v2_0.35_224_no_top/weights.bin': { file: path.join(V2_DIR, 'weights.bin') },
      '/bad/mobilenet_v2_0.35_224_no_top/model.json': { file: path.join(V2_DIR, 'model.json') },
      '/bad/mobilenet_v2_0.35_224_no_top/weights.bin': { file: path.join(V2_DIR, 'weights.bin'), truncateTo: 1000 },
    });
  });

  after(async () => {
    await server?.close();
  });

  async function withCache<T>(fn: (cacheDir: string) => Promise<T>): Promise<T> {
    const { dir, cleanup } = await makeTempDir('weights-cache-');
    try {
      return await fn(dir);
    } finally {
      await cleanup();
    }
  }

  test('a safetensors checkpoint downloads once from a mirror, with progress, then comes from the cache', async () => {
    await withCache(async (cacheDir) => {
      const size = (await stat(RESNET18)).size;
      const events: WeightsProgress[] = [];
      const mirror = `${server.baseUrl}/m`;
      const first = await resolveWeights(CATALOGUE.resnet18, { cacheDir, mirrorUrl: mirror, env: {}, onProgress: (p) => events.push(p) });
      assert.equal(first.source, 'download');
      assert.equal(first.from, `${mirror}/resnet18.tv_in1k/model.safetensors`);
      assert.equal(first.path, path.join(cacheDir, 'resnet18.tv_in1k', 'model.safetensors'));
      assert.equal(first.downloadedBytes, size);
      assert.ok(events.length >= 2 && events.every((e) => e.id === 'resnet18.tv_in1k' && e.file === 'model.safetensors'));
      assert.equal(Math.max(...events.map((e) => e.receivedBytes)), size);
      assert.equal(server.hits.get('/m/resnet18.tv_in1k/model.safetensors'), 1);
      // Nothing but the verified file is left behind.
      assert.deepEqual((await readdir(path.dirname(first.path))).filter((f) => !f.endsWith('.lock')), ['model.safetensors']);

      const second = await resolveWeights(CATALOGUE.resnet18, { cacheDir, mirrorUrl: mirror, env: {} });
      assert.equal(second.source, 'cache');
      assert.equal(server.hits.get('/m/resnet18.tv_in1k/model.safetensors'), 1);

      // The cached file is what createModel loads (strictly: every tensor mapped, fc dropped).
      const m = await createModel({ arch: 'resnet18', numClasses: 3, store: { cacheDir, env: {} } });
      assert.equal(m.weights.source, 'cache');
      m.dispose();
    });
  });

  test('env FINETUNE_WEIGHTS_MIRROR is honoured; a damaged cached file is fetched again', async () => {
    await withCache(async (cacheDir) => {
      const env = { [WEIGHTS_MIRROR_ENV]: `${server.baseUrl}/m/` };
      const hitsBefore = server.hits.get('/m/resnet18.tv_in1k/model.safetensors') ?? 0;
      const first = await resolveWeights(CATALOGUE.resnet18, { cacheDir, env });
      // Cut the cached file short: the next call must notice and download it again.
      const bytes = await readFile(first.path);
      await writeFile(first.path, bytes.subarray(0, bytes.length - 100));
      const again = await resolveWeights(CATALOGUE.resnet18, { cacheDir, env });
      assert.equal(again.source, 'download');
      assert.equal((await stat(again.path)).size, bytes.length);
      assert.equal(server.hits.get('/m/resnet18.tv_in1k/model.safetensors'), hitsBefore + 2);
    });
  });

  test('a LayersModel downloads model.json, then its shards, and loads', async () => {
    await withCache(async (cacheDir) => {
      const events: WeightsProgress[] = [];
      const r = await resolveWeights(CATALOGUE['mobilenet_v2_0.35'], { cacheDir, mirrorUrl: `${server.baseUrl}/m`, env: {}, onProgress: (p) => events.push(p) });
      assert.equal(r.source, 'download');
      assert.equal(r.downloadedBytes, (await stat(path.join(V2_DIR, 'model.json'))).size + v2ShardSize);
      assert.deepEqual([...new Set(events.map((e) => `${e.fileIndex}/${e.fileCount ?? '?'} ${e.file}`))], ['1/? model.json', '2/2 weights.bin']);
      const model = await loadLayersModelFromDisk(r.path);
      assert.equal(model.countParams(), 410_208);
      model.dispose();
      const again = await resolveWeights(CATALOGUE['mobilenet_v2_0.35'], { cacheDir, mirrorUrl: `${server.baseUrl}/m`, env: {} });
      assert.equal(again.source, 'cache');
    });
  });

  test('a shard that does not add up to its manifest is rejected and deleted', async () => {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        resolveWeights(CATALOGUE['mobilenet_v2_0.35'], { cacheDir, mirrorUrl: `${server.baseUrl}/bad`, env: {} }),
        (err: Error) => {
          assert.match(err.message, /Could not get the mobilenet_v2_0\.35 weights from .*\/bad\/mobilenet_v2_0\.35_224_no_top\/model\.json/);
          assert.match(err.message, new RegExp(`weights\\.bin hold 1000 bytes but .*model\\.json describes ${v2ShardSize}`));
          return true;
        },
      );
      const left = await readdir(path.join(cacheDir, 'mobilenet_v2_0.35_224_no_top'));
      assert.deepEqual(left.filter((f) => !f.endsWith('.lock')), []);
    });
  });

  test('a catalogue checksum is enforced: right one passes, wrong one fails and keeps nothing', async () => {
    const sha256 = createHash('sha256').update(await readFile(RESNET18)).digest('hex');
    const size = (await stat(RESNET18)).size;
    const withSum = (value: string): CatalogueEntry => ({
      ...CATALOGUE.resnet18,
      weights: { ...CATALOGUE.resnet18.weights, size, checksum: { algorithm: 'sha256', value } },
    });
    await withCache(async (cacheDir) => {
      const ok = await resolveWeights(withSum(sha256), { cacheDir, mirrorUrl: `${server.baseUrl}/m`, env: {} });
      assert.equal(ok.source, 'download');
    });
    await withCache(async (cacheDir) => {
      const wrong = sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await assert.rejects(resolveWeights(withSum(wrong), { cacheDir, mirrorUrl: `${server.baseUrl}/m`, env: {} }), /sha256 is [0-9a-f]{64}, expected/);
      const left = await readdir(path.join(cacheDir, 'resnet18.tv_in1k'));
      assert.deepEqual(left.filter((f) => !f.endsWith('.lock')), []);
    });
  });

  test('a local folder (env FINETUNE_WEIGHTS_DIR) is used without any request; what it lacks comes from the mirror', async () => {
    await withCache(async (cacheDir) => {
      const before = server.totalHits();
      const env = { [WEIGHTS_DIR_ENV]: sharedPath('weights'), [WEIGHTS_MIRROR_ENV]: `${server.baseUrl}/m` };
      const v1 = await resolveWeights(CATALOGUE['mobilenet_v1_0.25'], { cacheDir, env });
      assert.deepEqual([v1.source, v1.path], ['local', sharedPath('weights', 'mobilenet_v1_0.25_224', 'model.json')]);
      const v2 = await resolveWeights(CATALOGUE['mobilenet_v2_0.35'], { cacheDir, env });
      assert.equal(v2.source, 'local');
      assert.equal(server.totalHits(), before);
      const r18 = await resolveWeights(CATALOGUE.resnet18, { cacheDir, env });
      assert.equal(r18.source, 'download');
      assert.equal(server.totalHits(), before + 1);
    });
  });

  test('a file: mirror (a copied weights folder) fills the cache offline', async () => {
    await withCache(async (cacheDir) => {
      const mirror = pathToFileURL(sharedPath('weights')).href;
      const r = await resolveWeights(CATALOGUE['mobilenet_v1_0.25'], { cacheDir, mirrorUrl: mirror, env: {} });
      assert.equal(r.source, 'download');
      assert.equal(r.path, path.join(cacheDir, 'mobilenet_v1_0.25_224', 'model.json'));
      assert.equal((await readdir(path.dirname(r.path))).filter((f) => f.startsWith('group')).length, 55);
    });
  });

  test('offline with no source: the error says which setting to use', async () => {
    await withCache(async (cacheDir) => {
      // A port that was just free: nothing listens there.
      const closed = await startLocalServer({});
      const url = closed.baseUrl;
      await closed.close();
      await assert.rejects(resolveWeights(CATALOGUE.resnet34, { cacheDir, mirrorUrl: url, env: {}, retries: 0 }), (err: Error) => {
        assert.match(err.message, /Could not get the resnet34 weights from http:\/\/127\.0\.0\.1:\d+\/resnet34\.tv_in1k\/model\.safetensors/);
        assert.match(err.message, new RegExp(`Offline\\? set ${WEIGHTS_DIR_ENV} to a folder holding resnet34\\.tv_in1k/model\\.safetensors`));
        return true;
      });
    });
  });
});
