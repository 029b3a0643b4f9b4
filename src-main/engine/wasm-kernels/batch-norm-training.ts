/**
 * BatchNorm in training mode (batch statistics) as one op with a closed-form gradient, for the
 * wasm backend. tfjs-layers builds it from tf.moments (Mean, a broadcasting SquaredDifference,
 * Mean) and batchNormalization, so the tape holds ~10 nodes per layer whose gradients are
 * broadcasting Sub/Mul/Tile passes over the activation; with 54 BatchNorm layers that was about a
 * quarter of a MobileNetV2-0.35 training step. Here:
 * - forward: per-channel mean and (biased, as tf.moments) variance in two SIMD passes, then the
 *   existing one-pass FusedBatchNorm kernel;
 * - backward: sum(dy) and sum(dy * (x - mean)) in one SIMD pass, then
 *   dx = dy*a + (x - mean)*b + d per channel, with a = gamma*s, b = -gamma*s^3*sum(dy*(x-mean))/N,
 *   d = -gamma*s*sum(dy)/N, s = 1/sqrt(var + eps); dgamma = s*sum(dy*(x-mean)), dbeta = sum(dy).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { batchNormSums } from './fused-grads.js';
import type { WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { type SimdKernels, simdKernels, simdKernelsOnMemory } from './simd-kernels.js';
import { heapOffset, type Info } from './wasm-ops.js';

export const CHANNEL_MOMENTS = 'FinetuneChannelMoments';
export const BATCH_NORM_GRAD = 'FinetuneBatchNormGrad';

const channelsOf = (x: Info) => x.shape[x.shape.length - 1];
const sizeOf = (x: Info) => x.shape.reduce((a, b) => a * b, 1);

/** [2, C]: mean and biased variance over every axis but the last. */
function channelMoments(args: { inputs: { x: Info }; backend: BackendWasm }): Info {
  const { inputs, backend } = args;
  const { x } = inputs;
  const c = channelsOf(x);
  const n = sizeOf(x) / c;
  const zeros = backend.makeOutput([c], 'float32');
  const mean = backend.makeOutput([c], 'float32');
  let first: Info | undefined;
  let second: Info | undefined;
  try {
    const z = heapOffset(backend, zeros);
    z.heap.fill(0, z.offset, z.offset + c);
    first = batchNormSums({ inputs: { x, dy: x, mean: zeros }, backend });
    const f = heapOffset(backend, first);
    const mo = heapOffset(backend, mean).offset;
    for (let i = 0; i < c; i++) f.heap[mo + i] = f.heap[f.offset + i] / n;
    // sum(x * (x - mean)) = sum((x - mean)^2): the same two-pass variance as tf.moments.
    second = batchNormSums({ inputs: { x, dy: x, mean }, backend });
    const out = backend.makeOutput([2, c], 'float32');
    const { heap, offset: o } = heapOffset(backend, out);
    const so = heapOffset(backend, second).offset;
    const m = heapOffset(backend, mean).offset;
    for (let i = 0; i < c; i++) {
      heap[o + i] = heap[m + i];
      heap[o + c + i] = heap[so + c + i] / n;
    }
    return out;
  } finally {
    for (const t of [zeros, mean, first, second]) if (t) backend.disposeData(t.dataId);
  }
}

/** Byte addresses of dx = dy*a + (x - mean)*b + d over `rows` rows of `rowBytes`. */
interface BackwardArgs {
  x: number;
  dy: number;
  mean: number;
  a: number;
  b: number;
  d: number;
  out: number;
  rows: number;
  rowBytes: number;
}
const BACKWARD_KEYS = ['x', 'dy', 'mean', 'a', 'b', 'd', 'out', 'rows', 'rowBytes'] as const;

/** Part `part` of `parts`: a range of rows. */
function backwardPart(simd: SimdKernels, w: BackwardArgs): (part: number, parts: number) => void {
  return (part, parts) => {
    const r0 = Math.floor((w.rows * part) / parts);
    const r1 = Math.floor((w.rows * (part + 1)) / parts);
    const skip = r0 * w.rowBytes;
    if (r1 > r0) simd.batchNormBackward(w.x + skip, w.dy + skip, w.mean, w.a, w.b, w.d, w.out + skip, (r1 - r0) * w.rowBytes, w.rowBytes);
  };
}

/** pool-tasks.ts' side of the pooled BatchNorm input gradient. */
export function batchNormBackwardTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const simd = simdKernelsOnMemory(memory);
  if (!simd) throw new Error('the SIMD kernels could not be instantiated on this thread');
  return backwardPart(simd, Object.fromEntries(BACKWARD_KEYS.map((k, i) => [k, args[i]])) as unknown as BackwardArgs);
}

