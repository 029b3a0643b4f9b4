import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { UsageError } from '../../src-main/cli/command.js';
import { createDatasetGetCommand } from '../../src-main/cli/commands/dataset-get.js';
import { createDatasetListCommand, datasetListCommand } from '../../src-main/cli/commands/dataset-list.js';
import { DATASETS, findDataset, type DatasetEntry } from '../../src-main/engine/download/registry.js';
import { md5FirstMib, miniPets } from './support/archives.js';
import { startServer, type TestServer } from './support/http-server.js';

const { tgz } = miniPets(8, 16 << 10);
let server: TestServer;
let work: string;
let datasets: DatasetEntry[];

before(async () => {
  server = await startServer({ '/oxford-iiit-pet.tgz': { body: tgz } });
  work = await mkdtemp(path.join(os.tmpdir(), 'ft-cli-'));
  // The registry as the CLI sees it, with Pets pointing at the local server.
  datasets = DATASETS.map((d) =>
    d.id === 'pets' ? { ...d, url: server.url('/oxford-iiit-pet.tgz'), sizeBytes: tgz.length, checksum: { algorithm: 'md5-first-mib', value: md5FirstMib(tgz) } } : d,
  );
});
after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

/** Collects what a command prints: stdout via console.log, progress via the stream it is given. */
function capture(t: TestContext) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  t.mock.method(console, 'log', (...args: unknown[]) => stdout.push(args.join(' ')));
  const stream = { isTTY: false, write: (s: string) => (stderr.push(s), true) } as unknown as NodeJS.WriteStream;
  return { stdout, stderr, stream };
}

