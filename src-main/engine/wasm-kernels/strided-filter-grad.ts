/**
 * Direct (no im2col, no packing) filter gradient for strided convolutions, as a generated
 * WebAssembly SIMD kernel running on the tfjs heap:
 *
 *   dW[a, b, ci, co] = sum_{n, oh, ow} x[n, oh*s + a - pt, ow*s + b - pl, ci] * dy[n, oh, ow, co]
 *
 * read as a GEMM whose rows are the filter taps (a, b, ci) and whose columns are the output
 * channels. For a fixed tap row a and column tap b, the Ci values x[n, y, xx + b, 0..Ci) are
 * contiguous, so a tile of R consecutive input channels of one tap and V vectors (4V output
 * channels) is a register block of R x V accumulators, updated once per output pixel with R
 * broadcast loads from x, V vector loads from dy and R*V multiply-adds. The tile walks the
 * pixels of a chunk of dy (a range of rows of one image, or several whole images) that stays in
 * cache while every tile of the filter visits it.
 *
 * Padding needs no padded copy of x: for each tap (a, b) the output rows / columns whose input
 * falls inside x form one contiguous range, and the tile only walks that range.
 *
 * Why this beats the XNNPACK formulation in conv2d-backprop-filter.ts on stride 2: there dy is
 * the convolution's filter, which XNNPACK repacks on every call, and its inner GEMM streams the
 * whole packed dy band from L3 once per 4 filter rows; here dy is read in place from L1/L2.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { exportsOnBackend, exportsOnMemory, type WasmExports, type WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { countDown, encodeModule, type FunctionDef, op } from './wasm-asm.js';


/** Largest register tiles generated: R input channels x V vectors of 4 output channels. */
const MAX_R = 4;
const MAX_V = 4;
const MAX_ACC = 16;

const PARAMS = [
  'x',
  'dy',
  'acc',
  'imgs',
  'rows',
  'cols',
  'xImg',
  'xRow',
  'xCol',
  'dyImg',
  'dyRow',
  'dyCol',
  'accRow',
] as const;

/**
 * acc[i, 4v..4v+4) += sum over (img, row, col) of x[img*xImg + row*xRow + col*xCol + 4i] *
 * dy[img*dyImg + row*dyRow + col*dyCol + 16v], for i < R, v < V (byte addresses / strides;
 * acc rows accRow bytes apart). imgs, rows and cols must be >= 1.
 */
function tileFunction(R: number, V: number): FunctionDef {
  const p = Object.fromEntries(PARAMS.map((name, i) => [name, i])) as Record<(typeof PARAMS)[number], number>;
  let next = PARAMS.length;
  const [img, row, col, xi, di, xr, dr, px, pd, ar] = Array.from({ length: 10 }, () => next++);
  const accs = Array.from({ length: R }, () => Array.from({ length: V }, () => next++));
  const splats = Array.from({ length: R }, () => next++);
  const d = next++;
  const add = (local: number, by: number) => [...op.get(local), ...op.get(by), ...op.i32Add, ...op.set(local)];
  const accRows = (f: (i: number) => number[][]): number[][] => {
    const code: number[][] = [[...op.get(p.acc), ...op.set(ar)]];
    for (let i = 0; i < R; i++) {
      code.push(...f(i));
      if (i + 1 < R) code.push(add(ar, p.accRow));
    }
    return code;
  };
  const pixel: number[][] = [];
  for (let i = 0; i < R; i++) pixel.push([...op.get(px), ...op.load32Splat(4 * i), ...op.set(splats[i])]);
  for (let v = 0; v < V; v++) {
    pixel.push([...op.get(pd), ...op.v128Load(16 * v), ...op.set(d)]);
    for (let i = 0; i < R; i++) {
      pixel.push([...op.get(accs[i][v]), ...op.get(splats[i]), ...op.get(d), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(accs[i][v])]);
    }
  }
  pixel.push(add(px, p.xCol), add(pd, p.dyCol));
  return {
    name: `tile_${R}_${V}`,
    params: Array(PARAMS.length).fill('i32'),
    locals: [...Array(10).fill('i32'), ...Array(R * V + R + 1).fill('v128')],
    body: [
      ...accRows((i) => accs[i].map((a, v) => [...op.get(ar), ...op.v128Load(16 * v), ...op.set(a)])),
      [...op.get(p.x), ...op.set(xi), ...op.get(p.dy), ...op.set(di)],
      countDown(img, op.get(p.imgs), [
        [...op.get(xi), ...op.set(xr), ...op.get(di), ...op.set(dr)],
        countDown(row, op.get(p.rows), [
          [...op.get(xr), ...op.set(px), ...op.get(dr), ...op.set(pd)],
          countDown(col, op.get(p.cols), pixel),
          add(xr, p.xRow),
          add(dr, p.dyRow),
        ]),
        add(xi, p.xImg),
        add(di, p.dyImg),
      ]),
      ...accRows((i) => accs[i].map((a, v) => [...op.get(ar), ...op.get(a), ...op.v128Store(16 * v)])),
    ],
  };
}

