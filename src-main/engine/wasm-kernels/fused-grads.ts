/**
 * Cheaper gradients, on the wasm backend only, for the element-wise ops every BatchNorm / ReLU
 * layer puts on the tape. tfjs-core's gradient functions compose many full-size passes, each one
 * stock wasm kernel; measured on MobileNetV2 (batch 8, 224 px) they took more time than all the
 * convolutions together:
 * - ClipByValue (tf.layers.reLU({maxValue: 6})): GreaterEqual, LessEqual, LogicalAnd, ZerosLike,
 *   Select, five element-by-element C++ loops (~10 ns/element) -> one SIMD pass;
 * - Relu / Relu6: Step (+ LessEqual, Multiply) then Multiply -> one SIMD pass;
 * - FusedBatchNorm: xMinusMean, dy*scale, a Tile, and a multiply + reduction per statistic
 *   (~12 passes) -> one SIMD pass for the two per-channel sums, one Multiply for dx;
 * - Mean / Sum (tf.moments, losses): a Fill of ones, a Multiply and a Divide -> one Tile (memmove);
 * - Max (pooling by tf.max): broadcasting Equal and Multiply -> Tiles and same-shape kernels.
 *
 * Gradient functions are global in tfjs (one per kernel name, not per backend), so each override
 * keeps the original's inputsToSave and hands over to the original gradient on any other backend
 * or input it does not cover. The math is the same; only rounding order differs (see tests).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { type SimdKernels, simdKernels, simdKernelsOnMemory } from './simd-kernels.js';
import { heapOffset, type Info } from './wasm-ops.js';

/** Kernel names of our own (wasm only). */
export const MASK_GRAD = 'FinetuneMaskGrad';
export const BATCH_NORM_SUMS = 'FinetuneBatchNormSums';

// --- kernels ---------------------------------------------------------------------------------

interface MaskAttrs {
  lo: number;
  hi: number;
  strictLow: boolean;
}

/** dx = dy where lo <= x <= hi (lo < x when strictLow), else 0. */
function maskGrad(args: { inputs: { x: Info; dy: Info }; backend: BackendWasm; attrs: MaskAttrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  const out = backend.makeOutput(x.shape, 'float32');
  const size = x.shape.reduce((a, b) => a * b, 1);
  const { heap, offset: xo } = heapOffset(backend, x);
  const dyo = heapOffset(backend, dy).offset;
  const oo = heapOffset(backend, out).offset;
  const simd = simdKernels(backend);
  const vectorized = simd ? size - (size % 4) : 0;
  if (simd && vectorized > 0) simd.maskGrad(xo * 4, dyo * 4, oo * 4, vectorized * 4, attrs.lo, attrs.hi, attrs.strictLow);
  for (let i = vectorized; i < size; i++) {
    const v = heap[xo + i];
    const inside = (attrs.strictLow ? v > attrs.lo : v >= attrs.lo) && v <= attrs.hi;
    heap[oo + i] = inside ? heap[dyo + i] : 0;
  }
  return out;
}

/** Rows per SIMD call: its float32 sums are added into float64 after each block. */
const SUM_BLOCK_ROWS = 256;

/** Byte addresses and sizes of one batchNormSums call, as the kernel pool passes them. */
interface SumsArgs {
  x: number;
  dy: number;
  mean: number;
  rows: number;
  c: number;
  /** Per part: 2C float32 of block sums, and 2C float64 of the part's totals. */
  partials: number;
  totals: number;
}
const SUMS_KEYS = ['x', 'dy', 'mean', 'rows', 'c', 'partials', 'totals'] as const;

/**
 * Part `part` of `parts`: a range of row blocks, summed block by block (SIMD, float32) into the
 * part's float64 totals. Parts write disjoint memory; the caller adds the parts' totals in order,
 * so the result does not depend on which thread ran which part.
 */
function sumsPart(simd: SimdKernels, buffer: () => ArrayBufferLike, a: SumsArgs): (part: number, parts: number) => void {
  return (part, parts) => {
    const blocks = Math.ceil(a.rows / SUM_BLOCK_ROWS);
    const heap = new Float32Array(buffer());
    const totals = new Float64Array(buffer(), a.totals + part * 16 * a.c, 2 * a.c);
    const partial = a.partials / 4 + part * 2 * a.c;
    totals.fill(0);
    for (let b = Math.floor((blocks * part) / parts); b < Math.floor((blocks * (part + 1)) / parts); b++) {
      const r0 = b * SUM_BLOCK_ROWS;
      const n = Math.min(SUM_BLOCK_ROWS, a.rows - r0);
      heap.fill(0, partial, partial + 2 * a.c);
      simd.batchNormSums(a.x + r0 * a.c * 4, a.dy + r0 * a.c * 4, a.mean, partial * 4, (partial + a.c) * 4, n * a.c * 4, a.c * 4);
      for (let i = 0; i < 2 * a.c; i++) totals[i] += heap[partial + i];
    }
  };
}

/** pool-tasks.ts' side of the pooled batchNormSums. */
export function batchNormSumsTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const simd = simdKernelsOnMemory(memory);
  if (!simd) throw new Error('the SIMD kernels could not be instantiated on this thread');
  return sumsPart(simd, () => memory.buffer, Object.fromEntries(SUMS_KEYS.map((k, i) => [k, args[i]])) as unknown as SumsArgs);
}

