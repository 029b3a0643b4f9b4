import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { datasetStatus, ensureDataset, getDataset, type DatasetProgress } from '../../src-main/engine/download/get-dataset.js';
import { DATASETS, findDataset, type DatasetEntry } from '../../src-main/engine/download/registry.js';
import { md5FirstMib, miniPets } from './support/archives.js';
import { startServer, type TestServer } from './support/http-server.js';

const { tgz: PETS_TGZ, names: PHOTO_NAMES } = miniPets();
/** The real Pets entry, with the checks of our miniature copy. Its URL stays the real one: only a mirror can serve it here. */
const PETS: DatasetEntry = { ...findDataset('pets'), sizeBytes: PETS_TGZ.length, checksum: { algorithm: 'md5-first-mib', value: md5FirstMib(PETS_TGZ) } };

let server: TestServer;
let work: string;
let n = 0;
/** A fresh cache dir and a mirror path of its own, so request counts are per test. */
function fresh(route: Parameters<TestServer['routes']['set']>[1] = { body: PETS_TGZ }) {
  const id = ++n;
  const mirror = `/mirror${id}/`;
  server.routes.set(`${mirror}oxford-iiit-pet.tgz`, route);
  return {
    cacheDir: path.join(work, `cache${id}`),
    mirrorBaseUrl: server.url(mirror),
    archivePath: `${mirror}oxford-iiit-pet.tgz`,
    retryBaseDelayMs: 10,
  };
}

before(async () => {
  server = await startServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'ft-dataset-'));
});
after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

