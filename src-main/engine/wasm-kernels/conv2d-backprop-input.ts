/**
 * Conv2DBackpropInput for the wasm backend, replacing the stock one: that is a plain C++ loop nest,
 * 10-40x slower than the forward convolution (ResNet 3x3 layers at batch 16: 0.8-3.2 s against
 * ~85 ms). Here dx is computed by XNNPACK convolutions or Winograd:
 *
 * - stride 1: dx = conv(dy, w flipped in space with in/out channels swapped), padded by
 *   (k - 1 - pad) so that it yields exactly the input size;
 * - 1x1 kernels with stride s: dx is the 1x1 convolution of dy with w^T, scattered to every s-th
 *   pixel (a zero-insertion in JS); no multiply touches a zero;
 * - stride s > 1 with few dy pixels per image (`gemmCol2imPays`): one GEMM of the filter with
 *   dy^T and a col2im (`gemmCol2im`);
 * - other stride s > 1 (both axes equal) with enough input channels: one XNNPACK convolution per
 *   output phase with exactly that phase's taps (`perPhase`; 2x2, 2x1, 1x2 and 1x1 for 3x3 / s2:
 *   the minimal multiplies), interleaved into dx;
 * - the rest of stride s > 1 (few input channels, e.g. a 7x7 stem): the sub-pixel form (see
 *   `phaseAxis`): one convolution with ceil(k/s)^2 taps and s*s*Ci output channels, then a JS
 *   DepthToSpace + crop (16/9 of the minimal multiplies for 3x3 / s2).
 *
 * Measured 1 thread, 3x3 / s2 'same', ResNet-18 shapes, a fresh dy every call as in training (ms,
 * per phase -> GEMM): dy 16x4x4x512 -> 256 ch 24 -> 11, 16x7x7x512 53 -> 34, 16x8x8x256 15 -> 15,
 * 16x14x14x256 43 -> 44, 16x16x16x128 14-18 -> 16, 16x28x28x128 43 -> 50; 4x4x4x512 15 -> 3.0.
 * The per-phase convolutions pack their filter taps on every call, which the GEMM avoids; it
 * does the full 9 taps per output, and its col2im and transposes grow with the pixels.
 * (Zero insertion + Winograd, used before for few pixels, measured between the two: removed.)
 * Per phase against sub-pixel: dy 16x7x7x512 56 vs 100, 16x28x28x128 46 vs 72.
 *
 * Anything else (NCHW, unequal strides) falls back to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes, inputGradPads, phaseAxis, phaseTap } from './conv-geometry.js';
import { depthToSpaceCrop, flipSpatial, scatterStrided, zeroInsert } from './rearrange.js';
import { gemmFits, runGemm } from './gemm.js';
import { simdKernels } from './simd-kernels.js';
import { byteAddressTable, transposeLast2, useWinograd, winogradConv2d } from './winograd.js';
import { getTranspose, runTableTranspose } from './winograd-transforms.js';
import { convAnyPad, heapOffset, type Info, runStock, type Scratch, type Shape4, withScratch } from './wasm-ops.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: Shape4;
}

/** Strided calls taken through each path (tests check which one ran). */
export const stridedInputGradStats = { gemm: 0, perPhase: 0, subPixel: 0 };
export type StridedInputGradPath = keyof typeof stridedInputGradStats;

/** Tests and benchmarks: force one strided path ('gemm' where it applies: Ci and N*Ho*Wo multiples of 4, wasm SIMD). */
export const stridedInputGradOptions: { path: 'auto' | StridedInputGradPath } = { path: 'auto' };

type Args = { inputs: { dy: Info; filter: Info }; backend: BackendWasm; attrs: Attrs };

export function conv2dBackpropInput(args: Args): Info {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  if (attrs.dataFormat === 'NCHW') return runStock(tf.Conv2DBackpropInput, backend, inputs, attrs);
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [ah, aw] = convAxes(info);
  if (ah.stride === 1 && aw.stride === 1) return withScratch(backend, (s) => stride1(s, dy, filter, ah, aw, backend));
  if (info.filterHeight === 1 && info.filterWidth === 1) {
    return withScratch(backend, (s) => pointwise(s, dy, filter, info.inShape as Shape4, ah, aw));
  }
  if (ah.stride === aw.stride) {
    const inShape = info.inShape as Shape4;
    switch (stridedPath(backend, dy, filter)) {
      case 'gemm':
        return withScratch(backend, (s) => gemmCol2im(s, dy, filter, ah, aw));
      case 'perPhase':
        return withScratch(backend, (s) => perPhase(s, dy, filter, ah, aw));
      case 'subPixel':
        return withScratch(backend, (s) => phases(s, dy, filter, inShape, ah, aw));
    }
  }
  return runStock(tf.Conv2DBackpropInput, backend, inputs, attrs);
}