describe('dataset get', () => {
  test('downloads and extracts, prints the folder on stdout and progress on stderr; the second run says it is there', async (t) => {
    const { stdout, stderr, stream } = capture(t);
    const cacheDir = path.join(work, 'get');
    const command = createDatasetGetCommand({ datasets, stream });
    assert.equal(command.name, 'dataset get');
    assert.equal(await command.run(['pets', '--cache-dir', cacheDir]), 0);
    const folder = path.join(cacheDir, 'oxford-iiit-pet');
    assert.deepEqual(stdout, [folder]);
    assert.ok(existsSync(path.join(folder, 'images')));
    assert.ok(existsSync(path.join(cacheDir, 'archives', 'oxford-iiit-pet.tgz')), 'the archive is kept by default');
    const log = stderr.join('');
    assert.match(log, /Downloading pets {2}done in \d\d:\d\d {2}[\d.]+ (KiB|MiB)/);
    assert.match(log, /Extracting pets {2}done in/);
    assert.match(log, /Oxford-IIIT Pet is ready, 7,390 photos\./);

    stdout.length = 0;
    stderr.length = 0;
    assert.equal(await command.run(['pets', '--cache-dir', cacheDir]), 0);
    assert.deepEqual(stdout, [folder]);
    assert.match(stderr.join(''), /already here/);
    assert.equal(server.requestsFor('/oxford-iiit-pet.tgz').length, 1);
  });

  test('--delete-archive removes the archive after extracting', async (t) => {
    const { stream } = capture(t);
    const cacheDir = path.join(work, 'delete');
    assert.equal(await createDatasetGetCommand({ datasets, stream }).run(['pets', '--cache-dir', cacheDir, '--delete-archive']), 0);
    assert.ok(existsSync(path.join(cacheDir, 'oxford-iiit-pet', 'images')));
    assert.deepEqual(await readdir(path.join(cacheDir, 'archives')), [], 'neither the archive nor its .part or lock is left');
  });

  test('--mirror replaces the dataset URL', async (t) => {
    const { stream } = capture(t);
    server.routes.set('/mirror/oxford-iiit-pet.tgz', { body: tgz });
    const cacheDir = path.join(work, 'mirror');
    const local = datasets.map((d) => (d.id === 'pets' ? { ...d, url: 'https://unreachable.invalid/oxford-iiit-pet.tgz' } : d));
    assert.equal(await createDatasetGetCommand({ datasets: local, stream }).run(['pets', '--cache-dir', cacheDir, '--mirror', server.url('/mirror')]), 0);
    assert.equal(server.requestsFor('/mirror/oxford-iiit-pet.tgz').length, 1);
  });

  test('Ctrl-C cancels with exit code 130 and keeps the partial download for the next run', async (t) => {
    const { stderr, stream } = capture(t);
    // Big enough (2.6 MB) that the first 1 MiB write lands well before the end.
    const big = miniPets(40, 64 << 10).tgz;
    server.routes.set('/slow/oxford-iiit-pet.tgz', { body: big, chunkSize: 64 << 10, chunkDelayMs: 10 });
    const cacheDir = path.join(work, 'sigint');
    const part = path.join(cacheDir, 'archives', 'oxford-iiit-pet.tgz.part');
    // Press Ctrl-C once the first bytes are on disk.
    const poll = setInterval(() => {
      if (existsSync(part) && statSync(part).size > 0) {
        clearInterval(poll);
        process.emit('SIGINT');
      }
    }, 5);
    t.after(() => clearInterval(poll));
    const slow = datasets.map((d) => (d.id === 'pets' ? { ...d, url: server.url('/slow/oxford-iiit-pet.tgz'), sizeBytes: big.length, checksum: undefined } : d));
    const listenersBefore = process.listenerCount('SIGINT');
    assert.equal(await createDatasetGetCommand({ datasets: slow, stream }).run(['pets', '--cache-dir', cacheDir]), 130);
    assert.equal(process.listenerCount('SIGINT'), listenersBefore, 'the handler is removed again');
    assert.match(stderr.join(''), /Cancelled\. Run the same command again to resume\./);
    assert.ok(statSync(part).size > 0);
  });

  test('argument errors are UsageErrors that list the datasets', async (t) => {
    const { stream } = capture(t);
    const command = createDatasetGetCommand({ stream });
    const ids = DATASETS.map((d) => d.id).join(', ');
    await assert.rejects(command.run(['petz']), (err: Error) => err instanceof UsageError && err.message === `Unknown dataset "petz". Known datasets: ${ids}.`);
    await assert.rejects(command.run([]), (err: Error) => err instanceof UsageError && err.message.includes(ids));
    await assert.rejects(command.run(['pets', 'mnist-tiny']), UsageError);
    await assert.rejects(command.run(['pets', '--bogus']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    assert.match(command.usage, /--mirror URL.*FINETUNE_MIRROR_URL/s);
  });
});

describe('dataset list', () => {
  test('shows every dataset with its size and what is in the cache', async (t) => {
    const { stdout } = capture(t);
    const cacheDir = path.join(work, 'list');
    assert.equal(datasetListCommand.name, 'dataset list');
    assert.equal(await createDatasetListCommand({ datasets }).run(['--cache-dir', cacheDir]), 0);
    const text = stdout.join('\n');
    for (const d of DATASETS) assert.ok(text.includes(d.id), `lists ${d.id}`);
    assert.match(text, /pets\* +\S+ KiB +- +Oxford-IIIT Pet \(URLs\.PETS\)/);
    assert.match(text, /imagenette-160 +94\.4 MiB/);
  });

  test('--json reports states, e.g. ready after a get', async (t) => {
    const { stdout, stream } = capture(t);
    const cacheDir = path.join(work, 'list-json');
    await createDatasetGetCommand({ datasets, stream }).run(['pets', '--cache-dir', cacheDir]);
    stdout.length = 0;
    assert.equal(await createDatasetListCommand({ datasets }).run(['--cache-dir', cacheDir, '--json']), 0);
    const rows = JSON.parse(stdout.join('\n')) as { id: string; state: string; folder: string; sizeBytes: number }[];
    assert.deepEqual(rows.map((r) => r.id), DATASETS.map((d) => d.id));
    const pets = rows.find((r) => r.id === 'pets')!;
    assert.deepEqual([pets.state, pets.folder], ['ready', path.join(cacheDir, 'oxford-iiit-pet')]);
    assert.equal(rows.find((r) => r.id === 'mnist-sample')?.state, 'absent');
    assert.equal(rows.find((r) => r.id === 'mnist-sample')?.sizeBytes, findDataset('mnist-sample').sizeBytes);
  });

  test('rejects stray arguments', async () => {
    await assert.rejects(datasetListCommand.run(['pets']), { code: 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' });
  });
});
