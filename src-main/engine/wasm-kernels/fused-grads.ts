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
import { simdKernels } from './simd-kernels.js';
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

/**
 * [2, C]: per channel (last axis) sum(dy) and sum(dy * (x - mean)). Rows are summed in blocks in
 * float32 by SIMD, blocks in float64 by JS, so long reductions (16*112*112 rows) stay accurate.
 */
export function batchNormSums(args: { inputs: { x: Info; dy: Info; mean: Info }; backend: BackendWasm }): Info {
  const { inputs, backend } = args;
  const { x, dy, mean } = inputs;
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, b) => a * b, 1) / c;
  const sumDy = new Float64Array(c);
  const sumDxm = new Float64Array(c);
  const simd = c % 4 === 0 ? simdKernels(backend) : null;
  const block = 256;
  const partial = backend.makeOutput([2, c], 'float32');
  try {
    const { heap, offset: xo } = heapOffset(backend, x);
    const dyo = heapOffset(backend, dy).offset;
    const mo = heapOffset(backend, mean).offset;
    const po = heapOffset(backend, partial).offset;
    for (let r0 = 0; r0 < rows; r0 += block) {
      const n = Math.min(block, rows - r0);
      if (simd) {
        heap.fill(0, po, po + 2 * c);
        simd.batchNormSums((xo + r0 * c) * 4, (dyo + r0 * c) * 4, mo * 4, po * 4, (po + c) * 4, n * c * 4, c * 4);
        for (let i = 0; i < c; i++) {
          sumDy[i] += heap[po + i];
          sumDxm[i] += heap[po + c + i];
        }
      } else {
        for (let r = r0; r < r0 + n; r++) {
          for (let i = 0; i < c; i++) {
            const d = heap[dyo + r * c + i];
            sumDy[i] += d;
            sumDxm[i] += d * (heap[xo + r * c + i] - heap[mo + i]);
          }
        }
      }
    }
  } finally {
    backend.disposeData(partial.dataId);
  }
  const out = backend.makeOutput([2, c], 'float32');
  const o = heapOffset(backend, out);
  for (let i = 0; i < c; i++) {
    o.heap[o.offset + i] = sumDy[i];
    o.heap[o.offset + c + i] = sumDxm[i];
  }
  return out;
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