describe('getDataset', () => {
  test('downloads from the mirror, verifies, extracts to <cache>/oxford-iiit-pet, and is a no-op the second time', async () => {
    const { cacheDir, mirrorBaseUrl, archivePath } = fresh();
    const events: DatasetProgress[] = [];
    const result = await ensureDataset(PETS, { cacheDir, mirrorBaseUrl, onProgress: (e) => events.push(e) });
    assert.equal(result.path, path.join(cacheDir, 'oxford-iiit-pet'));
    assert.deepEqual([result.downloaded, result.extracted, result.source], [true, true, 'mirror']);
    const images = await readdir(path.join(result.path, 'images'));
    assert.equal(images.filter((f) => f.endsWith('.jpg')).length, PHOTO_NAMES.length);
    assert.equal(images.filter((f) => f.endsWith('.mat')).length, 3);
    assert.ok(existsSync(path.join(result.path, 'annotations')));
    assert.ok(existsSync(path.join(cacheDir, 'archives', 'oxford-iiit-pet.tgz')), 'archive kept, like fastai');
    assert.deepEqual((await readdir(cacheDir)).sort(), ['archives', 'oxford-iiit-pet'], 'no lock or partial left');
    const phases = [...new Set(events.map((e) => e.phase))];
    assert.deepEqual(phases, ['download', 'verify', 'extract', 'done']);
    assert.ok(events.every((e) => e.datasetId === 'pets'));

    const again = await ensureDataset(PETS, { cacheDir, mirrorBaseUrl, onProgress: (e) => events.push(e) });
    assert.deepEqual([again.path, again.downloaded, again.extracted], [result.path, false, false]);
    assert.equal(server.requestsFor(archivePath).length, 1, 'no request the second time');
  });

  test('FINETUNE_MIRROR_URL in the environment replaces the internet too', async () => {
    const { cacheDir, mirrorBaseUrl, archivePath } = fresh();
    const folder = await getDataset(PETS, { cacheDir, env: { FINETUNE_MIRROR_URL: mirrorBaseUrl } });
    assert.equal(folder, path.join(cacheDir, 'oxford-iiit-pet'));
    assert.equal(server.requestsFor(archivePath).length, 1);
  });

  test('two concurrent requests for the same dataset download and extract it once', async () => {
    const { cacheDir, mirrorBaseUrl, archivePath } = fresh({ body: PETS_TGZ, chunkSize: 256 << 10, chunkDelayMs: 2 });
    const waits: DatasetProgress[] = [];
    const [a, b] = await Promise.all([
      ensureDataset(PETS, { cacheDir, mirrorBaseUrl }),
      ensureDataset(PETS, { cacheDir, mirrorBaseUrl, onProgress: (e) => e.phase === 'waiting' && waits.push(e) }),
    ]);
    assert.equal(a.path, b.path);
    assert.deepEqual([a.extracted, b.extracted].sort(), [false, true]);
    assert.equal(server.requestsFor(archivePath).length, 1);
    assert.equal(waits.length, 1);
    assert.deepEqual((await readdir(cacheDir)).sort(), ['archives', 'oxford-iiit-pet']);
  });

  test('cancel during the download, then get again: resumes where it stopped', async () => {
    const { cacheDir, mirrorBaseUrl, archivePath } = fresh({ body: PETS_TGZ, chunkSize: 32 << 10, chunkDelayMs: 5 });
    const controller = new AbortController();
    await assert.rejects(
      getDataset(PETS, { cacheDir, mirrorBaseUrl, signal: controller.signal, onProgress: (e) => e.doneBytes > 200_000 && controller.abort() }),
      { name: 'AbortError' },
    );
    const status = await datasetStatus(PETS, cacheDir);
    assert.equal(status.state, 'partial');
    assert.ok(status.partialBytes! > 200_000);

    server.routes.set(archivePath, { body: PETS_TGZ });
    const events: DatasetProgress[] = [];
    await getDataset(PETS, { cacheDir, mirrorBaseUrl, onProgress: (e) => events.push(e) });
    assert.equal(server.requestsFor(archivePath).at(-1)?.range, `bytes=${status.partialBytes}-`);
    assert.ok(events.some((e) => e.phase === 'download' && e.resumedFromBytes === status.partialBytes));
    assert.equal((await datasetStatus(PETS, cacheDir)).state, 'ready');
  });

  test('a truncated gzip (whose checks were recorded from the bad file) fails, and the bad archive is deleted', async () => {
    const truncated = PETS_TGZ.subarray(0, PETS_TGZ.length - 5000);
    const entry: DatasetEntry = { ...PETS, sizeBytes: truncated.length, checksum: { algorithm: 'md5-first-mib', value: md5FirstMib(truncated) } };
    const { cacheDir, mirrorBaseUrl } = fresh({ body: truncated });
    await assert.rejects(getDataset(entry, { cacheDir, mirrorBaseUrl }), (err: Error) => {
      assert.equal(err.name, 'ArchiveFormatError');
      assert.match(err.message, /oxford-iiit-pet\.tgz is damaged or incomplete.*It was deleted; run again to download it afresh/s);
      return true;
    });
    assert.equal((await datasetStatus(entry, cacheDir)).state, 'absent');
    assert.deepEqual(await readdir(cacheDir), ['archives']);
  });

  test('a local archive (setting or FINETUNE_ARCHIVE_DIR) is used without any network', async () => {
    const dir = path.join(work, 'usb-stick');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'oxford-iiit-pet.tgz'), PETS_TGZ);
    const before = server.requests.length;
    const viaOption = await ensureDataset(PETS, { cacheDir: path.join(work, 'local1'), localArchive: dir });
    assert.equal(viaOption.source, 'local');
    assert.equal(viaOption.archivePath, path.join(dir, 'oxford-iiit-pet.tgz'));
    const viaEnv = await ensureDataset(PETS, { cacheDir: path.join(work, 'local2'), env: { FINETUNE_ARCHIVE_DIR: dir } });
    assert.equal(viaEnv.source, 'local');
    assert.equal(server.requests.length, before);
    assert.equal(existsSync(path.join(work, 'local1', 'archives')), false, 'the local archive is not copied into the cache');
  });

  test('a local archive that is not the dataset is refused with its path', async () => {
    const file = path.join(work, 'wrong.tgz');
    await writeFile(file, PETS_TGZ.subarray(0, 1000));
    await assert.rejects(ensureDataset(PETS, { cacheDir: path.join(work, 'local3'), localArchive: file }), (err: Error) => {
      assert.equal(err.name, 'VerificationError');
      assert.ok(err.message.includes(file));
      return true;
    });
  });

  test('a folder of that name that is not the dataset is reported, not used', async () => {
    const { cacheDir, mirrorBaseUrl } = fresh();
    await mkdir(path.join(cacheDir, 'oxford-iiit-pet', 'images'), { recursive: true });
    assert.equal((await datasetStatus(PETS, cacheDir)).state, 'invalid');
    await assert.rejects(getDataset(PETS, { cacheDir, mirrorBaseUrl }), /oxford-iiit-pet exists but has no annotations.*Move or delete it/s);
  });

  test('leftovers of a crashed extraction are cleared before extracting again', async () => {
    const { cacheDir, mirrorBaseUrl } = fresh();
    const leftover = path.join(cacheDir, '.oxford-iiit-pet.partial-abc123');
    await mkdir(path.join(leftover, 'images'), { recursive: true });
    await getDataset(PETS, { cacheDir, mirrorBaseUrl });
    assert.equal(existsSync(leftover), false);
  });

  test('datasetStatus follows absent → downloaded → ready; keepArchive:false removes the archive', async () => {
    const { cacheDir, mirrorBaseUrl } = fresh();
    assert.equal((await datasetStatus(PETS, cacheDir)).state, 'absent');
    await mkdir(path.join(cacheDir, 'archives'), { recursive: true });
    await writeFile(path.join(cacheDir, 'archives', 'oxford-iiit-pet.tgz'), PETS_TGZ);
    assert.equal((await datasetStatus(PETS, cacheDir)).state, 'downloaded');
    const result = await ensureDataset(PETS, { cacheDir, mirrorBaseUrl, keepArchive: false });
    assert.equal(result.downloaded, false, 'the verified archive already there was used');
    assert.equal((await datasetStatus(PETS, cacheDir)).state, 'ready');
    assert.equal(existsSync(path.join(cacheDir, 'archives', 'oxford-iiit-pet.tgz')), false);
  });

  test('an unknown id lists the known ones', async () => {
    await assert.rejects(getDataset('petz', { cacheDir: work }), new RegExp(`Unknown dataset "petz". Known datasets: ${DATASETS.map((d) => d.id).join(', ')}`));
  });
});
