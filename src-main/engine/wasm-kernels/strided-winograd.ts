/**
 * Stride-2 convolutions with 3x3 filters (ResNet's downsampling layers) and 7x7 filters (ResNet's
 * stem) by Winograd on the four phase images of the input.
 *
 * A stride-2 convolution of x is the sum of four stride-1 convolutions: phase (ry, rx) is the image
 * x_r[i, j] = x[2i + ry, 2j + rx] convolved with the PxP filter g_r[qy, qx] = w[2qy + ry, 2qx + rx]
 * (P = 2 for 3x3, 4 for 7x7; zero where 2q + r is past the filter). Each goes through Winograd
 * F(4x4, PxP): KxK input tiles (K = P + 3), 4x4 output tiles. All four share one transform
 * domain, so the products are summed over the phases' channels before a single output transform:
 * per position p, M[p] is one matrix product over 4C channels.
 *
 * The odd phases' filters have one tap fewer along their odd side, their last tap is zero, and
 * the point at infinity (G's last row) reads only the last tap: so (1, *) vanish on the last row
 * of positions and (*, 1) on the last column. The phases sit in the channels in the order (0,1)
 * (0,0) (1,0) (1,1), so that the phases left at each position are a contiguous channel range.
 * Multiplies per 16 outputs and input channel, against the direct convolution's:
 * - 3x3, F(4x4, 2x2): 16 products over 4C, 8 over 2C, 1 over C: 81 against 144;
 * - 7x7, F(4x4, 4x4): 36 over 4C, 12 over 2C, 1 over C: 169 against 784. (The space-to-depth form
 *   with F(3x3, 4x4) that this replaced took 256, and cropped its 3-pixel tiles off 64- and
 *   112-pixel maps.)
 * The products run on our GEMM (gemm.ts) instead of XNNPACK's direct convolution.
 *
 * Phase images are read in place where C is a multiple of 4 (one input transform per phase);
 * otherwise (an RGB image) they are copied side by side first, 4C channels per pixel.
 *
 * Rounding: like winograd.ts, ~1e-6..1e-5 of the output scale.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Epilogue, byteAddress, byteAddressTable, CHUNK_BYTES, filterTransform, useWinograd, weightTransform, winogradMode, winogradStats } from './winograd.js';
import { AT4X5, AT4X7, BT5, BT7, G2, G7X4, runTransformRows, type TransformRows, type TransformSpec } from './winograd-transforms.js';
import { runTableGemm } from './gemm.js';
import { keepsTransforms } from './winograd-filter-cache.js';
import { simdKernels } from './simd-kernels.js';
import { crop4d, heapOffset, type Info, padSpatial, type Scratch, type Shape4 } from './wasm-ops.js';

/** Outputs per tile side. */
const M = 4;

/** The largest filter transform made fresh for one call (see useStridedWinograd). */
const MAX_FRESH_TRANSFORM_BYTES = 16 * 2 ** 20;

interface Scheme {
  /** The convolution's filter side, and its phases' (P). */
  taps: number;
  phaseTaps: number;
  BT: readonly number[][];
  G: readonly number[][];
  AT: readonly number[][];
}

const SCHEMES: readonly Scheme[] = [
  { taps: 3, phaseTaps: 2, BT: BT5, G: G2, AT: AT4X5 },
  { taps: 7, phaseTaps: 4, BT: BT7, G: G7X4, AT: AT4X7 },
];

/** The phases (row, column offsets) in channel order: each position's phases are a contiguous range. */
const PHASES: readonly (readonly [number, number])[] = [
  [0, 1],
  [0, 0],
  [1, 0],
  [1, 1],
];

/**
 * The channel range (in phases) whose products position (u, v) of a KxK domain needs: (1,0) and
 * (1,1) vanish on the last row, (0,1) and (1,1) on the last column (the point at infinity).
 */