export type TileFn = (
  x: number,
  dy: number,
  acc: number,
  imgs: number,
  rows: number,
  cols: number,
  xImg: number,
  xRow: number,
  xCol: number,
  dyImg: number,
  dyRow: number,
  dyCol: number,
  accRow: number,
) => void;

/** tiles[R - 1][V - 1] (undefined where R*V > MAX_ACC). */
export type Tiles = TileFn[][];

function functions(): FunctionDef[] {
  const defs: FunctionDef[] = [];
  for (let r = 1; r <= MAX_R; r++) for (let v = 1; v <= MAX_V; v++) if (r * v <= MAX_ACC) defs.push(tileFunction(r, v));
  return defs;
}

const tileTables = new WeakMap<WasmExports, Tiles>();

function tileTable(e: WasmExports | null): Tiles | null {
  if (!e) return null;
  let tiles = tileTables.get(e);
  if (!tiles) {
    tiles = Array.from({ length: MAX_R }, (_, r) => Array.from({ length: MAX_V }, (_, v) => e[`tile_${r + 1}_${v + 1}`] as unknown as TileFn));
    tileTables.set(e, tiles);
  }
  return tiles;
}

/** The tile kernels bound to this backend's heap, or null where they cannot run. */
export function stridedFilterGradTiles(backend: BackendWasm): Tiles | null {
  return tileTable(exportsOnBackend(backend, 'strided-filter-grad', functions));
}

/** The same kernels on a kernel-pool thread. */
export function stridedFilterGradTilesOnMemory(memory: WasmMemory): Tiles | null {
  return tileTable(exportsOnMemory(memory, 'strided-filter-grad', functions));
}

/** Test hook: the module's bytes (encoder / opcode errors show in WebAssembly.validate). */
export function stridedFilterGradModuleBytes(shared = false): Uint8Array {
  return encodeModule(functions(), { shared });
}

/** Geometry of one filter gradient, in elements (x and dy NHWC, dW [kh, kw, Ci, Co]). */
export interface DirectGeometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  ho: number;
  wo: number;
  co: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
}

/** Blocking: register tile (R x V) and output pixels per chunk of dy. */
export interface DirectPlan {
  r: number;
  v: number;
  chunk: number;
}

/**
 * Measured on a 2-core EPYC (1 thread, batch 16; ms for the whole kernel, tile x chunk):
 * 4x2 was best or within noise of it everywhere: stem 7x7 Ci=3 (tile 3x2) 71 ms vs 3x4 115,
 * 2x4 94, 2x2 98, 8x1 103; 3x3 Ci=64 Co=128 @56: 4x2 40 vs 2x4 45, 3x3 45, 4x3 58, 6x2 59.
 * Twelve or more accumulators lose to spills (V8 allocates 15 xmm registers). Chunks of 256-512
 * dy pixels measured alike; 1024+ lost up to 40% with Co >= 256 (the dy slice leaves L2).
 */
export function directPlan(g: Pick<DirectGeometry, 'co'>): DirectPlan {
  return { r: 4, v: 2, chunk: g.co <= 128 ? 512 : 256 };
}

/** [lo, hi) of outputs o in [0, outSize) with 0 <= o*s + tap - pad < inSize. */
function validRange(outSize: number, inSize: number, s: number, tap: number, pad: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - tap) / s));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + pad - tap) / s) + 1);
  return [lo, Math.max(lo, hi)];
}

/**
 * Accumulates dW into `acc` (byte address, kh*kw*Ci*Co floats, zeroed by the caller) from x and dy
 * at byte addresses `x` and `dy`. Co must be a multiple of 4.
 *
 * Part `part` of `parts` does the register tiles whose index (tap, vector block, channel block)
 * is `part` modulo `parts`: the parts write disjoint tiles of acc, each walks every chunk of dy.
 */
