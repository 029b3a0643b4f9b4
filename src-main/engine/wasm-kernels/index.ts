/**
 * Training kernels for the TF.js WebAssembly backend.
 *
 * `registerWasmTrainingKernels()` adds the gradient kernels that stock tfjs-backend-wasm 4.22
 * lacks (so `model.fit` / `optimizer.minimize` work at all) and replaces stock kernels that are
 * pathologically slow or copy needlessly, each written as XNNPACK convolutions / poolings plus
 * cheap memory moves. It is idempotent and works before or after `tf.setBackend('wasm')`.
 *
 * `startWasmBackend({ threads })` initialises the backend (multithreaded in Node when asked),
 * registers the kernels and installs the heap guard, which turns running out of the 4 GiB heap
 * into a recoverable `WasmHeapExhaustedError`; `wasmHeapInfo()` reports the heap size.
 */
export { registerWasmTrainingKernels, wasmTrainingKernelsRegistered, WASM_TRAINING_KERNELS, type RegisterResult } from './register.js';
export { startWasmBackend, type StartWasmOptions, type WasmStartInfo } from './threads.js';
export { CONV_MAX_POOL2D, RESIDUAL_CONV2D } from './conv2d-forward.js';
export {
  guardWasmHeap,
  releaseFailedStepMemory,
  wasmHeapInfo,
  type WasmHeapInfo,
  WasmHeapExhaustedError,
  WASM_HEAP_MAX_BYTES,
  DEFAULT_HEAP_RESERVE_BYTES,
} from './heap-guard.js';
