/**
 * 1x1 convolutions with a stride (ResNet's downsampling shortcuts) on our GEMM (gemm.ts), one
 * product per output row: the row's outputs read every stride-th pixel of one input row, which
 * the GEMM takes as A's row stride (lda = stride x Ci), so nothing is gathered first; the bias is
 * the GEMM's epilogue (its accumulators start from it), relu / relu6 one clamp over the output.
 *
 * ResNet-18's three at 128 px, batch 16 (67 MFLOP each), alone on 1 thread: XNNPACK 1.38-1.44 ms,
 * ours 1.22-1.24; alone on 2 about even (0.70-0.74 against 0.65-0.75); in the model on 2 threads
 * 0.8-1.2 against 0.7-0.8 ms, where each XNNPACK call also woke its own thread pool.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { gemmFits, runTableGemm } from './gemm.js';
import { simdKernels } from './simd-kernels.js';
import { byteAddress, byteAddressTable, type Epilogue } from './winograd.js';
import type { Info, Scratch, Shape4 } from './wasm-ops.js';

/** Calls taken through this file (tests check which path ran). */
export const pointwiseStats = { calls: 0 };

/** The geometry of a convolution that stridedPointwiseConv2d computes. */
export interface PointwiseGeometry {
  filterShape: readonly number[];
  strides: readonly [number, number];
  dilations: readonly [number, number];
  /** Padding before the first row and column (after them is only ever unread input). */
  padBefore: readonly [number, number];
}

/** A 1x1 filter, a stride over 1, no dilation or leading padding, and Co columns our GEMM takes. */
export function useStridedPointwise(backend: BackendWasm, g: PointwiseGeometry): boolean {
  const [kh, kw, , co] = g.filterShape;
  if (kh !== 1 || kw !== 1 || (g.strides[0] === 1 && g.strides[1] === 1)) return false;
  if (g.dilations[0] !== 1 || g.dilations[1] !== 1 || g.padBefore[0] !== 0 || g.padBefore[1] !== 0) return false;
  return co % 4 === 0 && gemmFits(co) && simdKernels(backend) !== null;
}

/**
 * y[n, oh, ow, co] = act(bias[co] + sum_ci x[n, sh * oh, sw * ow, ci] * w[0, 0, ci, co]) for a
 * [1, 1, Ci, Co] filter, oh < outH, ow < outW.
 */
export function stridedPointwiseConv2d(s: Scratch, x: Info, filter: Info, strides: readonly [number, number], outH: number, outW: number, epilogue: Epilogue): Info {
  const { bias, act } = epilogue;
  if (epilogue.residual) throw new Error('wasm-kernels: the pointwise convolution takes no residual');
  pointwiseStats.calls++;
  const [n, h, w, ci] = x.shape as Shape4;
  const co = filter.shape[3];
  const [sh, sw] = strides;
  const y = s.alloc([n, outH, outW, co]);
  // A zero bias where there is none keeps one layout (and one module) per shape.
  const biasInfo = bias ?? s.alloc([co]);
  if (!bias) s.backend.typedArrayFromHeap(biasInfo).fill(0);
  const [xAt, yAt, wAt] = [byteAddress(s, x), byteAddress(s, y), byteAddress(s, filter)];
  const rows = Array.from({ length: n * outH }, (_, i) => i);
  const imageRow = (i: number) => Math.floor(i / outH) * h * w + sh * (i % outH) * w;
  const products = {
    layout: { k: ci, lda: sw * ci, ldb: co, ldc: co, bias: true },
    aTable: byteAddressTable(s, rows.map((i) => xAt + imageRow(i) * ci * 4)),
    bTable: byteAddressTable(s, rows.map(() => wAt)),
    cTable: byteAddressTable(s, rows.map((i) => yAt + i * outW * co * 4)),
    count: rows.length,
    m: outW,
    n: co,
    bias: byteAddress(s, biasInfo),
  };
  if (!runTableGemm(s.backend, products)) throw new Error('wasm-kernels: the pointwise convolution needs wasm SIMD');
  if (act !== 'linear') simdKernels(s.backend)!.clamp(act, yAt, yAt, n * outH * outW * co * 4, 0, 6);
  return y;
}