/**
 * [2, C]: per channel (last axis) sum(dy) and sum(dy * (x - mean)). Rows are summed in blocks in
 * float32 by SIMD, blocks in float64 by JS, so long reductions (16*112*112 rows) stay accurate;
 * blocks are split over the kernel pool's threads.
 */
export function batchNormSums(args: { inputs: { x: Info; dy: Info; mean: Info }; backend: BackendWasm }): Info {
  const { inputs, backend } = args;
  const { x, dy, mean } = inputs;
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, b) => a * b, 1) / c;
  const simd = c % 4 === 0 ? simdKernels(backend) : null;
  const out = backend.makeOutput([2, c], 'float32');
  if (!simd) {
    const sumDy = new Float64Array(c);
    const sumDxm = new Float64Array(c);
    const { heap, offset: xo } = heapOffset(backend, x);
    const dyo = heapOffset(backend, dy).offset;
    const mo = heapOffset(backend, mean).offset;
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < c; i++) {
        const d = heap[dyo + r * c + i];
        sumDy[i] += d;
        sumDxm[i] += d * (heap[xo + r * c + i] - heap[mo + i]);
      }
    }
    const o = heapOffset(backend, out).offset;
    heap.set(sumDy, o);
    heap.set(sumDxm, o + c);
    return out;
  }
  // Priced so that only ~2.5M elements and up are split: measured with 2 threads (ms, one thread ->
  // pool), 16x64x64x64 2.2 -> 2.1 (moments) and 2.7 -> 2.0 (BatchNorm gradient), but
  // 16x32x32x64 0.50 -> 0.65: the hand-off costs more than half of a 0.5 ms pass.
  const parts = poolParts(backend, (rows * c) / 10_000, Math.ceil(rows / SUM_BLOCK_ROWS));
  const partials = backend.makeOutput([parts, 2, c], 'float32');
  const totals = backend.makeOutput([parts, 2, c, 2], 'float32'); // float64 storage
  try {
    const address = (t: Info) => heapOffset(backend, t).offset * 4;
    const a: SumsArgs = { x: address(x), dy: address(dy), mean: address(mean), rows, c, partials: address(partials), totals: address(totals) };
    const run = sumsPart(simd, () => heapOffset(backend, out).heap.buffer, a);
    runParts(backend, { name: 'batchNormSums', args: SUMS_KEYS.map((k) => a[k]) }, parts, (part) => run(part, parts));
    const { heap, offset: o } = heapOffset(backend, out);
    const sums = new Float64Array(heap.buffer, a.totals, parts * 2 * c);
    for (let i = 0; i < 2 * c; i++) {
      let total = 0;
      for (let p = 0; p < parts; p++) total += sums[p * 2 * c + i];
      heap[o + i] = total;
    }
    return out;
  } finally {
    backend.disposeData(partials.dataId);
    backend.disposeData(totals.dataId);
  }
}

export const fusedGradKernels: tf.KernelConfig[] = [
  { kernelName: MASK_GRAD, backendName: 'wasm', kernelFunc: maskGrad as unknown as tf.KernelFunc },
  { kernelName: BATCH_NORM_SUMS, backendName: 'wasm', kernelFunc: batchNormSums as unknown as tf.KernelFunc },
];

// --- gradients -------------------------------------------------------------------------------

type GradFunc = tf.GradConfig['gradFunc'];

function onWasm(): boolean {
  return tf.getBackend() === 'wasm';
}

