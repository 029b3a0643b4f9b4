/**
 * Our generated SIMD kernels on several threads. XNNPACK runs its GEMMs and convolutions on the
 * threaded build's pthread pool, but the kernels of this folder are plain WebAssembly functions
 * that the main thread calls: with 2 threads they were ~45% of a ResNet-18 training step and ran
 * on one core. The pool is N - 1 worker_threads that instantiate the same generated modules on
 * the same shared heap (backend-module.ts); a kernel splits its work into parts with disjoint
 * outputs, and the main thread and the workers take parts until none are left.
 *
 * Hand-off is through one SharedArrayBuffer (no messages, so the main thread can block inside a
 * synchronous tfjs kernel): the main thread writes the task's name and numeric arguments, bumps
 * a sequence number the workers wait on (Atomics.wait), runs parts itself, then waits until every
 * worker has acknowledged the task. A worker looks the task up by name in pool-tasks.ts, where
 * each task builds the same part function that the main thread runs.
 *
 * Only the threaded build has a shared heap; the single-threaded build, a backend started with
 * 1 thread, or a pool that failed to start run every part on the calling thread.
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, isShared, type WasmMemory } from './backend-module.js';

/** Int32 slots at the start of the control buffer. */
export const Slot = {
  /** Incremented by the main thread for each task; workers wait for it to change. -1: stop. */
  Seq: 0,
  /** The next part to take. */
  Next: 1,
  Parts: 2,
  /** Workers that have finished the current task. */
  Done: 3,
  Args: 4,
  TextBytes: 5,
  /** Bytes of the first error message of the current task, 0 when none (-1 while written). */
  ErrorBytes: 6,
} as const;
// 8 slots keep the Float64 arguments 8-byte aligned.
const SLOTS = 8;
const MAX_ARGS = 64;
const MAX_TEXT = 16_384;
const MAX_ERROR = 2_048;

/** Views on the control buffer, the same on both sides. */
export interface ControlViews {
  ints: Int32Array;
  args: Float64Array;
  text: Uint8Array;
  error: Uint8Array;
}

export function controlViews(buffer: SharedArrayBuffer): ControlViews {
  const argsAt = SLOTS * 4;
  const textAt = argsAt + MAX_ARGS * 8;
  const errorAt = textAt + MAX_TEXT;
  return {
    ints: new Int32Array(buffer, 0, SLOTS),
    args: new Float64Array(buffer, argsAt, MAX_ARGS),
    text: new Uint8Array(buffer, textAt, MAX_TEXT),
    error: new Uint8Array(buffer, errorAt, MAX_ERROR),
  };
}
const CONTROL_BYTES = SLOTS * 4 + MAX_ARGS * 8 + MAX_TEXT + MAX_ERROR;

/** Records the first failure of a task (worker side, or the main thread's own parts). */
export function recordError(views: ControlViews, message: string): void {
  const bytes = new TextEncoder().encode(message).subarray(0, MAX_ERROR);
  if (Atomics.compareExchange(views.ints, Slot.ErrorBytes, 0, -1) !== 0) return; // not the first
  views.error.set(bytes);
  Atomics.store(views.ints, Slot.ErrorBytes, bytes.length);
}

/** A task as the workers see it: a name in pool-tasks.ts, numbers, and optional text (JSON). */
export interface PoolTask {
  name: string;
  args: readonly number[];
  text?: string;
}

/** A waiting worker takes well under a millisecond to wake; this only catches a dead one. */
const STALL_MS = 120_000;

class KernelPool {
  private readonly views: ControlViews;
  private running = false;
  /** Set when a worker stopped answering: every later task runs on the calling thread. */
  broken = false;
  /** More threads than CPUs: a polling caller would take a CPU from a worker, so it sleeps at once. */
  private readonly oversubscribed: boolean;

  constructor(
    readonly workers: Worker[],
    buffer: SharedArrayBuffer,
  ) {
    this.views = controlViews(buffer);
    this.oversubscribed = workers.length + 1 > os.availableParallelism();
  }

  /** Runs parts 0..parts-1 of `task`, `runPart` being this thread's copy of the part function. */
  run(task: PoolTask, parts: number, runPart: (part: number) => void): void {
    // A kernel never nests another, but a bug that did must not deadlock: run it here.
    if (this.running) return runLocally(parts, runPart);
    if (task.args.length > MAX_ARGS) throw new Error(`kernel pool: ${task.name} has more than ${MAX_ARGS} arguments`);
    const { ints, args, text, error } = this.views;
    const encoded = new TextEncoder().encode(`${task.name}\n${task.text ?? ''}`);
    if (encoded.length > MAX_TEXT) throw new Error(`kernel pool: ${task.name}'s text is over ${MAX_TEXT} bytes`);
    this.running = true;
    kernelPoolTasks.set(task.name, (kernelPoolTasks.get(task.name) ?? 0) + 1);
    try {
      args.set(task.args);
      text.set(encoded);
      Atomics.store(ints, Slot.Args, task.args.length);
      Atomics.store(ints, Slot.TextBytes, encoded.length);
      Atomics.store(ints, Slot.Parts, parts);
      Atomics.store(ints, Slot.Next, 0);
      Atomics.store(ints, Slot.Done, 0);
      Atomics.store(ints, Slot.ErrorBytes, 0);
      Atomics.add(ints, Slot.Seq, 1);
      Atomics.notify(ints, Slot.Seq);
      try {
        for (let part = Atomics.add(ints, Slot.Next, 1); part < parts; part = Atomics.add(ints, Slot.Next, 1)) runPart(part);
      } catch (err) {
        Atomics.store(ints, Slot.Next, parts); // the workers stop taking parts
        recordError(this.views, err instanceof Error ? err.message : String(err));
      }
      // Poll for the workers a while before sleeping (SPIN_MS).
      const spinUntil = performance.now() + (this.oversubscribed ? 0 : kernelPoolOptions.spinMs);
      while (Atomics.load(ints, Slot.Done) < this.workers.length && performance.now() < spinUntil);
      const since = Date.now();
      for (let done = Atomics.load(ints, Slot.Done); done < this.workers.length; done = Atomics.load(ints, Slot.Done)) {
        if (Atomics.wait(ints, Slot.Done, done, 1_000) === 'timed-out' && Date.now() - since > STALL_MS) {
          this.broken = true;
          throw new Error(`kernel pool: a worker thread did not finish ${task.name} within ${STALL_MS / 1000} s`);
        }
      }
      const errorBytes = Atomics.load(ints, Slot.ErrorBytes);
      if (errorBytes !== 0) {
        throw new Error(`kernel pool: ${task.name} failed: ${new TextDecoder().decode(error.slice(0, Math.max(0, errorBytes)))}`);
      }
    } finally {
      this.running = false;
    }
  }
}

