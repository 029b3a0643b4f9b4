/**
 * A lock per file path, held across processes (the CLI and the app may fetch the same dataset at
 * once) and within one (two wizard steps may ask for it together).
 *
 * Across processes: `<path>` is created with O_EXCL holding the owner's pid, host and a token; the
 * owner touches it every few seconds. A waiter takes it over when the owner is gone: same host and
 * the pid no longer exists, or the file has not been touched for `staleMs` (a crashed machine, a
 * network home folder). Node has no flock(), and an O_EXCL file works on every platform and
 * filesystem we care about. Within a process a promise chain per path queues callers, since the
 * pid check cannot tell two callers of one process apart.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AbortError } from './errors.js';
import { sleep } from './sleep.js';

export interface LockHolder {
  pid: number;
  host: string;
  token: string;
  since: string;
}

export interface LockOptions {
  signal?: AbortSignal;
  /** Called once when the lock is busy and we start waiting; says who holds it. */
  onWait?: (holder: LockHolder | undefined) => void;
  /** A lock file untouched this long is taken over even if its pid seems alive. */
  staleMs?: number;
  /** How often a waiter looks again. */
  pollMs?: number;
}

const DEFAULT_STALE_MS = 60_000;

/** Callers of this process waiting for or holding each lock path, as a promise chain. */
const localQueues = new Map<string, Promise<void>>();

export async function withLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const key = path.resolve(lockPath);
  const previous = localQueues.get(key) ?? Promise.resolve();
  let releaseLocal!: () => void;
  const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
  const tail = previous.then(() => mine);
  localQueues.set(key, tail);
  try {
    let waited = false;
    await waitLocal(previous, options.signal, () => {
      waited = true;
      options.onWait?.({ pid: process.pid, host: os.hostname(), token: 'in-process', since: new Date().toISOString() });
    });
    const release = await acquireFileLock(key, { ...options, onWait: waited ? undefined : options.onWait });
    try {
      return await fn();
    } finally {
      await release();
    }
  } finally {
    releaseLocal();
    if (localQueues.get(key) === tail) localQueues.delete(key);
  }
}

async function waitLocal(previous: Promise<void>, signal: AbortSignal | undefined, onWait: () => void): Promise<void> {
  let settled = false;
  void previous.then(() => (settled = true));
  await Promise.resolve(); // lets an already-free queue settle before we report waiting
  if (!settled) onWait();
  if (!signal) return previous;
  if (signal.aborted) throw new AbortError('Cancelled while waiting for another download of the same file');
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(new AbortError('Cancelled while waiting for another download of the same file'));
    signal.addEventListener('abort', onAbort, { once: true });
    previous.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** Creates the lock file, waiting while a live owner holds it. Resolves to the release function. */
export async function acquireFileLock(lockPath: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const pollMs = options.pollMs ?? 250;
  const me: LockHolder = { pid: process.pid, host: os.hostname(), token: randomUUID(), since: new Date().toISOString() };
  let reportedWait = false;
  await mkdir(path.dirname(lockPath), { recursive: true });
  for (;;) {
    if (options.signal?.aborted) throw new AbortError(`Cancelled while waiting for the lock ${lockPath}`);
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(JSON.stringify(me));
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(lockPath);
    if (await isStale(lockPath, holder, staleMs)) {
      // Re-read just before removing, so we do not delete a lock someone else took over meanwhile.
      const again = await readHolder(lockPath);
      if (again?.token === holder?.token) await unlink(lockPath).catch(() => {});
      continue;
    }
    if (!reportedWait) {
      reportedWait = true;
      options.onWait?.(holder);
    }
    await sleep(pollMs, options.signal, `Cancelled while waiting for the lock ${lockPath}`);
  }

  // Heartbeat: keeps the lock fresh for waiters on other hosts, which cannot check our pid.
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lockPath, now, now).catch(() => {});
  }, Math.max(1000, staleMs / 4));
  heartbeat.unref();

  return async () => {
    clearInterval(heartbeat);
    const holder = await readHolder(lockPath);
    if (holder?.token === me.token) await unlink(lockPath).catch(() => {});
  };
}

async function readHolder(lockPath: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(lockPath, 'utf8')) as LockHolder;
    return typeof parsed.pid === 'number' && typeof parsed.token === 'string' ? parsed : undefined;
  } catch {
    return undefined; // gone, or being written by its owner right now
  }
}

async function isStale(lockPath: string, holder: LockHolder | undefined, staleMs: number): Promise<boolean> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(lockPath)).mtimeMs;
  } catch {
    return false; // already gone: the next O_EXCL open decides
  }
  if (Date.now() - mtimeMs > staleMs) return true;
  if (holder && holder.host === os.hostname() && holder.pid !== process.pid) return !pidAlive(holder.pid);
  return false;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