type Axis = ReturnType<typeof convAxes>[0];

function stride1(s: Scratch, dy: Info, filter: Info, ah: Axis, aw: Axis, backend: BackendWasm): Info {
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const ph = inputGradPads(ah);
  const pw = inputGradPads(aw);
  const n = dy.shape[0];
  const winograd = kh === 3 && kw === 3 && useWinograd(backend, { n, outH: ah.inSize, outW: aw.inSize, ci: co, co: ci }, 'inputGrad');
  if (winograd) return winogradInputGrad(s, dy, filter, ph.before, pw.before, ah.inSize, aw.inSize);
  // [kh*kw, Ci, Co] -> [kh*kw, Co, Ci], then reverse the kh*kw taps: w[kh-1-a, kw-1-b]^T.
  const swapped = s.transpose(s.reshape(filter, [kh * kw, ci, co]), [0, 2, 1]);
  const flipped = s.reshape(flipSpatial(s, swapped), [kh, kw, co, ci]);
  return convAnyPad(s, 'conv', dy, flipped, [1, 1], [1, 1], {
    top: ph.before,
    bottom: ph.after,
    left: pw.before,
    right: pw.after,
  });
}

/**
 * The stride-1 correlation of dy with the flipped, channel-swapped 3x3 filter, by Winograd:
 * dx[y] = sum_a dy[y + a - top] * w[2 - a]^T, for y < outH (x < outW).
 */
function winogradInputGrad(s: Scratch, dy: Info, filter: Info, top: number, left: number, outH: number, outW: number): Info {
  return winogradConv2d(s, dy, tapTranspose(s, filter), top, left, outH, outW, { act: 'linear' }, true);
}

/** GEMM + col2im where dy has at most 14x14 pixels per image (see the measurements above). */
export const gemmCol2imPays = (dyH: number, dyW: number) => dyH * dyW <= 196;

function stridedPath(backend: BackendWasm, dy: Info, filter: Info): StridedInputGradPath {
  const forced = stridedInputGradOptions.path;
  // The col2im adds whole SIMD vectors of channels; the GEMM's columns are dy's pixels.
  const pixels = dy.shape[0] * dy.shape[1] * dy.shape[2];
  const gemmRuns = filter.shape[2] % 4 === 0 && pixels % 4 === 0 && simdKernels(backend) !== null;
  if (forced !== 'auto') return forced === 'gemm' && !gemmRuns ? 'perPhase' : forced;
  if (gemmRuns && gemmCol2imPays(dy.shape[1], dy.shape[2])) return 'gemm';
  return filter.shape[2] >= PER_PHASE_MIN_CI ? 'perPhase' : 'subPixel';
}

/**
 * dx as one GEMM and a col2im: colsT = W [kh*kw*Ci, Co] x dyT [Co, P] (P = N*Ho*Wo; the filter is
 * not packed, where the per-phase convolutions pack their filter taps), transposed to cols
 * [P, kh*kw*Ci], whose Ci-runs are added into dx at each tap's input pixel. Ci and P multiples
 * of 4.
 */
function gemmCol2im(s: Scratch, dy: Info, filter: Info, ah: Axis, aw: Axis): Info {
  stridedInputGradStats.gemm++;
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const [n, ho, wo] = dy.shape as Shape4;
  const pixels = n * ho * wo;
  const dyT = transposeLast2(s, s.reshape(dy, [pixels, co]));
  const colsT = product(s, s.reshape(filter, [kh * kw * ci, co]), dyT);
  s.release(dyT);
  const cols = transposeLast2(s, colsT);
  s.release(colsT);
  const dx = s.alloc([n, ah.inSize, aw.inSize, ci]);
  const { heap, offset } = heapOffset(s.backend, dx);
  heap.fill(0, offset, offset + n * ah.inSize * aw.inSize * ci);
  const add = simdKernels(s.backend)!.addInto;
  const dxAt = offset * 4;
  const colsAt = heapOffset(s.backend, cols).offset * 4;
  const run = ci * 4;
  for (let b = 0, p = 0; b < n; b++) {
    for (let oh = 0; oh < ho; oh++) {
      for (let ow = 0; ow < wo; ow++, p++) {
        for (let a = 0; a < kh; a++) {
          const ih = oh * ah.stride + a * ah.dilation - ah.padBefore;
          if (ih < 0 || ih >= ah.inSize) continue;
          for (let c = 0; c < kw; c++) {
            const iw = ow * aw.stride + c * aw.dilation - aw.padBefore;
            if (iw < 0 || iw >= aw.inSize) continue;
            add(dxAt + ((b * ah.inSize + ih) * aw.inSize + iw) * run, colsAt + (p * kh * kw + a * kw + c) * run, run);
          }
        }
      }
    }
  }
  s.release(cols);
  return dx;
}