export function directFilterGrad(
  tiles: Tiles,
  x: number,
  dy: number,
  acc: number,
  g: DirectGeometry,
  plan: DirectPlan = directPlan(g),
  part = 0,
  parts = 1,
): void {
  const { r: TILE_R, v: TILE_V, chunk: CHUNK_PIXELS } = plan;
  const { n, h, w, ci, ho, wo, co, kh, kw, sh, sw, pt, pl } = g;
  if (co % 4 !== 0) throw new Error('directFilterGrad: Co must be a multiple of 4');
  if (TILE_R > MAX_R || TILE_V > MAX_V || TILE_R * TILE_V > MAX_ACC) throw new Error(`directFilterGrad: no ${TILE_R}x${TILE_V} tile`);
  const F = 4;
  const xPix = ci * F;
  const xRowB = w * xPix;
  const xImgB = h * xRowB;
  const dyPix = co * F;
  const dyRowB = wo * dyPix;
  const dyImgB = ho * dyRowB;
  const rowRanges = Array.from({ length: kh }, (_, a) => validRange(ho, h, sh, a, pt));
  const colRanges = Array.from({ length: kw }, (_, b) => validRange(wo, w, sw, b, pl));
  // Chunks: ranges of rows of one image, or groups of whole images.
  const perImage = ho * wo;
  const chunks: { n0: number; imgs: number; r0: number; r1: number }[] = [];
  if (perImage >= CHUNK_PIXELS) {
    const rows = Math.max(1, Math.floor(CHUNK_PIXELS / wo));
    for (let i = 0; i < n; i++) for (let r = 0; r < ho; r += rows) chunks.push({ n0: i, imgs: 1, r0: r, r1: Math.min(ho, r + rows) });
  } else {
    const imgs = Math.max(1, Math.floor(CHUNK_PIXELS / perImage));
    for (let i = 0; i < n; i += imgs) chunks.push({ n0: i, imgs: Math.min(imgs, n - i), r0: 0, r1: ho });
  }
  const vectors = co / 4;
  const vBlocks = Math.ceil(vectors / TILE_V);
  const iBlocks = Math.ceil(ci / TILE_R);
  for (const chunk of chunks) {
    for (let a = 0; a < kh; a++) {
      const r0 = Math.max(chunk.r0, rowRanges[a][0]);
      const r1 = Math.min(chunk.r1, rowRanges[a][1]);
      if (r1 <= r0) continue;
      for (let b = 0; b < kw; b++) {
        const [c0, c1] = colRanges[b];
        if (c1 <= c0) continue;
        const xBase = x + chunk.n0 * xImgB + (r0 * sh + a - pt) * xRowB + (c0 * sw + b - pl) * xPix;
        const dyBase = dy + chunk.n0 * dyImgB + r0 * dyRowB + c0 * dyPix;
        const accBase = acc + (a * kw + b) * ci * dyPix;
        for (let v0 = 0; v0 < vectors; v0 += TILE_V) {
          const v = Math.min(TILE_V, vectors - v0);
          const firstTile = ((a * kw + b) * vBlocks + v0 / TILE_V) * iBlocks;
          for (let i0 = 0; i0 < ci; i0 += TILE_R) {
            if (parts > 1 && (firstTile + i0 / TILE_R) % parts !== part) continue;
            const r = Math.min(TILE_R, ci - i0);
            tiles[r - 1][v - 1](
              xBase + i0 * F,
              dyBase + v0 * 16,
              accBase + i0 * dyPix + v0 * 16,
              chunk.imgs,
              r1 - r0,
              c1 - c0,
              xImgB,
              sh * xRowB,
              sw * xPix,
              dyImgB,
              dyRowB,
              dyPix,
              dyPix,
            );
          }
        }
      }
    }
  }
}

const GEOMETRY_KEYS = ['n', 'h', 'w', 'ci', 'ho', 'wo', 'co', 'kh', 'kw', 'sh', 'sw', 'pt', 'pl'] as const;

/** The kernel-pool task of directFilterGrad: its arguments as numbers. */
function filterGradArgs(x: number, dy: number, acc: number, g: DirectGeometry, plan: DirectPlan): number[] {
  return [x, dy, acc, ...GEOMETRY_KEYS.map((k) => g[k]), plan.r, plan.v, plan.chunk];
}

/** pool-tasks.ts' side of filterGradArgs. */
export function filterGradPart(tiles: Tiles, args: readonly number[]): (part: number, parts: number) => void {
  const [x, dy, acc] = args;
  const g = Object.fromEntries(GEOMETRY_KEYS.map((k, i) => [k, args[3 + i]])) as unknown as DirectGeometry;
  const [r, v, chunk] = args.slice(3 + GEOMETRY_KEYS.length);
  return (part, parts) => directFilterGrad(tiles, x, dy, acc, g, { r, v, chunk }, part, parts);
}

/** directFilterGrad split over the kernel pool's threads (kernel-pool.ts). */
export function pooledFilterGrad(backend: BackendWasm, tiles: Tiles, x: number, dy: number, acc: number, g: DirectGeometry): void {
  const args = filterGradArgs(x, dy, acc, g, directPlan(g));
  // ~45 GFLOP/s on one thread (measured: 67 MFLOP in 1.5 ms).
  const flops = 2 * g.n * g.ho * g.wo * g.kh * g.kw * g.ci * g.co;
  const parts = poolParts(backend, flops / 45e3, Infinity);
  const run = filterGradPart(tiles, args);
  runParts(backend, { name: 'filterGrad', args }, parts, (part) => run(part, parts));
}
