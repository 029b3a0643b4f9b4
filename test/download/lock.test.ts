import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { withLock, type LockHolder } from '../../src-main/engine/download/lock.js';
import { REPO_ROOT } from '../helpers/shared.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ft-lock-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const holderScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'lock-holder.ts');

describe('withLock', () => {
  test('callers in one process run one after the other', async () => {
    const lock = path.join(dir, 'same-process.lock');
    const log: string[] = [];
    const job = (name: string) =>
      withLock(lock, async () => {
        log.push(`${name} start`);
        await new Promise((r) => setTimeout(r, 20));
        log.push(`${name} end`);
      });
    await Promise.all([job('a'), job('b'), job('c')]);
    assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    assert.equal(existsSync(lock), false);
  });

  test('the lock is released when the work throws', async () => {
    const lock = path.join(dir, 'throws.lock');
    await assert.rejects(withLock(lock, async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(existsSync(lock), false);
    assert.equal(await withLock(lock, async () => 'again'), 'again');
  });

  test('another process holding the lock makes us wait until it releases', async () => {
    const lock = path.join(dir, 'cross.lock');
    const child = spawn(process.execPath, ['--import', 'tsx', holderScript, lock], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const out: string[] = [];
      child.stdout.setEncoding('utf8').on('data', (s: string) => out.push(s));
      while (!out.join('').includes('locked')) await once(child.stdout, 'data');

      const waits: (LockHolder | undefined)[] = [];
      let ran = false;
      const mine = withLock(lock, async () => (ran = true), { onWait: (h) => waits.push(h), pollMs: 20 });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(ran, false, 'must not run while the other process holds the lock');
      assert.equal(waits.length, 1);
      assert.equal(waits[0]?.pid, child.pid);

      child.stdin.write('release\n');
      await mine;
      assert.equal(ran, true);
      assert.ok(out.join('').includes('released'));
    } finally {
      child.kill();
    }
  });

  test('a lock left by a process that died is taken over', async () => {
    const lock = path.join(dir, 'dead.lock');
    const dead = spawnSync(process.execPath, ['-e', '']); // a pid that existed and is gone now
    const holder: LockHolder = { pid: dead.pid!, host: os.hostname(), token: 'old', since: new Date().toISOString() };
    await writeFile(lock, JSON.stringify(holder));
    const waits: unknown[] = [];
    assert.equal(await withLock(lock, async () => 'got it', { onWait: (h) => waits.push(h) }), 'got it');
    assert.deepEqual(waits, []);
  });

  test('a lock from another machine is taken over only once its heartbeat is stale', async () => {
    const lock = path.join(dir, 'remote.lock');
    const holder: LockHolder = { pid: 1, host: 'some-other-host', token: 'remote', since: new Date().toISOString() };
    await writeFile(lock, JSON.stringify(holder));

    // Fresh: we wait, and cancelling the wait leaves their lock alone.
    const controller = new AbortController();
    const waiting = withLock(lock, async () => 'no', { signal: controller.signal, pollMs: 10, onWait: () => setTimeout(() => controller.abort(), 30) });
    await assert.rejects(waiting, { name: 'AbortError' });
    assert.equal(JSON.parse(await readFile(lock, 'utf8')).token, 'remote');

    // Not touched for two minutes: the other machine is gone.
    const old = new Date(Date.now() - 120_000);
    await utimes(lock, old, old);
    assert.equal(await withLock(lock, async () => 'taken'), 'taken');
  });
});
