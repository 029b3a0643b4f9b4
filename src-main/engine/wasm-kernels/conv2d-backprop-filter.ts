/**
 * Conv2DBackpropFilter for the wasm backend (the stock backend has none).
 *
 * dW[a, b, ci, co] = sum_{n, oh, ow} x[n, oh*s + a - pt, ow*s + b - pl, ci] * dy[n, oh, ow, co]
 *
 * is itself a convolution that XNNPACK runs at full speed once the axes are renamed: the input is
 * x with channels and batch swapped ([Ci, H, W, N]: Ci plays the batch, N the input channels), the
 * filter is dy as [Ho, Wo, N, Co] (an Ho x Wo "kernel"), the forward stride becomes the dilation,
 * and the output [Ci, kh, kw, Co] is dW up to one small transpose.
 *
 * That GEMM has a huge reduction dimension (K = Ho*Wo*N, 50k for a 56x56 layer at batch 16) and
 * XNNPACK does not block it: every output tile streams its whole K-long slices of both operands
 * from memory. The sum is therefore split into bands of dy rows, each a convolution whose
 * operands stay in cache, and the partial filters are added up. Measured on a quiet 2-core EPYC
 * (batch 16, 224 px): the 7x7 stem's dW went from 2.7x its forward pass to ~2.2x, a 56x56 3x3
 * layer from 1.9x to ~1.65x; deeper layers (K below one band) are unchanged at ~1.35x.
 *
 * 1x1 kernels without padding (MobileNet's pointwise layers, ResNet's downsample) need no
 * convolution at all: dW = x^T dy over all pixels, one XNNPACK fully-connected GEMM
 * (BatchMatMul [1, M, P] x [1, P, N]) after transposing the smaller operand; strided ones first
 * keep every s-th pixel of x. That measured ~3x faster than the convolution form.
 *
 * Stride 2 (ResNet's 7x7 stem, its 3x3/s2 and large 1x1/s2 layers) goes to a direct SIMD kernel
 * instead (strided-filter-grad.ts; rule and measurements at `useDirect`): dy is read in place
 * rather than repacked as an XNNPACK filter, 2.7-3.6x faster on the stem, 1.4-1.9x on 3x3/s2.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes, filterGradPads } from './conv-geometry.js';
import { useWinograd, winogradFilterGrad } from './winograd.js';
import { convAnyPad, heapF32, heapOffset, type Info, type Scratch, type Shape4, withScratch, xnnpackThreads } from './wasm-ops.js';
import { kernelThreads } from './kernel-pool.js';
import { type DirectGeometry, pooledFilterGrad, stridedFilterGradTiles, type Tiles } from './strided-filter-grad.js';

/** Benchmark / test hook: 'auto' (the shape rule), 'old' (never the direct kernel), 'new' (always where it can). */
export const stridedFilterGradOptions: { mode: 'auto' | 'old' | 'new' } = { mode: 'auto' };

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: Shape4;
}

/**
 * Reduction length (dy values per output channel) of one band: 4k-16k measured alike (within
 * noise), 32k and unbanded slower on the large layers.
 */
export const BAND_REDUCTION = 8192;

