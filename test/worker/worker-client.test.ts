import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { forkLauncher, WorkerClient, type WorkerHandle } from '../../src-main/worker/worker-client.js';

describe('engine worker process', () => {
  test('runs jobs in a separate process and returns their results', async () => {
    const client = new WorkerClient();
    try {
      const backend = await client.run({ type: 'backend' }).result;
      assert.ok(['node-gpu', 'node', 'wasm', 'cpu'].includes(backend.name));
      assert.ok(backend.attempts.length === 4);
    } finally {
      client.close();
    }
  });

  test('an engine error comes back as an error with the engine message', async () => {
    const client = new WorkerClient();
    try {
      const missing = path.join('/nonexistent', 'photos');
      await assert.rejects(
        client.run({ type: 'scan', options: { root: missing, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.2, seed: 42 } } }).result,
        /The folder \/nonexistent\/photos does not exist/,
      );
    } finally {
      client.close();
    }
  });

  test('a crashed worker fails its pending jobs with a clear message; the next job gets a fresh worker', async () => {
    let handle: WorkerHandle | undefined;
    const client = new WorkerClient((entry, execArgv) => (handle = forkLauncher(entry, execArgv)));
    try {
      const job = client.run({ type: 'backend' });
      handle!.kill();
      await assert.rejects(job.result, (err: Error) => err.name === 'WorkerCrashed' && /engine process stopped unexpectedly/.test(err.message));
      const again = await client.run({ type: 'backend' }).result;
      assert.ok(again.name);
    } finally {
      client.close();
    }
  });
});
