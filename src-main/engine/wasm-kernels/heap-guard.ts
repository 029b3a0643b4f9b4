/**
 * Running out of the wasm heap, made recoverable.
 *
 * The tfjs wasm heap is capped at 4 GiB and never shrinks. Measured here, when a training step
 * does not fit:
 * - single-threaded build: the tensor allocation aborts the Emscripten module ("Aborted()"; the
 *   backend is dead for the rest of the process), or an XNNPACK operator built without memory
 *   writes out of bounds ("memory access out of bounds");
 * - threaded build: the same out-of-bounds write happens on a pool thread while the main thread
 *   waits for it: the process hangs.
 * `guardWasmHeap` wraps the backend's `_malloc` so that no tensor allocation grows the heap past
 * `4 GiB - reserve`: such an allocation is freed and `WasmHeapExhaustedError` is thrown instead. The error unwinds through the engine's scopes like any JS error (their tensors are
 * freed), the module stays alive, and the caller can retry with a smaller batch. The reserve is
 * left for XNNPACK's own allocations (packed weights, indirection buffers: tens of MB).
 */
import * as tf from '@tensorflow/tfjs';

/** tfjs 4.22's builds: 65535 pages. */
export const WASM_HEAP_MAX_BYTES = 4294901760;
export const DEFAULT_HEAP_RESERVE_BYTES = 256 * 2 ** 20;

export class WasmHeapExhaustedError extends Error {
  constructor(
    readonly requestedBytes: number,
    readonly heapBytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `The WebAssembly heap is full: allocating ${(requestedBytes / 2 ** 20).toFixed(1)} MB would grow it past ` +
        `${(limitBytes / 2 ** 20).toFixed(0)} MB (it is ${(heapBytes / 2 ** 20).toFixed(0)} MB; the hard limit is 4 GiB). ` +
        'Use a smaller batch or image size.',
    );
    this.name = 'WasmHeapExhaustedError';
  }
}

interface EmscriptenModule {
  _malloc: (bytes: number) => number;
  _free: (pointer: number) => void;
  asm?: { memory?: { buffer: ArrayBufferLike }; malloc?: (bytes: number) => number; free?: (pointer: number) => void };
  wasmMemory?: { buffer: ArrayBufferLike };
  HEAPU8: Uint8Array;
}

const GUARDED = Symbol('finetune heap guard');

function wasmModule(): EmscriptenModule {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: EmscriptenModule } | null;
  if (!backend?.wasm) throw new Error('the wasm backend is not initialised');
  return backend.wasm;
}

/** Current heap size: the memory object's buffer always has it (HEAPU8 may be a stale view). */
function currentHeapBytes(wasm: EmscriptenModule): number {
  const memory = wasm.asm?.memory ?? wasm.wasmMemory;
  return memory ? memory.buffer.byteLength : wasm.HEAPU8.buffer.byteLength;
}

export interface WasmHeapInfo {
  /** Current size of the wasm memory (it grows on demand and never shrinks). */
  heapBytes: number;
  /** The hard ceiling, 4 GiB minus one page for tfjs 4.22's builds. */
  maxBytes: number;
  /** Where the guard refuses to grow the heap further (maxBytes if no guard is installed). */
  limitBytes: number;
  /** True for the threaded build (shared memory). */
  threaded: boolean;
}

export function wasmHeapInfo(): WasmHeapInfo {
  const wasm = wasmModule() as EmscriptenModule & { [GUARDED]?: { limit: number } };
  const memory = wasm.asm?.memory ?? wasm.wasmMemory;
  const buffer = memory ? memory.buffer : wasm.HEAPU8.buffer;
  return {
    heapBytes: currentHeapBytes(wasm),
    maxBytes: WASM_HEAP_MAX_BYTES,
    limitBytes: wasm[GUARDED]?.limit ?? WASM_HEAP_MAX_BYTES,
    threaded: typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer,
  };
}

/**
 * Installs the guard on the active wasm backend (idempotent; a later call updates the reserve).
 * Returns the heap limit in bytes.
 */
export function guardWasmHeap(reserveBytes = DEFAULT_HEAP_RESERVE_BYTES): number {
  const wasm = wasmModule();
  const limit = WASM_HEAP_MAX_BYTES - reserveBytes;
  const guarded = wasm as EmscriptenModule & { [GUARDED]?: { limit: number } };
  if (guarded[GUARDED]) {
    guarded[GUARDED].limit = limit;
    return limit;
  }
  const state = { limit };
  guarded[GUARDED] = state;
  const heapBytes = () => currentHeapBytes(wasm);
  // Module._malloc starts as a trampoline that, on its first call, replaces itself with the raw
  // export: wrapping it would last one call. Wrap the raw export instead.
  const malloc = wasm.asm?.malloc ?? wasm._malloc;
  const free = wasm.asm?.free ?? wasm._free;
  wasm._free = free;
  wasm._malloc = (bytes: number) => {
    if (bytes > state.limit) throw new WasmHeapExhaustedError(bytes, heapBytes(), state.limit);
    // malloc returns 0 when the heap cannot grow (memory growth is on, so it does not abort); the
    // aborts seen without this guard come from C++ allocations made right after, which the throw
    // prevents.
    const before = heapBytes();
    const pointer = malloc(bytes);
    const after = heapBytes();
    // Refuse what made the heap grow past the limit. The heap stays grown (it never shrinks), but
    // what it holds free is used again: allocations that fit in it go through.
    if (pointer === 0 || (after > before && after > state.limit)) {
      if (pointer !== 0) free(pointer);
      throw new WasmHeapExhaustedError(bytes, after, state.limit);
    }
    return pointer;
  };
  return limit;
}

/**
 * Frees what a training step that threw (e.g. WasmHeapExhaustedError) left behind. tfjs keeps
 * each op's saved inputs (for the backward pass) outside every tidy scope and disposes them only
 * when `tf.grad*` / `optimizer.minimize` completes; after an exception they stay referenced by the
 * engine's tape forever, holding most of the step's activations. Call this after catching the
 * error, outside any gradient computation, before retrying (e.g. with a smaller batch).
 * Returns the number of tensors freed.
 */
export function releaseFailedStepMemory(): number {
  const engine = tf.engine() as unknown as {
    state: { gradientDepth: number; activeTape: { saved?: tf.Tensor[] }[] | null };
  };
  const { state } = engine;
  if (state.gradientDepth !== 0 || !state.activeTape) return 0;
  let freed = 0;
  for (const node of state.activeTape) {
    for (const tensor of node.saved ?? []) {
      if (!tensor.isDisposed) {
        tensor.dispose();
        freed++;
      }
    }
  }
  state.activeTape = null;
  return freed;
}
