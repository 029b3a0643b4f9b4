/**
 * One-dimensional geometry of the convolutions that compute convolution gradients.
 *
 * Notation for one spatial axis of the forward convolution y = conv(x, w):
 *   inSize  = x length, outSize = y length, k = taps, s = stride, d = dilation,
 *   padBefore = zero rows added before x (tfjs `padInfo.top` / `.left`),
 *   y[o] = sum_a x[o*s + a*d - padBefore] * w[a].
 * The height and width axes are independent, so every formula here is 1-D and pure (unit tested
 * without a backend). Paddings returned may be negative: that means "crop this many input rows",
 * which `convAnyPad` does.
 */

export interface ConvAxis {
  inSize: number;
  outSize: number;
  k: number;
  stride: number;
  dilation: number;
  padBefore: number;
}

export interface AxisPads {
  before: number;
  after: number;
}

/**
 * dW[a] = sum_o x[o*s + a*d - p] * dy[o] is a correlation of x with dy used as a filter of outSize
 * taps spaced s apart (dilation s), sampled every d (stride d), producing exactly k outputs.
 */
export function filterGradPads(a: ConvAxis): AxisPads {
  const before = a.padBefore;
  const after = (a.k - 1) * a.dilation + (a.outSize - 1) * a.stride + 1 - a.inSize - before;
  return { before, after };
}

/**
 * dx[y] = sum_a dy_up[y + p - a*d] * w[a], where dy_up is dy with (s - 1) zeros inserted between
 * samples (length (outSize - 1)*s + 1; equal to dy when s = 1). That is a stride-1 correlation of
 * dy_up with the flipped filter (dilation d), padded so that it yields exactly inSize outputs.
 */
export function inputGradPads(a: ConvAxis): AxisPads & { upsampledSize: number } {
  const upsampledSize = (a.outSize - 1) * a.stride + 1;
  const span = (a.k - 1) * a.dilation;
  const before = span - a.padBefore;
  const after = a.inSize - upsampledSize + span - before;
  return { before, after, upsampledSize };
}

/**
 * Sub-pixel ("phase") form of dx for stride s > 1 and dilation 1, which avoids multiplying the
 * inserted zeros. Write p = y + padBefore = q*s + r. Then dx[y] = sum_j dy[q - j] * w[r + j*s]:
 * for each phase r a stride-1 correlation of dy with the J = ceil(k/s) taps w[r + (J-1-t)*s]
 * (zero where r + (J-1-t)*s >= k). All s phases go into one convolution as s blocks of output
 * channels; DepthToSpace then interleaves them, and the result is cropped to inSize starting at
 * `cropBefore`. `q` runs over [qMin, qMin + blocks).
 */
export interface PhaseAxis {
  taps: number;
  /** Padding of dy for the phase convolution (negative: crop). */
  before: number;
  after: number;
  /** Output rows of the phase convolution (one per q). */
  blocks: number;
  /** Rows to drop from the interleaved result before taking inSize rows. */
  cropBefore: number;
}

export function phaseAxis(a: ConvAxis): PhaseAxis {
  if (a.dilation !== 1) throw new Error('phaseAxis: dilation must be 1');
  const s = a.stride;
  const taps = Math.ceil(a.k / s);
  const qMin = Math.floor(a.padBefore / s);
  const qMax = Math.floor((a.inSize - 1 + a.padBefore) / s);
  const blocks = qMax - qMin + 1;
  const before = taps - 1 - qMin;
  const after = blocks - a.outSize - before + taps - 1;
  return { taps, before, after, blocks, cropBefore: a.padBefore - qMin * s };
}

/** Tap of the original filter used by phase `r`, phase-filter tap `t` (or -1 for a zero tap). */
export function phaseTap(a: Pick<ConvAxis, 'k' | 'stride'>, taps: number, r: number, t: number): number {
  const tap = r + (taps - 1 - t) * a.stride;
  return tap < a.k ? tap : -1;
}

/** The subset of tfjs' `Conv2DInfo` that the axes are read from. */
export interface ConvInfoLike {
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padInfo: { top: number; left: number };
}

export function convAxes(info: ConvInfoLike): [ConvAxis, ConvAxis] {
  return [
    {
      inSize: info.inHeight,
      outSize: info.outHeight,
      k: info.filterHeight,
      stride: info.strideHeight,
      dilation: info.dilationHeight,
      padBefore: info.padInfo.top,
    },
    {
      inSize: info.inWidth,
      outSize: info.outWidth,
      k: info.filterWidth,
      stride: info.strideWidth,
      dilation: info.dilationWidth,
      padBefore: info.padInfo.left,
    },
  ];
}