function phaseRange(u: number, v: number, k: number): { first: number; count: number } {
  const inf = k - 1;
  if (u < inf && v < inf) return { first: 0, count: 4 };
  if (u < inf) return { first: 1, count: 2 }; // (0,0), (1,0)
  if (v < inf) return { first: 0, count: 2 }; // (0,1), (0,0)
  return { first: 1, count: 1 }; // (0,0)
}

const schemeFor = (filterShape: readonly number[]) =>
  SCHEMES.find((s) => filterShape[0] === s.taps && filterShape[1] === s.taps);

/** Whether a convolution of this geometry goes through stridedWinogradConv2d. */
export function useStridedWinograd(
  backend: BackendWasm,
  filterShape: readonly number[],
  strides: readonly [number, number],
  dilations: readonly [number, number],
  n: number,
  outH: number,
  outW: number,
): boolean {
  const [kh, , ci, co] = filterShape;
  const scheme = schemeFor(filterShape);
  if (!scheme || strides[0] !== 2 || strides[1] !== 2 || dilations[0] !== 1 || dilations[1] !== 1) return false;
  // Phases side by side only for a 7x7 stem: MobileNetV2's first layer (3x3, 3 -> 16 channels,
  // 224 px, batch 16) took 6.7 ms against XNNPACK's 4.3, products of 3-12 by 16 leaving our GEMM
  // idle; ResNet's stem, 3 -> 64 channels: 31 against 85.
  if (ci % 4 !== 0 && kh !== 7) return false;
  // In training the filter is transformed on every call: past ~16 MB of planes (ResNet's layer 4,
  // 256 -> 512 channels: 52 MB) that, and reading them back from memory, cost what the products
  // save (batch 16, 128 px: 15 against XNNPACK's 14 ms on 1 thread, 9-11 against 7 on 2).
  const k = M + scheme.phaseTaps - 1;
  if (winogradMode() === 'auto' && !keepsTransforms() && k * k * 4 * ci * co * 4 > MAX_FRESH_TRANSFORM_BYTES) return false;
  // The 3x3 layers' rule (enough work, enough tiles) on this convolution's direct cost; an RGB
  // image's 3 channels are 12 side by side.
  const sideBySide = ci % 4 !== 0;
  return useWinograd(backend, { n, outH, outW, ci: sideBySide ? 4 * ci : ci, co, taps: sideBySide ? (kh * kh) / 4 : kh * kh, tile: M }, 'forward');
}

/** w' [P, P, 4C, Co] of a [T, T, C, Co] filter: the phases' filters side by side, in PHASES order. */
function phaseFilter(s: Scratch, filter: Info, scheme: Scheme): Info {
  const [taps, , c, co] = filter.shape as Shape4;
  const p = scheme.phaseTaps;
  const out = s.alloc([p, p, 4 * c, co]);
  const { heap, offset: src } = heapOffset(s.backend, filter);
  const dst = heapOffset(s.backend, out).offset;
  const plane = c * co; // floats of one tap of w
  let o = dst;
  for (let qy = 0; qy < p; qy++) {
    for (let qx = 0; qx < p; qx++) {
      for (const [ry, rx] of PHASES) {
        const a = 2 * qy + ry;
        const b = 2 * qx + rx;
        if (a >= taps || b >= taps) heap.fill(0, o, o + plane);
        else heap.copyWithin(o, src + (a * taps + b) * plane, src + (a * taps + b + 1) * plane);
        o += plane;
      }
    }
  }
  return out;
}

/**
 * The phase images of `padded` side by side: [n, hp / 2, wp / 2, 4C], pixel (i, j) holding
 * padded[2i + ry, 2j + rx] for each phase in PHASES order.
 */
function phasesSideBySide(s: Scratch, padded: Info): Info {
  const [n, hp, wp, c] = padded.shape as Shape4;
  const [hs, ws] = [hp / 2, wp / 2];
  const simd = simdKernels(s.backend);
  if (!simd) throw new Error('wasm-kernels: the phase copy needs wasm SIMD');
  const out = s.alloc([n, hs, ws, 4 * c]);
  const src = byteAddress(s, padded);
  const dst = byteAddress(s, out);
  const pix = c * 4;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < hs; i++) {
      PHASES.forEach(([ry, rx], slot) => {
        const from = src + ((b * hp + 2 * i + ry) * wp + rx) * pix;
        const to = dst + (b * hs + i) * ws * 4 * pix + slot * pix;
        simd.copyRuns(from, 2 * pix, to, 4 * pix, pix, ws);
      });
    }
  }
  return out;
}

