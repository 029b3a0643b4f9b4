/**
 * Multithreaded tfjs-backend-wasm in Node.js / Electron's main process.
 *
 * tfjs 4.22 turns wasm threads off in Node (`WASM_HAS_MULTITHREAD_SUPPORT` returns false there,
 * tfjs issue #3830) because its loader cannot start Emscripten's pthread workers in Node:
 * 1. the worker script is handed to `new Worker()` as a `blob:` URL, which Node's Worker rejects;
 * 2. each worker then loads the main script with `importScripts(urlOrBlob)`, which in Node reads a
 *    file, but tfjs passes a Blob;
 * 3. the C++ side caps the pool at `os.cpus().length / 2` (it assumes 2 hyper-threads per core),
 *    i.e. one thread on a 2-vCPU machine, whatever `setThreadsCount` asks for.
 * `startWasmBackend({ threads })` works around the three, only while the backend initialises:
 * Node's Worker is wrapped to run tfjs' own worker source with `eval: true` and to point
 * `urlOrBlob` at the package's threaded glue file on disk, and `os.cpus()` reports two entries
 * per CPU. Nothing is written to disk and nothing in node_modules changes.
 *
 * Two more things make the threaded build usable in a long-lived process:
 * - the pool's workers are unref'd, or Node never exits on its own (Emscripten refs them);
 * - the heap guard (heap-guard.ts) is installed for both builds: without it, running out of heap
 *   aborts the single-threaded module and *hangs* the threaded one (a pool thread traps on an
 *   out-of-bounds write while the main thread waits for it); with it, both throw a recoverable
 *   WasmHeapExhaustedError.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { DEFAULT_HEAP_RESERVE_BYTES, guardWasmHeap } from './heap-guard.js';
import { startKernelPool } from './kernel-pool.js';
import { registerWasmTrainingKernels } from './register.js';

const require = createRequire(import.meta.url);

export interface StartWasmOptions {
  /**
   * Worker threads for XNNPACK (1 = the single-threaded build). Default 1. More threads than
   * CPUs only adds contention.
   */
  threads?: number;
  /**
   * Heap kept free for XNNPACK's own allocations: tensor allocations that would grow the heap
   * past 4 GiB minus this throw WasmHeapExhaustedError (see heap-guard.ts). Default 256 MiB.
   */
  heapReserveBytes?: number;
}

export interface WasmStartInfo {
  /** Threads in XNNPACK's pool, as the backend reports it. */
  threads: number;
  /** Threads our own SIMD kernels split their work over (kernel-pool.ts). */
  kernelThreads: number;
  simd: boolean;
  /** Why threads are off when more were asked for. */
  note?: string;
}

const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';
const THREADED_GLUE = `${WASM_PACKAGE}/wasm-out/tfjs-backend-wasm-threaded-simd.js`;
const THREADED_WORKER = `${WASM_PACKAGE}/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js`;

function isNode(): boolean {
  return typeof process === 'object' && typeof process.versions?.node === 'string';
}

type WorkerCtor = new (code: string, options: { eval: boolean }) => {
  postMessage(message: unknown, transfer?: unknown): void;
};

/**
 * Emscripten creates its pool with `new Worker(locateFile('...worker.js'))` and later sends
 * `{ cmd: 'load', urlOrBlob }`. This subclass ignores the (blob:) URL and runs tfjs' worker source
 * directly, and replaces a Blob `urlOrBlob` by the path of the same glue code on disk.
 */
function makePthreadWorker(Base: WorkerCtor, source: string, glueFile: string): unknown {
  return class PthreadWorker extends Base {
    constructor(_url: unknown) {
      super(source, { eval: true });
    }
    override postMessage(message: unknown, transfer?: unknown): void {
      const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
      if (m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') message = { ...m, urlOrBlob: glueFile };
      super.postMessage(message, transfer);
    }
  };
}

/**
 * Initialises the wasm backend (threaded when asked and possible), makes it the active backend,
 * and registers the training kernels. Call it instead of `tf.setBackend('wasm')`, once, before
 * anything else initialises the wasm backend.
 */
export async function startWasmBackend(options: StartWasmOptions = {}): Promise<WasmStartInfo> {
  const wasm = (await import(WASM_PACKAGE)) as typeof import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  const wanted = Math.max(1, Math.floor(options.threads ?? 1));
  let note: string | undefined;
  const useThreads = wanted > 1 && isNode();
  if (wanted > 1 && !isNode()) {
    note = 'outside Node.js, tfjs decides (threads need SharedArrayBuffer and cross-origin isolation)';
  }
  if (useThreads && tf.findBackend('wasm')) {
    note = 'the wasm backend was already initialised single-threaded: call startWasmBackend before anything else uses it';
  }
  if (!useThreads || note) {
    if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') failed");
    await tf.ready();
  } else {
    const workerThreads = require('node:worker_threads') as { Worker: WorkerCtor };
    const os = require('node:os') as { cpus: () => unknown[] };
    const { wasmWorkerContents } = require(THREADED_WORKER) as { wasmWorkerContents: string };
    // tfjs escapes newlines the same way before turning this source into a Blob: the template
    // literal it is stored in has real newlines inside string literals.
    const source = wasmWorkerContents.replace(/\n/g, '\\n');
    const glueFile = require.resolve(THREADED_GLUE);
    const RealWorker = workerThreads.Worker;
    const realCpus = os.cpus;
    workerThreads.Worker = makePthreadWorker(RealWorker, source, glueFile) as WorkerCtor;
    os.cpus = () => {
      const cpus = realCpus();
      // The C++ pool size is min(requested, cpus / 2): report enough CPUs for `wanted` threads.
      return Array.from({ length: Math.max(cpus.length, 2 * wanted) }, (_, i) => cpus[i % cpus.length]);
    };
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(wanted);
    try {
      if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') failed with threads on");
      await tf.ready();
    } finally {
      os.cpus = realCpus;
      // Emscripten keeps its own reference (global.Worker) for workers it starts later.
      workerThreads.Worker = RealWorker;
    }
  }
  releasePoolThreads();
  guardWasmHeap(options.heapReserveBytes ?? DEFAULT_HEAP_RESERVE_BYTES);
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  const threads = wasm.getThreadsCount();
  if (useThreads && threads < wanted) note ??= `asked for ${wanted} threads, the backend runs ${threads}`;
  let kernelThreads = 1;
  try {
    kernelThreads = await startKernelPool(tf.findBackend('wasm') as BackendWasm, threads);
  } catch (err) {
    note ??= `our SIMD kernels run on 1 thread: their thread pool did not start (${err instanceof Error ? err.message : String(err)})`;
  }
  return { threads, kernelThreads, simd, ...(note ? { note } : {}) };
}

/**
 * XNNPACK's pool threads run for the life of the backend, and Emscripten `ref()`s the worker of
 * every running pthread, so Node would never exit on its own. They only ever wait for work the
 * main thread hands them; unref'd, they no longer hold the process open.
 */
function releasePoolThreads(): void {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: { PThread?: { runningWorkers?: { unref?: () => void }[] } } };
  for (const worker of backend.wasm?.PThread?.runningWorkers ?? []) worker.unref?.();
}
