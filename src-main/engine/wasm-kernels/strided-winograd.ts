/**
 * 3x3 stride-2 convolutions (ResNet's downsampling convolutions) by Winograd F(4x4, 2x2) on the
 * four phase images of the input.
 *
 * A stride-2 convolution of x is the sum of four stride-1 convolutions: phase (ry, rx) is the image
 * x_r[i, j] = x[2i + ry, 2j + rx] convolved with the 2x2 filter g_r[qy, qx] = w[2qy + ry, 2qx + rx]
 * (zero where 2q + r = 3). Each goes through Winograd F(4x4, 2x2): 5x5 input tiles, 4x4 output
 * tiles, 25 products per tile. All four share one transform domain, so the products are summed
 * over the phases' channels before a single output transform: per position p, M[p] is one matrix
 * product over 4C channels.
 *
 * Three of the phases have a filter with one tap along a side (ry = 1: rows; rx = 1: columns), and
 * F(4,2)'s point at infinity (G's last row) reads only the second tap, so their transformed filters
 * are zero on the last row or column of positions. The phases sit in the channels in the order
 * (0,1) (0,0) (1,0) (1,1), so that the phases left at each position are a contiguous channel range:
 * 16 products over 4C channels, 8 over 2C and 1 over C, 81 multiplies per 16 outputs and channel
 * where the direct convolution takes 144: 1.8x fewer, on our GEMM (gemm.ts) instead of XNNPACK's.
 *
 * Rounding: like winograd.ts, ~1e-6..1e-5 of the output scale.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Epilogue, byteAddress, byteAddressTable, CHUNK_BYTES, filterTransform, useWinograd, weightTransform, winogradStats } from './winograd.js';
import { AT4X5, BT5, G2, runTransformRows, type TransformRows } from './winograd-transforms.js';
import { runTableGemm } from './gemm.js';
import { crop4d, heapOffset, type Info, padSpatial, type Scratch, type Shape4 } from './wasm-ops.js';

/** Outputs per tile side, inputs per tile side (of a phase image), positions per tile. */
const M = 4;
const K = 5;
const POSITIONS = K * K;
/** The position of the point at infinity along a side. */
const INF = K - 1;

/** The phases (row, column offsets) in channel order: each position's phases are a contiguous range. */
const PHASES: readonly (readonly [number, number])[] = [
  [0, 1],
  [0, 0],
  [1, 0],
  [1, 1],
];

/**
 * The channel range (in phases) whose products position (u, v) needs: (1,0) and (1,1) vanish on
 * row u = INF, (0,1) and (1,1) on column v = INF.
 */
function phaseRange(u: number, v: number): { first: number; count: number } {
  if (u < INF && v < INF) return { first: 0, count: 4 };
  if (u < INF) return { first: 1, count: 2 }; // (0,0), (1,0)
  if (v < INF) return { first: 0, count: 2 }; // (0,1), (0,0)
  return { first: 1, count: 1 }; // (0,0)
}

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
  const [kh, kw, ci, co] = filterShape;
  if (kh !== 3 || kw !== 3 || strides[0] !== 2 || strides[1] !== 2 || dilations[0] !== 1 || dilations[1] !== 1) return false;
  // The 3x3 layers' rule (enough work, enough tiles) on this convolution's own cost.
  return useWinograd(backend, { n, outH, outW, ci, co, tile: M }, 'forward');
}

/** w' [2, 2, 4C, Co] of a [3, 3, C, Co] filter: the phases' filters side by side, in PHASES order. */
function phaseFilter(s: Scratch, filter: Info): Info {
  const [, , c, co] = filter.shape as Shape4;
  const out = s.alloc([2, 2, 4 * c, co]);
  const { heap, offset: src } = heapOffset(s.backend, filter);
  const dst = heapOffset(s.backend, out).offset;
  const plane = c * co; // floats of one tap of w
  let o = dst;
  for (let qy = 0; qy < 2; qy++) {
    for (let qx = 0; qx < 2; qx++) {
      for (const [ry, rx] of PHASES) {
        const a = 2 * qy + ry;
        const b = 2 * qx + rx;
        if (a > 2 || b > 2) heap.fill(0, o, o + plane);
        else heap.copyWithin(o, src + (a * 3 + b) * plane, src + (a * 3 + b + 1) * plane);
        o += plane;
      }
    }
  }
  return out;
}