/** a [M, K] x b [K, N] on our GEMM where it is the faster one (`gemmFits`), else XNNPACK's. */
function product(s: Scratch, a: Info, b: Info): Info {
  const [m, k] = a.shape;
  const n = b.shape[1];
  if (gemmFits(n) && n % 4 === 0) {
    const c = s.alloc([m, n]);
    const at = (t: Info) => heapOffset(s.backend, t).offset * 4;
    if (runGemm(s.backend, { layout: { k, lda: k, ldb: n, ldc: n }, a: at(a), b: at(b), c: at(c), m, n })) return c;
    s.release(c);
  }
  return s.run(tf.BatchMatMul, { a, b }, { transposeA: false, transposeB: false });
}

function pointwise(s: Scratch, dy: Info, filter: Info, inShape: Shape4, ah: Axis, aw: Axis): Info {
  const [, , ci, co] = filter.shape as Shape4;
  const wT = s.reshape(s.transpose(s.reshape(filter, [ci, co]), [1, 0]), [1, 1, co, ci]);
  const small = s.conv2d(dy, wT, [1, 1], [1, 1], [[0, 0], [0, 0], [0, 0], [0, 0]]); // [N, Ho, Wo, Ci]
  // dy pixel (o, p) lands on x pixel (o*s - padTop, p*s - padLeft).
  return zeroInsert(s, small, inShape[1], inShape[2], ah.stride, aw.stride, -ah.padBefore, -aw.padBefore);
}

/**
 * Below this many input channels the per-phase convolutions lose to the single sub-pixel one:
 * each writes few channels per pixel (XNNPACK's narrow-output kernels, and one JS copy per pixel
 * to interleave). Measured 3x3 / s2 (per phase against sub-pixel): 16 input channels 1.2-1.3x,
 * 8: 1.3-1.6x, 4: 0.92-0.95x; 7x7 / s2 stem, dy 4x112x112x64 -> 3 ch: 0.69x.
 */
const PER_PHASE_MIN_CI = 8;

/** One output phase r of one axis: the dx rows y = q*s + r - padBefore, q in [qlo, qlo + count). */
interface AxisPhase {
  r: number;
  /** Filter taps r, r + s, ... < k (0 when r >= k: that phase of dx is zero). */
  taps: number;
  qlo: number;
  count: number;
  /** Padding of dy for this phase's stride-1 correlation (negative: crop). */
  before: number;
  after: number;
}

/**
 * dx[y] = sum_j dy[q - j] * w[r + j*s] (see `phaseAxis`), as a correlation over t = taps-1-j:
 * out[i] = sum_t dy[i + qlo - (taps-1) + t] * w[r + (taps-1-t)*s], i < count.
 */
function axisPhase(a: Axis, r: number): AxisPhase {
  const s = a.stride;
  const taps = r < a.k ? Math.ceil((a.k - r) / s) : 0;
  const qlo = Math.ceil((a.padBefore - r) / s);
  const qhi = Math.floor((a.inSize - 1 + a.padBefore - r) / s);
  const count = Math.max(0, qhi - qlo + 1);
  const before = taps - 1 - qlo;
  const after = count + taps - 1 - before - a.outSize;
  return { r, taps, qlo, count, before, after };
}

/** Whether the phase's correlation reads any dy row (else it is all padding: zeros). */
const readsDy = (p: AxisPhase, a: Axis) => p.taps > 0 && a.outSize - Math.max(0, -p.before) - Math.max(0, -p.after) > 0;

/** w [kh, kw, Ci, Co] -> [kh, kw, Co, Ci] (the SIMD transpose, one tap per part, when Co % 4 == 0). */
function tapTranspose(s: Scratch, filter: Info): Info {
  const [kh, kw, ci, co] = filter.shape as Shape4;
  if (co % 4 !== 0 || !getTranspose(s.backend)) return s.transpose(filter, [0, 1, 3, 2]);
  const out = s.alloc([kh, kw, co, ci]);
  const taps = kh * kw;
  const tapsOf = (x: Info) => {
    const at = heapOffset(s.backend, x).offset * 4;
    return byteAddressTable(s, Array.from({ length: taps }, (_, t) => at + t * ci * co * 4));
  };
  runTableTranspose(s.backend, { srcTable: tapsOf(filter), dstTable: tapsOf(out), count: taps, rows: ci, cols: co });
  return out;
}

/**
 * For each output phase (ry, rx): an XNNPACK convolution of dy with exactly that phase's taps
 * (G[ty, tx] = w[ry + (Jy-1-ty)*s, rx + (Jx-1-tx)*s]^T), written to every s-th pixel of dx.
 */