export function conv2dBackpropFilter(args: { inputs: { x: Info; dy: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  if (attrs.dataFormat === 'NCHW') {
    throw new Error("wasm Conv2DBackpropFilter supports only dataFormat 'NHWC' (as does the wasm Conv2D)");
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [ah, aw] = convAxes(info);
  const pw = filterGradPads(aw);
  const [kh, kw, ci, co] = attrs.filterShape;
  const [n, h, w] = x.shape as Shape4;
  const [, ho, wo] = dy.shape as Shape4;
  const bandRows = Math.max(1, Math.floor(BAND_REDUCTION / (wo * n)));
  const unpadded = ah.padBefore === 0 && aw.padBefore === 0 && pw.after <= 0 && filterGradPads(ah).after <= 0;
  const stride1 = ah.stride === 1 && aw.stride === 1;
  if (kh === 3 && kw === 3 && stride1 && useWinograd(backend, { n, outH: ho, outW: wo, ci, co }, 'filterGrad')) {
    return withScratch(backend, (s) => winogradFilterGrad(s, x, dy, ah.padBefore, aw.padBefore));
  }
  const g: DirectGeometry = { n, h, w, ci, ho, wo, co, kh, kw, sh: ah.stride, sw: aw.stride, pt: ah.padBefore, pl: aw.padBefore };
  if (ah.dilation === 1 && aw.dilation === 1 && useDirect(g, backend)) {
    const tiles = stridedFilterGradTiles(backend);
    if (tiles) return withScratch(backend, (s) => direct(s, tiles, x, dy, g));
  }
  if (kh === 1 && kw === 1 && unpadded) {
    return withScratch(backend, (s) => pointwise(s, x, dy, ah.stride, aw.stride));
  }
  return withScratch(backend, (s) => {
    const xT = s.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, N]
    const dyT = s.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, N, Co]
    let total: Info | undefined;
    for (let o0 = 0; o0 < ho; o0 += bandRows) {
      const rows = Math.min(bandRows, ho - o0);
      // Input rows this band of outputs reads: [i0, i1) in x's coordinates (may poke into padding).
      const i0 = o0 * ah.stride - ah.padBefore;
      const i1 = i0 + (rows - 1) * ah.stride + kh;
      const lo = Math.min(Math.max(i0, 0), h);
      const hi = Math.max(Math.min(i1, h), lo);
      if (hi === lo) continue; // the band only reads padding: it adds nothing
      const xBand = rows === ho ? xT : copyRows(s, xT, lo, hi - lo);
      const dyBand = rows === ho ? dyT : copyOuter(s, dyT, o0, rows);
      const top = lo - i0;
      const part = convAnyPad(s, 'conv', xBand, dyBand, [1, 1], [ah.stride, aw.stride], {
        top: rows === ho ? ah.padBefore : top,
        bottom: rows === ho ? filterGradPads(ah).after : i1 - i0 - top - (hi - lo),
        left: pw.before,
        right: pw.after,
      }); // [Ci, kh, kw, Co]
      if (part.shape[1] !== kh || part.shape[2] !== kw) {
        throw new Error(`wasm Conv2DBackpropFilter: internal shape ${part.shape}, expected [${ci},${kh},${kw},${co}]`);
      }
      if (total) {
        accumulate(s, total, part);
        s.release(part);
      } else {
        total = part;
      }
      // Free the band copies now: together they are as large as x and dy.
      if (xBand !== xT) s.release(xBand);
      if (dyBand !== dyT) s.release(dyBand);
    }
    if (!total) {
      total = s.alloc([ci, kh, kw, co]);
      heapF32(s.backend, total).fill(0);
    }
    return s.transpose(total, [1, 2, 0, 3]);
  });
}

/**
 * Where the direct SIMD kernel (strided-filter-grad.ts) replaces the XNNPACK paths (Co a multiple
 * of 4):
 * - 1x1, any stride: the pointwise GEMM transposes x and packs a fresh dy on every call, which
 *   isolated benchmarks hide (XNNPACK caches the packing of a tensor it has seen) and training
 *   steps pay. In a MobileNetV2-0.35 step (batch 16, 1 thread) the 35 filter gradients went
 *   from 55 to 16 ms @128 and 173 to 43 ms @224.
 * - stride 2. Measured (ms, batch 16, 1 thread; old -> direct): ResNet stem 7x7 @224 218 -> 80,
 *   @128 94 -> 26; 3x3/s2 at 56/28/14 px 75/63/60 -> 43/43/46, at 32/16/8 px 25/22/21 ->
 *   13/14/15; 5x5/s2 Ci=32 9 -> 7. With the kernel pool the direct kernel runs on as many threads
 *   as XNNPACK (2 threads: 3x3/s2 @28 38 -> 20-28, @14 34 -> 24, @8 11 -> 7); without it (the pool
 *   failed to start) the old path halves on the deep 3x3 layers and wins there, so the direct
 *   kernel is kept for Ci <= 4 (the stem) and for dy of 2 MiB or more.
 */
function useDirect(g: DirectGeometry, backend: BackendWasm): boolean {
  const mode = stridedFilterGradOptions.mode;
  if (mode === 'old' || g.co % 4 !== 0) return false;
  if (mode === 'new') return true;
  if (g.kh === 1 && g.kw === 1) return true;
  if (g.sh !== 2 || g.sw !== 2) return false;
  if (kernelThreads(backend) >= xnnpackThreads(backend)) return true;
  return g.ci <= 4 || g.n * g.ho * g.wo * g.co * 4 >= 2 * 1024 * 1024;
}

function direct(s: Scratch, tiles: Tiles, x: Info, dy: Info, g: DirectGeometry): Info {
  const out = s.alloc([g.kh, g.kw, g.ci, g.co]);
  const outView = heapF32(s.backend, out);
  outView.fill(0);
  const addr = (t: Info) => heapF32(s.backend, t).byteOffset;
  pooledFilterGrad(s.backend, tiles, addr(x), addr(dy), outView.byteOffset, g);
  return out;
}

/** dW of a 1x1 convolution without padding: x^T dy as one GEMM. */
function pointwise(s: Scratch, x: Info, dy: Info, sh: number, sw: number): Info {
  const [, , , ci] = x.shape as Shape4;
  const [n, ho, wo, co] = dy.shape as Shape4;
  const pixels = n * ho * wo;
  const xs = sh === 1 && sw === 1 && x.shape[1] === ho && x.shape[2] === wo ? x : subsample(s, x, sh, sw, ho, wo);
  const gemm = (a: Info, b: Info) => s.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
  if (ci <= co) {
    const xT = s.reshape(s.transpose(s.reshape(xs, [pixels, ci]), [1, 0]), [1, ci, pixels]);
    return s.reshape(gemm(xT, s.reshape(dy, [1, pixels, co])), [1, 1, ci, co]);
  }
  const dyT = s.reshape(s.transpose(s.reshape(dy, [pixels, co]), [1, 0]), [1, co, pixels]);
  const dwT = gemm(dyT, s.reshape(xs, [1, pixels, ci])); // [1, Co, Ci]
  return s.reshape(s.transpose(s.reshape(dwT, [co, ci]), [1, 0]), [1, 1, ci, co]);
}

/** x[:, ::sh, ::sw, :] cut to [N, ho, wo, C], one memmove per kept pixel. */
function subsample(s: Scratch, x: Info, sh: number, sw: number, ho: number, wo: number): Info {
  const [b, h, w, c] = x.shape as Shape4;
  const out = s.alloc([b, ho, wo, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  let o = heapOffset(s.backend, out).offset;
  for (let i = 0; i < b; i++)
    for (let y = 0; y < ho; y++)
      for (let xx = 0; xx < wo; xx++) {
        const from = src + ((i * h + y * sh) * w + xx * sw) * c;
        heap.copyWithin(o, from, from + c);
        o += c;
      }
  return out;
}

/** Rows [from, from+count) of every image of an NHWC tensor, as a new tensor. */
function copyRows(s: Scratch, x: Info, from: number, count: number): Info {
  const [b, h, w, c] = x.shape as Shape4;
  const out = s.alloc([b, count, w, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  const row = w * c;
  for (let i = 0; i < b; i++) {
    const start = src + (i * h + from) * row;
    heap.copyWithin(dst + i * count * row, start, start + count * row);
  }
  return out;
}

/** Entries [from, from+count) of the outermost axis, as a new tensor. */
function copyOuter(s: Scratch, x: Info, from: number, count: number): Info {
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = s.alloc([count, ...x.shape.slice(1)]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  heap.copyWithin(heapOffset(s.backend, out).offset, src + from * inner, src + (from + count) * inner);
  return out;
}

/** total += part, in place (total is one of our intermediates). */
function accumulate(s: Scratch, total: Info, part: Info): void {
  const { heap, offset: t } = heapOffset(s.backend, total);
  const p = heapOffset(s.backend, part).offset;
  const size = total.shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < size; i++) heap[t + i] += heap[p + i];
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilter as unknown as tf.KernelFunc,
};
