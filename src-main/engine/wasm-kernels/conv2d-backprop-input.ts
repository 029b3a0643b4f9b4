/**
 * Conv2DBackpropInput for the wasm backend, replacing the stock one: that is a plain C++ loop nest,
 * 10-40x slower than the forward convolution (ResNet 3x3 layers at batch 16: 0.8-3.2 s against
 * ~85 ms). Here dx is computed by XNNPACK convolutions or Winograd:
 *
 * - stride 1: dx = conv(dy, w flipped in space with in/out channels swapped), padded by
 *   (k - 1 - pad) so that it yields exactly the input size;
 * - 1x1 kernels with stride s: dx is the 1x1 convolution of dy with w^T, scattered to every s-th
 *   pixel (a zero-insertion in JS); no multiply touches a zero;
 * - 3x3 / stride 2 with few output pixels per input channel (`zeroInsertWinogradPays`): dy
 *   zero-inserted, then the stride-1 Winograd input gradient (2.25 multiplies per output and
 *   channel pair, the direct minimum, with no filter packing);
 * - other stride s > 1 (both axes equal) with enough input channels: one XNNPACK convolution per
 *   output phase with exactly that phase's taps (`perPhase`; 2x2, 2x1, 1x2 and 1x1 for 3x3 / s2:
 *   the minimal multiplies), interleaved into dx;
 * - the rest of stride s > 1 (few input channels, e.g. a 7x7 stem): the sub-pixel form (see
 *   `phaseAxis`): one convolution with ceil(k/s)^2 taps and s*s*Ci output channels, then a JS
 *   DepthToSpace + crop (16/9 of the minimal multiplies for 3x3 / s2).
 *
 * Measured 1 thread, 3x3 / s2 'same', ResNet-18 shapes, same process (ms, sub-pixel -> chosen):
 *   dy 16x7x7x512 -> 256 ch 100 -> 56, 16x14x14x256 -> 128 76 -> 44, 16x28x28x128 -> 64 72 -> 46,
 *   16x8x8x256 30 -> 17, 16x16x16x128 24 -> 16 (per phase); 16x4x4x512 36 -> 16, 1x7x7x512 27 -> 6,
 *   2x4x4x512 28 -> 18 (Winograd). The Winograd timings were bimodal on a shared 2-core machine
 *   (2-4x slower in some runs while another process was busy; the per-phase ones ~1.2x).
 *
 * Anything else (NCHW, unequal strides) falls back to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes, inputGradPads, phaseAxis, phaseTap } from './conv-geometry.js';
import { depthToSpaceCrop, flipSpatial, scatterStrided, zeroInsert } from './rearrange.js';
import { transposedGemmPays, useWinograd, winogradConv2d } from './winograd.js';
import { getTranspose } from './winograd-transforms.js';
import { convAnyPad, heapOffset, type Info, runStock, type Scratch, type Shape4, withScratch } from './wasm-ops.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: Shape4;
}

/** Strided calls taken through each path (tests check which one ran). */
export const stridedInputGradStats = { winograd: 0, perPhase: 0, subPixel: 0 };

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
    if (zeroInsertWinograd(backend, dy, filter, ah, aw)) {
      return withScratch(backend, (s) => winogradStrided(s, dy, filter, ah, aw));
    }
    if (inShape[3] >= PER_PHASE_MIN_CI) return withScratch(backend, (s) => perPhase(s, dy, filter, ah, aw));
    return withScratch(backend, (s) => phases(s, dy, filter, inShape, ah, aw));
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
 * The stride-1 correlation of `x` (dy, or dy zero-inserted) with the flipped, channel-swapped 3x3
 * filter, by Winograd: dx[y] = sum_a x[y + a - top] * w[2 - a]^T, for y < outH (x < outW).
 */
function winogradInputGrad(s: Scratch, x: Info, filter: Info, top: number, left: number, outH: number, outW: number): Info {
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const n = x.shape[0];
  if (transposedGemmPays(n * Math.ceil(outH / 4) * Math.ceil(outW / 4), ci)) {
    // Winograd wants the per-tap transpose of the flipped, swapped filter: w flipped, no transpose.
    const wT = s.reshape(flipSpatial(s, s.reshape(filter, [kh * kw, ci * co])), [kh, kw, ci, co]);
    return winogradConv2d(s, x, { wT }, top, left, outH, outW);
  }
  const swapped = s.transpose(s.reshape(filter, [kh * kw, ci, co]), [0, 2, 1]);
  const flipped = s.reshape(flipSpatial(s, swapped), [kh, kw, co, ci]);
  return winogradConv2d(s, x, flipped, top, left, outH, outW);
}

