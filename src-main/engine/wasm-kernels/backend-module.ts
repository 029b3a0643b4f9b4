/**
 * Running our generated WebAssembly (wasm-asm.ts) on the tfjs wasm backend's own heap: a module
 * imports the backend's memory, so its functions read and write tensors in place. Instances are
 * cached per memory (one per backend) and per key; the kernel pool's threads (kernel-pool.ts)
 * instantiate the same modules on the same shared memory.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { encodeModule, type FunctionDef } from './wasm-asm.js';

// The project compiles without the DOM lib, where the WebAssembly namespace is declared; this is
// the part of it used here.
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WasmApi {
  Memory: abstract new (...args: never[]) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  validate(bytes: Uint8Array): boolean;
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export type WasmExports = Record<string, (...args: number[]) => number>;

/** The backend's WebAssembly.Memory (where the Emscripten glue keeps it in each build). */
export function backendMemory(backend: BackendWasm): WasmMemory | undefined {
  const m = backend.wasm as unknown as { asm?: { memory?: unknown }; wasmMemory?: unknown; HEAPU8: Uint8Array };
  for (const candidate of [m.asm?.memory, m.wasmMemory]) {
    if (candidate instanceof Wasm.Memory && candidate.buffer === m.HEAPU8.buffer) return candidate;
  }
  return undefined;
}

const instances = new WeakMap<WasmMemory, Map<string, WasmExports | null>>();

/**
 * The exports of `functions()` instantiated on the backend's heap, or null where they cannot run
 * (no wasm SIMD, memory not reachable): callers then take their stock-kernel path.
 */
export function exportsOnBackend(backend: BackendWasm, key: string, functions: () => FunctionDef[]): WasmExports | null {
  const memory = backendMemory(backend);
  return memory ? exportsOnMemory(memory, key, functions) : null;
}

/** As exportsOnBackend, for a memory at hand (a kernel-pool thread has no backend object). */
export function exportsOnMemory(memory: WasmMemory, key: string, functions: () => FunctionDef[]): WasmExports | null {
  let perMemory = instances.get(memory);
  if (!perMemory) instances.set(memory, (perMemory = new Map()));
  if (perMemory.has(key)) return perMemory.get(key)!;
  let exports: WasmExports | null = null;
  try {
    const bytes = encodeModule(functions(), { shared: isShared(memory) });
    if (Wasm.validate(bytes)) exports = new Wasm.Instance(new Wasm.Module(bytes), { env: { memory } }).exports as WasmExports;
  } catch {
    exports = null; // e.g. a runtime without wasm SIMD
  }
  perMemory.set(key, exports);
  return exports;
}

export function isShared(memory: WasmMemory): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
}

