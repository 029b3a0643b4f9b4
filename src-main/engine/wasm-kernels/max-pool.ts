/**
 * MaxPool for the wasm backend where it is ResNet's (3x3, stride 2, channels a multiple of 4): one
 * SIMD row kernel (simd-kernels.ts' maxPoolRow) over rows split across the kernel pool; every
 * other pool takes the stock kernel.
 *
 * The stock kernel is XNNPACK's, whose thread pool spins for a while after each call, on the
 * cores the next convolution's threads need: ResNet-18's first 3x3 convolution after it took
 * 4.1 ms against 3.7 for the same convolution in the next block (128 px, batch 16, 2 threads),
 * and the pool itself 0.9 ms.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { type SimdKernels, simdKernels, simdKernelsOnMemory } from './simd-kernels.js';
import { heapOffset, type Info, runStock, type Shape4 } from './wasm-ops.js';

interface Attrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** A pool's geometry and byte addresses: x [n, h, w, c] -> y [n, outH, outW, c]. */
export interface PoolRows {
  x: number;
  y: number;
  n: number;
  h: number;
  w: number;
  outH: number;
  outW: number;
  pixBytes: number;
  top: number;
  left: number;
}
const ROW_KEYS = ['x', 'y', 'n', 'h', 'w', 'outH', 'outW', 'pixBytes', 'top', 'left'] as const;

/**
 * Output row i of image b into `dst`: input rows 2i - top + {0, 1, 2}, each clamped to the image
 * (a repeated row changes no max). `image` is the image's first byte.
 */
export function poolRow(simd: SimdKernels, p: Omit<PoolRows, 'x' | 'y' | 'n'>, image: number, i: number, dst: number): void {
  const rowBytes = p.w * p.pixBytes;
  const row = (k: number) => image + Math.min(Math.max(2 * i - p.top + k, 0), p.h - 1) * rowBytes;
  simd.maxPoolRow(row(0), row(1), row(2), dst, p.outW, p.w, p.pixBytes, p.left);
}

/** Part `part` of `parts`: a contiguous range of the batch's output rows. */
function rowsPart(simd: SimdKernels, p: PoolRows): (part: number, parts: number) => void {
  return (part, parts) => {
    const rows = p.n * p.outH;
    const end = Math.floor((rows * (part + 1)) / parts);
    for (let r = Math.floor((rows * part) / parts); r < end; r++) {
      const b = Math.floor(r / p.outH);
      const i = r - b * p.outH;
      poolRow(simd, p, p.x + b * p.h * p.w * p.pixBytes, i, p.y + r * p.outW * p.pixBytes);
    }
  };
}

/** pool-tasks.ts' side of MaxPool. */
export function maxPoolTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const simd = simdKernelsOnMemory(memory);
  if (!simd) throw new Error('the SIMD kernels could not be instantiated on this thread');
  return rowsPart(simd, Object.fromEntries(ROW_KEYS.map((k, i) => [k, args[i]])) as unknown as PoolRows);
}

/** Whether a pool of this geometry is ours: 3x3, stride 2, windows starting at most 1 pixel before the image. */
export function ownMaxPool(info: tf.backend_util.Conv2DInfo): boolean {
  return (
    info.filterHeight === 3 &&
    info.filterWidth === 3 &&
    info.strideHeight === 2 &&
    info.strideWidth === 2 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.padInfo.top <= 1 &&
    info.padInfo.left <= 1 &&
    info.inChannels % 4 === 0
  );
}

function maxPool(args: { inputs: { x: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x } = inputs;
  const simd = simdKernels(backend);
  if (x.dtype !== 'float32' || x.shape.length !== 4 || !simd) return runStock(tf.MaxPool, backend, inputs, attrs);
  const info = tf.backend_util.computePool2DInfo(x.shape as Shape4, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  if (!ownMaxPool(info)) return runStock(tf.MaxPool, backend, inputs, attrs);
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: outH, outWidth: outW, inChannels: c } = info;
  const y = backend.makeOutput([n, outH, outW, c], 'float32');
  const p: PoolRows = {
    x: heapOffset(backend, x).offset * 4,
    y: heapOffset(backend, y).offset * 4,
    n,
    h,
    w,
    outH,
    outW,
    pixBytes: c * 4,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
  // ~0.9 ns per output float on one thread, reading 4 input floats each (16x64x64x64 -> 32x32:
  // 0.94 ms alone; 0.52 on 2 threads).
  const parts = poolParts(backend, (n * outH * outW * c * 0.9) / 1000, n * outH);
  const run = rowsPart(simd, p);
  runParts(backend, { name: 'maxPool', args: ROW_KEYS.map((k) => p[k]) }, parts, (part) => run(part, parts));
  return y;
}

export const maxPoolConfig: tf.KernelConfig = {
  kernelName: tf.MaxPool,
  backendName: 'wasm',
  kernelFunc: maxPool as unknown as tf.KernelFunc,
};