function runLocally(parts: number, runPart: (part: number) => void): void {
  for (let part = 0; part < parts; part++) runPart(part);
}

const pools = new WeakMap<WasmMemory, KernelPool>();

/** Tasks handed to a pool, by name (tests check which kernels reached it). */
export const kernelPoolTasks = new Map<string, number>();

/**
 * How long the calling thread, its own parts done, polls for the workers before it sleeps. It has
 * nothing else to run meanwhile; sleeping, it woke ~100-250 µs after the last worker finished, on
 * each of the ~30 tasks of a forward pass. ResNet-18 / ResNet-34 at 128 px, batch 16, 2 threads,
 * alternating in one process (median ms): 80.5 -> 79.8 and 140.2 -> 136.5, 81.7 -> 79.3.
 */
const SPIN_MS = 2;

/**
 * Tests: `enabled = false` runs every part on the calling thread, in order. Nothing else changes
 * (kernels still split into the same parts), so results must be bitwise the same.
 */
export const kernelPoolOptions = { enabled: true, spinMs: SPIN_MS };

function poolOf(backend: BackendWasm): KernelPool | undefined {
  const memory = backendMemory(backend);
  const pool = memory ? pools.get(memory) : undefined;
  return pool && !pool.broken ? pool : undefined;
}

/**
 * A worker running kernel-pool-worker: the built `.js` file, or in development (sources run
 * under tsx, whose `--import` hook worker threads do not inherit on Node 20) an eval'd bootstrap
 * that loads the `.ts` source through tsx's API.
 */
function startWorker(workerData: unknown): Worker {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return new Worker(path.join(path.dirname(here), 'kernel-pool-worker.js'), { workerData });
  const entry = JSON.stringify(pathToFileURL(path.join(path.dirname(here), 'kernel-pool-worker.ts')).href);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${tsx}).then((api) => api.tsImport(${entry}, ${entry}))`, { eval: true, workerData });
}

/**
 * Starts `threads - 1` worker threads on the backend's shared heap (nothing when the heap is not
 * shared or threads <= 1). Resolves with the number of threads kernels now run on.
 */
export async function startKernelPool(backend: BackendWasm, threads: number): Promise<number> {
  const memory = backendMemory(backend);
  if (!memory || !isShared(memory) || threads <= 1) return 1;
  const existing = pools.get(memory);
  if (existing) return existing.workers.length + 1;
  const buffer = new SharedArrayBuffer(CONTROL_BYTES);
  const { ints } = controlViews(buffer);
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < threads - 1; i++) {
      const worker = startWorker({ memory, control: buffer });
      workers.push(worker);
      await new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`kernel pool worker exited with code ${code} while starting`)));
      });
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
      // Blocked in Atomics.wait between tasks, the workers must not hold the process open.
      worker.unref();
    }
  } catch (err) {
    Atomics.store(ints, Slot.Seq, -1);
    Atomics.notify(ints, Slot.Seq);
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  }
  pools.set(memory, new KernelPool(workers, buffer));
  return threads;
}

/** Threads that kernels split their parts over on this backend (1 without a pool). */
export function kernelThreads(backend: BackendWasm): number {
  const pool = poolOf(backend);
  return pool ? pool.workers.length + 1 : 1;
}

/**
 * Handing a task to the pool and waiting for it costs 20-100 µs (measured, 2 threads): a 1x1
 * filter gradient of 0.5 MFLOP took 20 µs here and 70-120 µs pooled, one of 17 MFLOP 320 -> 250 µs.
 */
const MIN_POOLED_MICROS = 250;

/**
 * How many parts to split a kernel into: `perThread` per kernel thread, or 1 (run it here) when
 * its estimated single-thread time is too short for the hand-off to pay, never more than `most`.
 */
export function poolParts(backend: BackendWasm, estimatedMicros: number, most: number, perThread = 1): number {
  const threads = kernelThreads(backend);
  if (threads === 1 || estimatedMicros < MIN_POOLED_MICROS) return 1;
  return Math.max(1, Math.min(most, threads * perThread));
}

/**
 * Runs parts 0..parts-1 of a task on the pool (or all here without one). The parts must write
 * disjoint memory; `runPart` must do what the task of the same name in pool-tasks.ts does.
 */
export function runParts(backend: BackendWasm, task: PoolTask, parts: number, runPart: (part: number) => void): void {
  const pool = kernelPoolOptions.enabled ? poolOf(backend) : undefined;
  if (!pool || parts <= 1) return runLocally(parts, runPart);
  pool.run(task, parts, runPart);
}