/**
 * y[n, oh, ow, co] = sum_{a, b, c} x[n, 2oh + a - top, 2ow + b - left, c] * w[a, b, c, co] (zeros
 * outside x) for a [3, 3, C, Co] or [7, 7, C, Co] filter, then + bias and the activation.
 */
export function stridedWinogradConv2d(s: Scratch, x: Info, filter: Info, top: number, left: number, outH: number, outW: number, epilogue: Epilogue): Info {
  const scheme = schemeFor(filter.shape);
  if (!scheme) throw new Error(`wasm-kernels: no stride-2 Winograd for a ${filter.shape[0]}x${filter.shape[1]} filter`);
  winogradStats.forward++;
  const [n, , , c] = x.shape as Shape4;
  const co = filter.shape[3];
  const k = M + scheme.phaseTaps - 1;
  const positions = k * k;
  const filterU = filterTransform(
    s,
    filter,
    4 * c,
    co,
    (u) => {
      const phases = phaseFilter(s, filter, scheme);
      weightTransform(s, phases, scheme.G, u);
      s.release(phases);
    },
    true,
    positions,
  );
  const th = Math.ceil(outH / M);
  const tw = Math.ceil(outW / M);
  // Phase rows 0..M*th + P - 2 (K rows per tile, tiles M apart) are input rows up to twice that + 1.
  const hp = 2 * (M * th + k - M);
  const wp = 2 * (M * tw + k - M);
  const padded = padSpatial(s, x, top, left, hp, wp);
  const inPlace = c % 4 === 0;
  const source = inPlace ? padded : phasesSideBySide(s, padded);
  if (!inPlace && padded !== x) s.release(padded);
  const hq = M * th;
  const wq = M * tw;
  const y = s.alloc([n, hq, wq, co]);
  const perImage = th * tw;
  const chunk = Math.max(1, Math.min(n, Math.floor(CHUNK_BYTES / (positions * perImage * (4 * c + co) * 4))));
  const v = Array.from({ length: positions }, () => s.alloc([chunk * perImage, 4 * c]));
  const m = Array.from({ length: positions }, () => s.alloc([chunk * perImage, co]));
  const [vAt, mAt] = [v, m].map((list) => list.map((b) => byteAddress(s, b)));
  const uAt = Array.from({ length: positions }, (_, p) => byteAddress(s, filterU.u) + p * filterU.u.shape[1] * 4);
  const mTable = byteAddressTable(s, mAt);
  const [pixIn, pixOut, rowIn] = [c * 4, co * 4, 4 * c * 4];
  const inputs = inputTransforms(s, scheme, vAt, inPlace, c, wp);
  const outputSpec: TransformSpec = {
    L: scheme.AT,
    input: { kind: 'table' },
    output: { kind: 'image', rowBytes: wq * pixOut, pixBytes: pixOut, tile: M },
    bias: epilogue.bias !== undefined,
    act: epilogue.act,
  };
  const products = productGroups(s, k, vAt, uAt, mAt, c, co);
  const sourceImage = inPlace ? hp * wp * pixIn : (hp / 2) * (wp / 2) * rowIn;
  for (let b0 = 0; b0 < n; b0 += chunk) {
    const images = Math.min(chunk, n - b0);
    const base = byteAddress(s, source) + b0 * sourceImage;
    for (const input of inputs) {
      const rows: TransformRows = {
        src: base + input.offset,
        srcImage: sourceImage,
        srcRow: input.tileRowBytes,
        dst: input.table,
        dstImage: perImage * rowIn,
        dstRow: tw * rowIn,
        n: images,
        th,
        tw,
        chanBytes: input.chanBytes,
        bias: 0,
      };
      runTransformRows(s.backend, input.spec, rows);
    }
    for (const group of products) {
      if (!runTableGemm(s.backend, { ...group, m: images * perImage, n: co })) throw new Error('wasm-kernels: the Winograd products need wasm SIMD');
    }
    const rows: TransformRows = {
      src: mTable,
      srcImage: perImage * pixOut,
      srcRow: tw * pixOut,
      dst: byteAddress(s, y) + b0 * hq * wq * pixOut,
      dstImage: hq * wq * pixOut,
      dstRow: M * wq * pixOut,
      n: images,
      th,
      tw,
      chanBytes: pixOut,
      bias: epilogue.bias ? byteAddress(s, epilogue.bias) : 0,
    };
    runTransformRows(s.backend, outputSpec, rows);
  }
  for (const b of [...v, ...m]) s.release(b);
  if (filterU.owned) s.release(filterU.u);
  if (source !== x) s.release(source);
  return crop4d(s, y, 0, 0, outH, outW);
}