/** [dx, dgamma, dbeta] of y = gamma * (x - mean) * invStd + beta with batch statistics. */
function batchNormGrad(args: { inputs: { x: Info; dy: Info; mean: Info; gamma: Info; invStd: Info }; backend: BackendWasm }): Info[] {
  const { inputs, backend } = args;
  const { x, dy, mean, gamma, invStd } = inputs;
  const c = channelsOf(x);
  const n = sizeOf(x) / c;
  const sums = batchNormSums({ inputs: { x, dy, mean }, backend });
  const coef = backend.makeOutput([3, c], 'float32'); // a, b, d
  const dx = backend.makeOutput(x.shape, 'float32');
  const dgamma = backend.makeOutput([c], 'float32');
  const dbeta = backend.makeOutput([c], 'float32');
  try {
    const { heap, offset: so } = heapOffset(backend, sums);
    const [co, go, io, dgo, dbo] = [coef, gamma, invStd, dgamma, dbeta].map((t) => heapOffset(backend, t).offset);
    for (let i = 0; i < c; i++) {
      const sumDy = heap[so + i];
      const sumDxm = heap[so + c + i];
      const s = heap[io + i];
      const gs = heap[go + i] * s;
      heap[co + i] = gs;
      heap[co + c + i] = (-gs * s * s * sumDxm) / n;
      heap[co + 2 * c + i] = (-gs * sumDy) / n;
      heap[dgo + i] = s * sumDxm;
      heap[dbo + i] = sumDy;
    }
    const [xo, dyo, mo, dxo] = [x, dy, mean, dx].map((t) => heapOffset(backend, t).offset);
    const simd = c % 4 === 0 ? simdKernels(backend) : null;
    if (simd) {
      const a: BackwardArgs = { x: xo * 4, dy: dyo * 4, mean: mo * 4, a: co * 4, b: (co + c) * 4, d: (co + 2 * c) * 4, out: dxo * 4, rows: n, rowBytes: c * 4 };
      // Split from ~2.5M elements, as batchNormSums (fused-grads.ts).
      const parts = poolParts(backend, (n * c) / 10_000, n);
      const run = backwardPart(simd, a);
      runParts(backend, { name: 'batchNormBackward', args: BACKWARD_KEYS.map((k) => a[k]) }, parts, (part) => run(part, parts));
    } else {
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < c; i++) {
          const k = r * c + i;
          heap[dxo + k] = heap[dyo + k] * heap[co + i] + (heap[xo + k] - heap[mo + i]) * heap[co + c + i] + heap[co + 2 * c + i];
        }
      }
    }
  } finally {
    backend.disposeData(sums.dataId);
    backend.disposeData(coef.dataId);
  }
  return [dx, dgamma, dbeta];
}

export const batchNormTrainingKernels: tf.KernelConfig[] = [
  { kernelName: CHANNEL_MOMENTS, backendName: 'wasm', kernelFunc: channelMoments as unknown as tf.KernelFunc },
  { kernelName: BATCH_NORM_GRAD, backendName: 'wasm', kernelFunc: batchNormGrad as unknown as tf.KernelFunc },
];

/** Whether `batchNormTraining` can run here (the wasm backend with our kernels, float32 input). */
export function canBatchNormTrain(x: tf.Tensor): boolean {
  return x.dtype === 'float32' && tf.getBackend() === 'wasm' && tf.getKernel(BATCH_NORM_GRAD, 'wasm') !== undefined;
}

/**
 * Training-mode BatchNorm over the last axis. Returns the output and the batch mean and variance
 * (for the moving averages; they carry no gradient).
 */
export function batchNormTraining(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  const c = x.shape[x.rank - 1];
  const moments = tf.engine().runKernel(CHANNEL_MOMENTS, { x }) as tf.Tensor;
  const [mean, variance] = tf.unstack(moments);
  moments.dispose();
  const invStd = tf.rsqrt(tf.add(variance, epsilon));
  const normalize = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([input, mean, g, invStd]);
    const y = tf.batchNorm(input, mean as tf.Tensor1D, variance as tf.Tensor1D, b as tf.Tensor1D, g as tf.Tensor1D, epsilon);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [sx, smean, sgamma, sinv] = saved;
        const inputs = { x: sx, dy: dy as tf.Tensor, mean: smean, gamma: sgamma, invStd: sinv };
        return tf.engine().runKernel(BATCH_NORM_GRAD, inputs) as tf.Tensor[];
      },
    };
  }) as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  const y = normalize(x, gamma.reshape([c]), beta.reshape([c]));
  invStd.dispose();
  return { y, mean, variance };
}