function mask(x: tf.Tensor, dy: tf.Tensor, lo: number, hi: number, strictLow: boolean): tf.Tensor {
  return tf.engine().runKernel(MASK_GRAD, { x, dy }, { lo, hi, strictLow } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

const float = (t: tf.Tensor) => t.dtype === 'float32';

const overrides: Record<string, (original: GradFunc) => GradFunc> = {
  [tf.ClipByValue]: (original) => (dy, saved, attrs) => {
    const [x] = saved;
    if (!onWasm() || !float(x)) return original(dy, saved, attrs);
    const { clipValueMin, clipValueMax } = attrs as { clipValueMin: number; clipValueMax: number };
    return { x: () => mask(x, dy as tf.Tensor, clipValueMin, clipValueMax, false) };
  },
  [tf.Relu]: (original) => (dy, saved, attrs) => {
    const [x] = saved;
    if (!onWasm() || !float(x)) return original(dy, saved, attrs);
    return { x: () => mask(x, dy as tf.Tensor, 0, Number.POSITIVE_INFINITY, true) };
  },
  [tf.Relu6]: (original) => (dy, saved, attrs) => {
    const [x] = saved;
    if (!onWasm() || !float(x)) return original(dy, saved, attrs);
    return { x: () => mask(x, dy as tf.Tensor, 0, 6, true) };
  },
  [tf.FusedBatchNorm]: (original) => (dy, saved, attrs) => {
    const [x, mean, variance, scale] = saved;
    const c = x.shape[x.rank - 1];
    const covered = onWasm() && float(x) && mean.rank === 1 && mean.shape[0] === c && variance.rank === 1;
    if (!covered || (scale != null && scale.rank !== 1)) return original(dy, saved, attrs);
    const { varianceEpsilon } = attrs as { varianceEpsilon: number };
    const g = dy as tf.Tensor;
    const invStd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    const gamma = scale ?? tf.onesLike(invStd);
    const sums = tf.engine().runKernel(BATCH_NORM_SUMS, { x, dy: g, mean }) as tf.Tensor;
    const [sumDy, sumDxm] = tf.unstack(sums);
    return {
      x: () => tf.mul(g, tf.mul(gamma, invStd)),
      mean: () => tf.neg(tf.mul(sumDy, tf.mul(gamma, invStd))),
      variance: () => tf.mul(tf.mul(sumDxm, gamma), tf.mul(tf.pow(invStd, 3), -0.5)),
      scale: () => tf.mul(sumDxm, invStd),
      offset: () => tf.clone(sumDy),
    };
  },
  // tf.max over the pooled axes (fastai's AdaptiveConcatPool): the stock gradient compares x with
  // the broadcast max and multiplies by the broadcast dy, and the wasm backend's broadcasting
  // binary kernels are slow (Equal on [16, 4, 4, 1280] vs [16, 1, 1, 1280]: 20 ms, a sixth of a
  // MobileNetV2-0.35 @128 step). Tiling first (a memmove) leaves same-shape kernels only.
  [tf.Max]: (original) => (dy, saved, attrs) => {
    const [x, y] = saved;
    if (!onWasm() || !float(x) || x.rank === 0) return original(dy, saved, attrs);
    const axes = tf.util.parseAxisParam((attrs as { reductionIndices: number | number[] }).reductionIndices, x.shape);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const reps = x.shape.map((d, i) => (axes.includes(i) ? d : 1));
    return {
      x: () => {
        const isMax = tf.cast(tf.equal(x, tf.tile(tf.reshape(y, kept), reps)), 'float32');
        return tf.mul(tf.tile(tf.reshape(dy as tf.Tensor, kept), reps), isMax);
      },
    };
  },
  [tf.Mean]: (original) => (dy, saved, attrs) => broadcastGrad(original, dy as tf.Tensor, saved, attrs, true),
  [tf.Sum]: (original) => (dy, saved, attrs) => broadcastGrad(original, dy as tf.Tensor, saved, attrs, false),
};

/** d(reduce x)/dx: dy (divided by the count for Mean) spread back over the reduced axes. */
function broadcastGrad(original: GradFunc, dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap, isMean: boolean) {
  const [x] = saved;
  if (!onWasm() || x.rank === 0) return original(dy, saved, attrs);
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const reps = x.shape.map((d, i) => (axes.includes(i) ? d : 1));
  const count = axes.reduce((a, i) => a * x.shape[i], 1);
  return {
    x: () => {
      let small = tf.reshape(dy, kept);
      if (isMean) small = tf.div(small, count);
      else if (small.dtype !== 'float32') small = tf.cast(small, 'float32'); // as the original: mul by float ones
      return tf.tile(small, reps);
    },
  };
}

const installed = new Map<string, tf.GradConfig>();

/** Installs the overrides (idempotent). Returns the kernel names whose gradient changed. */
export function installWasmGradients(): string[] {
  const changed: string[] = [];
  for (const [kernelName, make] of Object.entries(overrides)) {
    const current = tf.getGradient(kernelName);
    if (!current) continue;
    if (installed.get(kernelName) === current) continue;
    const config: tf.GradConfig = { ...current, gradFunc: make(current.gradFunc) };
    tf.registerGradient(config);
    installed.set(kernelName, tf.getGradient(kernelName)!);
    changed.push(kernelName);
  }
  return changed;
}