interface InputTransform {
  spec: TransformSpec;
  /** Where its tiles start in an image of the source, and bytes between rows of tiles there. */
  offset: number;
  tileRowBytes: number;
  chanBytes: number;
  /** The table of V's buffers, each offset to this transform's channels. */
  table: number;
}

/**
 * V = B^T d B into each position's [tiles, 4C] buffer: one transform per phase reading the padded
 * image in place (each writes its C channels of every row), or one over the side-by-side copy.
 */
function inputTransforms(s: Scratch, scheme: Scheme, vAt: number[], inPlace: boolean, c: number, wp: number): InputTransform[] {
  const pix = c * 4;
  if (!inPlace) {
    // The copy: pixels of 4C channels, wp / 2 per row.
    const row = (wp / 2) * 4 * pix;
    const spec: TransformSpec = { L: scheme.BT, input: { kind: 'image', rowBytes: row, pixBytes: 4 * pix, tile: M }, output: { kind: 'table' } };
    return [{ spec, offset: 0, tileRowBytes: M * row, chanBytes: 4 * pix, table: byteAddressTable(s, vAt) }];
  }
  // A phase's pixels are 2 pixels apart in a row, its rows 2 rows apart.
  const spec: TransformSpec = {
    L: scheme.BT,
    input: { kind: 'image', rowBytes: 2 * wp * pix, pixBytes: 2 * pix, tile: M },
    output: { kind: 'table', tileBytes: 4 * pix },
  };
  return PHASES.map(([ry, rx], slot) => ({
    spec,
    offset: (ry * wp + rx) * pix,
    tileRowBytes: 2 * M * wp * pix,
    chanBytes: pix,
    table: byteAddressTable(s, vAt.map((at) => at + slot * pix)),
  }));
}

/**
 * The products M[p] = V[p][:, range] x U[p][range, :] grouped by reduction length (4C, 2C, C),
 * each group one table GEMM whose A and B addresses start at the position's phase range.
 */
function productGroups(s: Scratch, k: number, vAt: number[], uAt: number[], mAt: number[], c: number, co: number) {
  const groups = new Map<number, { a: number[]; b: number[]; c: number[] }>();
  for (let u = 0; u < k; u++) {
    for (let w = 0; w < k; w++) {
      const p = u * k + w;
      const { first, count } = phaseRange(u, w, k);
      const g = groups.get(count) ?? { a: [], b: [], c: [] };
      g.a.push(vAt[p] + first * c * 4);
      g.b.push(uAt[p] + first * c * co * 4);
      g.c.push(mAt[p]);
      groups.set(count, g);
    }
  }
  return [...groups].map(([count, g]) => ({
    layout: { k: count * c, lda: 4 * c, ldb: co, ldc: co },
    aTable: byteAddressTable(s, g.a),
    bTable: byteAddressTable(s, g.b),
    cTable: byteAddressTable(s, g.c),
    count: g.a.length,
  }));
}