function perPhase(s: Scratch, dy: Info, filter: Info, ah: Axis, aw: Axis): Info {
  stridedInputGradStats.perPhase++;
  const [, kw, ci, co] = filter.shape as Shape4;
  const n = dy.shape[0];
  const wT = tapTranspose(s, filter);
  const plane = co * ci;
  const dx = s.alloc([n, ah.inSize, aw.inSize, ci]);
  const results: { py: AxisPhase; px: AxisPhase; y: Info }[] = [];
  let zeros = false;
  for (let ry = 0; ry < ah.stride; ry++) {
    const py = axisPhase(ah, ry);
    if (py.count === 0) continue;
    for (let rx = 0; rx < aw.stride; rx++) {
      const px = axisPhase(aw, rx);
      if (px.count === 0) continue;
      if (!readsDy(py, ah) || !readsDy(px, aw)) {
        zeros = true;
        continue;
      }
      const g = s.alloc([py.taps, px.taps, co, ci]);
      const { heap, offset: gOff } = heapOffset(s.backend, g);
      const wOff = heapOffset(s.backend, wT).offset;
      for (let ty = 0; ty < py.taps; ty++) {
        for (let tx = 0; tx < px.taps; tx++) {
          const a = ry + (py.taps - 1 - ty) * ah.stride;
          const b = rx + (px.taps - 1 - tx) * aw.stride;
          const src = wOff + (a * kw + b) * plane;
          heap.copyWithin(gOff + (ty * px.taps + tx) * plane, src, src + plane);
        }
      }
      const y = convAnyPad(s, 'conv', dy, g, [1, 1], [1, 1], { top: py.before, bottom: py.after, left: px.before, right: px.after });
      s.release(g);
      results.push({ py, px, y });
    }
  }
  if (zeros) {
    const { heap, offset } = heapOffset(s.backend, dx);
    heap.fill(0, offset, offset + n * ah.inSize * aw.inSize * ci);
  }
  for (const { py, px, y } of results) {
    scatterStrided(s, y, dx, py.qlo * ah.stride + py.r - ah.padBefore, px.qlo * aw.stride + px.r - aw.padBefore, ah.stride, aw.stride);
    s.release(y);
  }
  return dx;
}

function phases(s: Scratch, dy: Info, filter: Info, inShape: Shape4, ah: Axis, aw: Axis): Info {
  stridedInputGradStats.subPixel++;
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const stride = ah.stride;
  const ph = phaseAxis(ah);
  const pw = phaseAxis(aw);
  const g = phaseFilter(s, filter, stride, ph.taps, pw.taps, kh, kw, ci, co);
  const blocks = convAnyPad(s, 'conv', dy, g, [1, 1], [1, 1], {
    top: ph.before,
    bottom: ph.after,
    left: pw.before,
    right: pw.after,
  }); // [N, blocksH, blocksW, s*s*Ci]
  return depthToSpaceCrop(s, blocks, stride, ph.cropBefore, pw.cropBefore, inShape[1], inShape[2]);
}

/**
 * G[ty, tx, co, (ry*s + rx)*Ci + ci] = w[ry + (Jh-1-ty)*s, rx + (Jw-1-tx)*s, ci, co] (0 off the
 * filter), assembled from w^T ([kh, kw, Co, Ci]) with one contiguous copy per (tap, phase, co).
 */
function phaseFilter(
  s: Scratch,
  filter: Info,
  stride: number,
  jh: number,
  jw: number,
  kh: number,
  kw: number,
  ci: number,
  co: number,
): Info {
  const wT = s.transpose(filter, [0, 1, 3, 2]); // [kh, kw, Co, Ci]
  const phasesN = stride * stride;
  const g = s.alloc([jh, jw, co, phasesN * ci]);
  const { heap, offset: gOff } = heapOffset(s.backend, g);
  const wOff = heapOffset(s.backend, wT).offset;
  heap.fill(0, gOff, gOff + jh * jw * co * phasesN * ci);
  for (let ty = 0; ty < jh; ty++) {
    for (let tx = 0; tx < jw; tx++) {
      for (let ry = 0; ry < stride; ry++) {
        const a = phaseTap({ k: kh, stride }, jh, ry, ty);
        if (a < 0) continue;
        for (let rx = 0; rx < stride; rx++) {
          const b = phaseTap({ k: kw, stride }, jw, rx, tx);
          if (b < 0) continue;
          const phase = ry * stride + rx;
          for (let c = 0; c < co; c++) {
            const src = wOff + ((a * kw + b) * co + c) * ci;
            const dst = gOff + ((ty * jw + tx) * co + c) * phasesN * ci + phase * ci;
            heap.copyWithin(dst, src, src + ci);
          }
        }
      }
    }
  }
  return g;
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInput as unknown as tf.KernelFunc,
};
