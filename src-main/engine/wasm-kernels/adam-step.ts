/**
 * One fastai Adam update of one parameter as a single wasm kernel (see train/fastai-adam.ts for the
 * maths). Written as tf ops the update is ~13 kernels per parameter; a MobileNetV2 + fastai head has
 * ~260 parameter tensors, so a step paid ~3,500 tiny kernel calls (~20 µs each with tfjs' engine
 * bookkeeping): a fifth of a MobileNetV2-0.35 @128 training step. Here each parameter is one SIMD
 * pass over its four arrays in the wasm heap (ResNet-18's 11.7M parameters: 61 ms in a JS loop).
 *
 * Outputs are new tensors (the updated parameter, avg and sqr): updating the variable's memory in
 * place would go stale in the XNNPACK operator caches that the wasm Conv2D / MatMul kernels keep
 * per weight tensor.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type AdamHyper, simdKernels } from './simd-kernels.js';
import { heapOffset, type Info } from './wasm-ops.js';

export const ADAM_STEP = 'FinetuneAdamStep';

/** The update's scalars: decay = 1 - lr*wd (or 1), debias2 = 1 - sqrMom^step, stepSize = lr / (1 - mom^step). */
export type AdamStepAttrs = AdamHyper;

function adamStep(args: { inputs: { param: Info; grad: Info; avg: Info; sqr: Info }; backend: BackendWasm; attrs: AdamStepAttrs }): Info[] {
  const { inputs, backend, attrs } = args;
  const { param, grad, avg, sqr } = inputs;
  for (const t of [param, grad, avg, sqr]) {
    if (t.dtype !== 'float32') throw new Error(`${ADAM_STEP}: float32 tensors only, got ${t.dtype}`);
  }
  const outParam = backend.makeOutput(param.shape, 'float32');
  const outAvg = backend.makeOutput(param.shape, 'float32');
  const outSqr = backend.makeOutput(param.shape, 'float32');
  // Offsets after the last allocation (heap growth replaces the buffer).
  const { heap, offset: p } = heapOffset(backend, param);
  const g = heapOffset(backend, grad).offset;
  const a = heapOffset(backend, avg).offset;
  const q = heapOffset(backend, sqr).offset;
  const op = heapOffset(backend, outParam).offset;
  const oa = heapOffset(backend, outAvg).offset;
  const oq = heapOffset(backend, outSqr).offset;
  const size = param.shape.reduce((x, y) => x * y, 1);
  const simd = simdKernels(backend);
  const vectorized = simd ? size - (size % 4) : 0;
  if (simd && vectorized > 0) simd.adamStep(p * 4, g * 4, a * 4, q * 4, op * 4, oa * 4, oq * 4, vectorized * 4, attrs);
  const { decay, mom, sqrMom, eps, debias2, stepSize } = attrs;
  for (let i = vectorized; i < size; i++) {
    const gi = heap[g + i];
    const ai = heap[a + i] * mom + gi * (1 - mom);
    const qi = heap[q + i] * sqrMom + gi * gi * (1 - sqrMom);
    heap[oa + i] = ai;
    heap[oq + i] = qi;
    heap[op + i] = heap[p + i] * decay - (ai / (Math.sqrt(qi / debias2) + eps)) * stepSize;
  }
  return [outParam, outAvg, outSqr];
}

export const adamStepConfig: tf.KernelConfig = {
  kernelName: ADAM_STEP,
  backendName: 'wasm',
  kernelFunc: adamStep as unknown as tf.KernelFunc,
};
