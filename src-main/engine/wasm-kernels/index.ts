/**
 * Training kernels for the TF.js WebAssembly backend.
 *
 * `registerWasmTrainingKernels()` adds the gradient kernels that stock tfjs-backend-wasm 4.22
 * lacks (so `model.fit` / `optimizer.minimize` work at all) and replaces stock kernels that are
 * pathologically slow or copy needlessly, each written as XNNPACK convolutions / poolings plus
 * cheap memory moves. It is idempotent and works before or after `tf.setBackend('wasm')`.
 *
 * `startWasmBackend({ threads })` initialises the backend (multithreaded in Node when asked) and
 * registers the kernels; `wasmHeapInfo()` reports the heap against its 4 GiB ceiling.
 */
export { registerWasmTrainingKernels, wasmTrainingKernelsRegistered, WASM_TRAINING_KERNELS, type RegisterResult } from './register.js';
export { startWasmBackend, wasmHeapInfo, type StartWasmOptions, type WasmStartInfo, type WasmHeapInfo } from './threads.js';