/**
 * Zero insertion + Winograd for 3x3 / stride 2 pays where the per-phase convolutions are dominated
 * by packing their fresh filters (9*Ci*Co floats, ~10 ns each through tfjs' transpose and
 * XNNPACK's packing) rather than by multiplies, i.e. where there are few dx tiles per input channel.
 * Measured 1 thread (ms, per phase / Winograd; tiles = N*ceil(H/4)*ceil(W/4) of dx):
 *   1x4x4x512 -> 256 ch (4 tiles) 12.5 / 4.1, 1x7x7x512 (16) 13.8 / 7.9, 2x7x7x512 (32) 12.9 / 8.4,
 *   1x8x8x256 -> 128 (16) 3.2 / 2.2, 2x8x8x256 (32) 2.9 / 2.2, 4x4x4x512 (16) 15.1 / 7.5,
 *   4x7x7x512 (64) 22.9 / 20.2, 16x4x4x512 (64) 29.5 / 24.2;
 *   4x8x8x256 (64) 5.9 / 6.1, 1x14x14x256 -> 128 (49) 4.7 / 7.0, 1x16x16x128 -> 64 (64) 1.4 / 2.2,
 *   8x7x7x512 (128) 36 / 67, 16x7x7x512 (256) 60-69 / 75-78, 16x28x28x128 -> 64 54 / 79.
 * So: Winograd when 4 * tiles <= Ci (then its GEMMs always take the transposed form), and
 * `useWinograd` agrees (channels multiples of 4; FINETUNE_WINOGRAD=0 turns it off, =1 drops the
 * 40 MFLOP floor).
 */
export function zeroInsertWinogradPays(n: number, inH: number, inW: number, ci: number): boolean {
  return 4 * n * Math.ceil(inH / 4) * Math.ceil(inW / 4) <= ci;
}

function zeroInsertWinograd(backend: BackendWasm, dy: Info, filter: Info, ah: Axis, aw: Axis): boolean {
  const [kh, kw, ci, co] = filter.shape as Shape4;
  if (kh !== 3 || kw !== 3 || ah.stride !== 2 || aw.stride !== 2 || ah.dilation !== 1 || aw.dilation !== 1) return false;
  const n = dy.shape[0];
  // FINETUNE_WINOGRAD=1 skips useWinograd's size floor, not this rule.
  return zeroInsertWinogradPays(n, ah.inSize, aw.inSize, ci) && useWinograd(backend, { n, outH: ah.inSize, outW: aw.inSize, ci: co, co: ci }, 'inputGrad');
}

function winogradStrided(s: Scratch, dy: Info, filter: Info, ah: Axis, aw: Axis): Info {
  stridedInputGradStats.winograd++;
  const ph = inputGradPads(ah);
  const pw = inputGradPads(aw);
  // Zero-insert straight into the padded image that Winograd reads (4 * tiles + 2 per axis), so
  // that it needs no copy of its own: row ph.before + 2i holds dy row i.
  const hp = 4 * Math.ceil(ah.inSize / 4) + 2;
  const wp = 4 * Math.ceil(aw.inSize / 4) + 2;
  const up = zeroInsert(s, dy, hp, wp, ah.stride, aw.stride, ph.before, pw.before);
  return winogradInputGrad(s, up, filter, 0, 0, ah.inSize, aw.inSize);
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

/** w [kh, kw, Ci, Co] -> [kh, kw, Co, Ci] (the SIMD transpose when Co % 4 == 0). */
function tapTranspose(s: Scratch, filter: Info): Info {
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const fn = co % 4 === 0 ? getTranspose(s.backend) : null;
  if (!fn) return s.transpose(filter, [0, 1, 3, 2]);
  const out = s.alloc([kh, kw, co, ci]);
  fn(heapOffset(s.backend, filter).offset * 4, heapOffset(s.backend, out).offset * 4, ci, co, kh * kw);
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
