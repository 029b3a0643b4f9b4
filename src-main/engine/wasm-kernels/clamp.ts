/**
 * Relu, Relu6 and ClipByValue for the wasm backend, replacing the stock kernels for float32: one
 * SIMD pass on the calling thread. The stock kernels are XNNPACK's, which with threads split even a
 * 1 MB tensor over the pthread pool and wait for it: in a ResNet-18 step at 128 px (batch 16) the
 * 18 Relu calls took 2.5 ms on 1 thread and 9-15 ms on 2; in a MobileNetV2-0.35 step the 36 Relu
 * took 4 and 10-12 ms, and its 35 ClipByValue (relu6 layers) 11 ms on 2 threads against 2.5 for the
 * same tensors' Relu here. int32 is clamped in JS (see clampInt32), other dtypes go to the stock kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type ClampKind, simdKernels } from './simd-kernels.js';
import { heapOffset, type Info, runStock } from './wasm-ops.js';

function clamp(kind: ClampKind, kernelName: string, backend: BackendWasm, inputs: { x: Info }, attrs: object, lo: number, hi: number): Info {
  const { x } = inputs;
  if (x.dtype === 'int32') return clampInt32(backend, x, lo, hi);
  const simd = x.dtype === 'float32' ? simdKernels(backend) : null;
  if (!simd) return runStock(kernelName, backend, inputs, attrs);
  const out = backend.makeOutput(x.shape, 'float32');
  const size = x.shape.reduce((a, b) => a * b, 1);
  const { heap, offset: xo } = heapOffset(backend, x);
  const oo = heapOffset(backend, out).offset;
  const vectorized = size - (size % 4);
  if (vectorized > 0) simd.clamp(kind, xo * 4, oo * 4, vectorized * 4, lo, hi);
  // As the SIMD body does for each kind (see clamp in simd-kernels.ts); Relu's hi is +Infinity.
  for (let i = vectorized; i < size; i++) {
    const v = kind === 'clip' ? heap[xo + i] : Math.max(heap[xo + i], 0);
    heap[oo + i] = v < lo ? lo : v > hi ? hi : v;
  }
  return out;
}

/**
 * int32 in plain JS: the stock ClipByValue got int32 wrong (values off from cpu's by up to 3.6e8
 * relative in the kernels test); rare in training, so correctness over speed.
 */
function clampInt32(backend: BackendWasm, x: Info, lo: number, hi: number): Info {
  const out = backend.makeOutput(x.shape, 'int32');
  const size = x.shape.reduce((a, b) => a * b, 1);
  const { heap, offset: xo } = heapOffset(backend, x);
  const oo = heapOffset(backend, out).offset;
  const ints = new Int32Array(heap.buffer, heap.byteOffset, heap.length);
  for (let i = 0; i < size; i++) {
    const v = ints[xo + i];
    // Storing truncates a fractional bound toward zero, as the cpu backend's Int32Array does.
    ints[oo + i] = v < lo ? lo : v > hi ? hi : v;
  }
  return out;
}

type ClampArgs = { inputs: { x: Info }; backend: BackendWasm; attrs: object };

export const reluConfig: tf.KernelConfig = {
  kernelName: tf.Relu,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: ClampArgs) => clamp('relu', tf.Relu, backend, inputs, attrs, 0, Number.POSITIVE_INFINITY)) as unknown as tf.KernelFunc,
};

export const relu6Config: tf.KernelConfig = {
  kernelName: tf.Relu6,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: ClampArgs) => clamp('relu6', tf.Relu6, backend, inputs, attrs, 0, 6)) as unknown as tf.KernelFunc,
};

export const clipByValueConfig: tf.KernelConfig = {
  kernelName: tf.ClipByValue,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: ClampArgs) => {
    const { clipValueMin, clipValueMax } = attrs as { clipValueMin: number; clipValueMax: number };
    return clamp('clip', tf.ClipByValue, backend, inputs, attrs, clipValueMin, clipValueMax);
  }) as unknown as tf.KernelFunc,
};