/**
 * y[n, oh, ow, co] = sum_{a, b, c} x[n, 2oh + a - top, 2ow + b - left, c] * w[a, b, c, co] (zeros
 * outside x) for a [3, 3, C, Co] filter, then + bias and the activation.
 */
export function stridedWinogradConv2d(s: Scratch, x: Info, filter: Info, top: number, left: number, outH: number, outW: number, epilogue: Epilogue): Info {
  winogradStats.forward++;
  const [n, , , c] = x.shape as Shape4;
  const co = filter.shape[3];
  const filterU = filterTransform(
    s,
    filter,
    4 * c,
    co,
    (u) => {
      const phases = phaseFilter(s, filter);
      weightTransform(s, phases, G2, u);
      s.release(phases);
    },
    true,
    POSITIONS,
  );
  const th = Math.ceil(outH / M);
  const tw = Math.ceil(outW / M);
  // Phase rows 0..M*th (K rows per tile, tiles M apart) are input rows 0..2*M*th + 1.
  const hp = 2 * M * th + 2;
  const wp = 2 * M * tw + 2;
  const padded = padSpatial(s, x, top, left, hp, wp);
  const hq = M * th;
  const wq = M * tw;
  const y = s.alloc([n, hq, wq, co]);
  const perImage = th * tw;
  const chunk = Math.max(1, Math.min(n, Math.floor(CHUNK_BYTES / (POSITIONS * perImage * (4 * c + co) * 4))));
  const v = Array.from({ length: POSITIONS }, () => s.alloc([chunk * perImage, 4 * c]));
  const m = Array.from({ length: POSITIONS }, () => s.alloc([chunk * perImage, co]));
  const [vAt, mAt] = [v, m].map((list) => list.map((b) => byteAddress(s, b)));
  // One table of V's rows per phase: its channels' start in every position's buffer.
  const phaseTables = PHASES.map((_, i) => byteAddressTable(s, vAt.map((at) => at + i * c * 4)));
  const uPlanes = planeAddresses(s, filterU.u);
  const mTable = byteAddressTable(s, mAt);
  const [pixIn, pixOut, rowIn] = [c * 4, co * 4, 4 * c * 4];
  const inputSpec = { L: BT5, input: { kind: 'image' as const, rowBytes: 2 * wp * pixIn, pixBytes: 2 * pixIn, tile: M }, output: { kind: 'table' as const, tileBytes: rowIn } };
  const outputSpec = { L: AT4X5, input: { kind: 'table' as const }, output: { kind: 'image' as const, rowBytes: wq * pixOut, pixBytes: pixOut, tile: M }, bias: epilogue.bias !== undefined, act: epilogue.act };
  const products = productGroups(s, vAt, uPlanes, mAt, c, co);
  for (let b0 = 0; b0 < n; b0 += chunk) {
    const images = Math.min(chunk, n - b0);
    const base = byteAddress(s, padded) + b0 * hp * wp * pixIn;
    PHASES.forEach(([ry, rx], i) => {
      const rows: TransformRows = {
        src: base + (ry * wp + rx) * pixIn,
        srcImage: hp * wp * pixIn,
        srcRow: 2 * M * wp * pixIn,
        dst: phaseTables[i],
        dstImage: perImage * rowIn,
        dstRow: tw * rowIn,
        n: images,
        th,
        tw,
        chanBytes: pixIn,
        bias: 0,
      };
      runTransformRows(s.backend, inputSpec, rows);
    });
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
  if (padded !== x) s.release(padded);
  return crop4d(s, y, 0, 0, outH, outW);
}

/** Byte addresses of U's planes ([POSITIONS, plane stride]). */
function planeAddresses(s: Scratch, u: Info): number[] {
  const at = byteAddress(s, u);
  return Array.from({ length: POSITIONS }, (_, p) => at + p * u.shape[1] * 4);
}

/**
 * The 25 products M[p] = V[p][:, range] x U[p][range, :] grouped by reduction length (4C, 2C, C),
 * each group one table GEMM whose A and B addresses start at the position's phase range.
 */
function productGroups(s: Scratch, vAt: number[], uAt: number[], mAt: number[], c: number, co: number) {
  const groups = new Map<number, { a: number[]; b: number[]; c: number[] }>();
  for (let u = 0; u < K; u++) {
    for (let w = 0; w < K; w++) {
      const p = u * K + w;
      const { first, count } = phaseRange(u, w);
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
