/**
 * C = A x B (row-major, float32) as a generated WebAssembly SIMD kernel on the tfjs heap, for the
 * 36 small products of a Winograd convolution (winograd.ts). Through the stock BatchMatMul each of
 * them is one XNNPACK call that packs a fresh B and, with threads, splits a ~0.2 ms product over
 * the pthread pool; here a product is a plain loop nest, and the kernel pool runs whole products
 * on its threads (36 independent parts).
 *
 * Register tile: R rows of A x V vectors (4V columns) of B, R*V accumulators; per step of the
 * reduction R broadcast loads from A, V vector loads from B and R*V multiply-adds. A module is
 * generated per (K, lda, ldb, ldc), so that every address offset is an immediate; the rows of a
 * tile walk the reduction together and the tile is stored once at the end.
 *
 * B is read in place, one row per step of the reduction: with rows 4 KiB or more apart every step
 * lands on another page, and XNNPACK, which packs B, wins (576x128x4096: 26 against 42 GFLOP/s;
 * 1152x256x1024: 33 against 43). `gemmFits` says where ours is the faster one.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, exportsOnBackend, exportsOnMemory, type WasmExports, type WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { countDown, encodeModule, type FunctionDef, op } from './wasm-asm.js';


/** Row tile heights and vector widths generated (4x2: 8 accumulators + 4 splats + 2 loads). */
const TILE_R = 4;
const TILE_V = 2;

/** Whether B's rows (ldb floats) are close enough for our GEMM to beat XNNPACK's (see above). */
export const gemmFits = (ldb: number) => ldb < 1024;

/**
 * The longest reduction one call should run: a K x 4V panel of B must stay in L1 (48 KiB) for all
 * of A's row blocks. ResNet's layer-4 stride-2 products (K 1024, 16 x 1024 by 1024 x 512, B's rows
 * 2 KiB apart) ran at ~30 GFLOP/s on one thread; in halves of 512, the whole convolution
 * took 11.3 -> 8.1 ms on 1 thread, 7.9 -> 6.7 on 2 (alternating in one process).
 */
const MAX_REDUCTION = 512;

/**
 * `layout` as consecutive pieces of its reduction, each at most MAX_REDUCTION long: run them in
 * order, the first as the layout says, the others adding to C. Offsets in floats along A's rows
 * and in rows of B.
 */
export function splitReduction(layout: GemmLayout): { layout: GemmLayout; aOffset: number; bRowOffset: number }[] {
  const pieces = Math.ceil(layout.k / MAX_REDUCTION);
  if (pieces <= 1) return [{ layout, aOffset: 0, bRowOffset: 0 }];
  if (layout.bias) throw new Error('gemm: a split reduction cannot start from a bias');
  const k = Math.ceil(layout.k / pieces);
  return Array.from({ length: pieces }, (_, i) => {
    const start = i * k;
    const piece = { ...layout, k: Math.min(k, layout.k - start), accumulate: layout.accumulate || i > 0 };
    return { layout: piece, aOffset: start, bRowOffset: start };
  });
}

/** Leading dimensions (in floats) and the reduction length, baked into the module. */
export interface GemmLayout {
  k: number;
  lda: number;
  ldb: number;
  ldc: number;
  /** C += A x B instead of C = A x B (a filter gradient summed block by block). */
  accumulate?: boolean;
  /** C = bias + A x B, the bias a row of n floats (a 1x1 convolution's, pointwise-conv.ts). */
  bias?: boolean;
}

/**
 * gemm_R_V(a, b, c, mBlocks, nBlocks[, bias]): for mBlocks blocks of R rows and nBlocks blocks of
 * 4V columns, C[rows, cols] = sum_k A[rows, k] * B[k, cols] (+ bias[cols]). Byte addresses.
 * Column blocks are the outer loop: one K x 4V panel of B (16 KiB for K = 512) stays in L1 while
 * every row block of A passes under it, so B is read from memory once per call. (Rows outer read
 * all of B once per 4 rows: Winograd's layer-4 products, 16 x 512 by 512 x 512, ran at 35 instead
 * of 50 GFLOP/s.) The caller keeps A's rows per call small enough to stay in L2 (see
 * ROWS_PER_CALL_BYTES).
 */
function gemmFunction(R: number, V: number, g: GemmLayout): FunctionDef {
  if (g.accumulate && g.bias) throw new Error('gemm: a layout either accumulates or adds a bias');
  const [a, b, c, mBlocks, nBlocks, bias] = [0, 1, 2, 3, 4, 5];
  const params = g.bias ? 6 : 5;
  let next = params;
  const [mi, ni, ki, pa, pb, rowA, rowC, colB, colC, colBias] = Array.from({ length: 10 }, () => next++);
  const acc = Array.from({ length: R }, () => Array.from({ length: V }, () => next++));
  const splat = Array.from({ length: R }, () => next++);
  const bv = Array.from({ length: V }, () => next++);
  const addConst = (local: number, amount: number) => [...op.get(local), ...op.i32(amount), ...op.i32Add, ...op.set(local)];
  const step: number[][] = [];
  for (let r = 0; r < R; r++) step.push([...op.get(pa), ...op.load32Splat(r * g.lda * 4), ...op.set(splat[r])]);
  for (let v = 0; v < V; v++) {
    step.push([...op.get(pb), ...op.v128Load(16 * v), ...op.set(bv[v])]);
    for (let r = 0; r < R; r++) {
      step.push([...op.get(acc[r][v]), ...op.get(splat[r]), ...op.get(bv[v]), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(acc[r][v])]);
    }
  }
  step.push(addConst(pa, 4), addConst(pb, g.ldb * 4));
  const initial = (r: number, v: number) => {
    if (g.accumulate) return [...op.get(rowC), ...op.v128Load(r * g.ldc * 4 + 16 * v)];
    if (g.bias) return [...op.get(colBias), ...op.v128Load(16 * v)];
    return op.f32x4Const(0);
  };
  const start = acc.flatMap((row, r) => row.map((l, v) => [...initial(r, v), ...op.set(l)]));
  const store: number[][] = [];
  for (let r = 0; r < R; r++) {
    for (let v = 0; v < V; v++) store.push([...op.get(rowC), ...op.get(acc[r][v]), ...op.v128Store(r * g.ldc * 4 + 16 * v)]);
  }
  return {
    name: `gemm_${R}_${V}`,
    params: Array(params).fill('i32'),
    locals: [...Array(10).fill('i32'), ...Array(R * V + R + V).fill('v128')],
    body: [
      [...op.get(b), ...op.set(colB), ...op.get(c), ...op.set(colC), ...(g.bias ? [...op.get(bias), ...op.set(colBias)] : [])],
      countDown(ni, op.get(nBlocks), [
        [...op.get(a), ...op.set(rowA), ...op.get(colC), ...op.set(rowC)],
        countDown(mi, op.get(mBlocks), [
          ...start,
          [...op.get(rowA), ...op.set(pa), ...op.get(colB), ...op.set(pb)],
          countDown(ki, op.i32(g.k), step),
          ...store,
          addConst(rowA, R * g.lda * 4),
          addConst(rowC, R * g.ldc * 4),
        ]),
        addConst(colB, 16 * V),
        addConst(colC, 16 * V),
        addConst(colBias, 16 * V),
      ]),
    ],
  };
}

function functions(g: GemmLayout): () => FunctionDef[] {
  return () => {
    const defs: FunctionDef[] = [];
    for (let r = 1; r <= TILE_R; r++) for (let v = 1; v <= TILE_V; v++) defs.push(gemmFunction(r, v, g));
    return defs;
  };
}

/**
 * A's rows per kernel call, at most this many bytes of them, so that they stay in L1/L2 while B's
 * panels pass (measured: 64 KiB the best of 64, 128 and 512).
 */
const ROWS_PER_CALL_BYTES = 64 * 1024;

type GemmFn = (a: number, b: number, c: number, mBlocks: number, nBlocks: number, bias?: number) => void;

/**
 * C [m, n] = A [m, k] x B [k, n] (+ bias [n] where the layout has one) with this layout; n must
 * be a multiple of 4. Byte addresses.
 */
export type Gemm = (a: number, b: number, c: number, m: number, n: number, bias?: number) => void;

const bound = new WeakMap<WasmExports, Gemm>();

function bind(e: WasmExports | null, g: GemmLayout): Gemm | null {
  if (!e) return null;
  if (!(g.k >= 1)) throw new Error(`gemm: the reduction length must be at least 1, got ${g.k}`);
  let gemm = bound.get(e);
  if (gemm) return gemm;
  const fn = (r: number, v: number) => e[`gemm_${r}_${v}`] as unknown as GemmFn;
  gemm = (a, b, c, m, n, bias = 0) => {
    if (n % 4 !== 0) throw new Error('gemm: n must be a multiple of 4');
    // The generated loops run at least once: empty products never reach them.
    if (m === 0 || n === 0) return;
    const vectors = n / 4;
    const fullM = m - (m % TILE_R);
    const fullV = vectors - (vectors % TILE_V);
    // Body in whole tiles, then the last rows and the last vectors with narrower tiles.
    const columns = (rowA: number, rowC: number, r: number, blocks: number) => {
      if (fullV > 0) fn(r, TILE_V)(rowA, b, rowC, blocks, fullV / TILE_V, bias);
      if (fullV < vectors) fn(r, vectors - fullV)(rowA, b + fullV * 16, rowC + fullV * 16, blocks, 1, bias + fullV * 16);
    };
    // Row blocks whose slice of A stays in L2 while the column panels sweep over it.
    const rowsPerCall = Math.max(TILE_R, Math.floor(ROWS_PER_CALL_BYTES / (g.k * 4) / TILE_R) * TILE_R);
    for (let r0 = 0; r0 < fullM; r0 += rowsPerCall) {
      columns(a + r0 * g.lda * 4, c + r0 * g.ldc * 4, TILE_R, Math.min(rowsPerCall, fullM - r0) / TILE_R);
    }
    if (fullM < m) columns(a + fullM * g.lda * 4, c + fullM * g.ldc * 4, m - fullM, 1);
  };

  bound.set(e, gemm);
  return gemm;
}

const key = (g: GemmLayout) => `gemm ${g.k} ${g.lda} ${g.ldb} ${g.ldc}${g.accumulate ? ' +=' : ''}${g.bias ? ' +bias' : ''}`;

/** The product for this layout on the backend's heap, or null where generated SIMD cannot run. */
export function gemmOnBackend(backend: BackendWasm, g: GemmLayout): Gemm | null {
  return bind(exportsOnBackend(backend, key(g), functions(g)), g);
}

/** The same on a kernel-pool thread. */
export function gemmOnMemory(memory: WasmMemory, g: GemmLayout): Gemm | null {
  return bind(exportsOnMemory(memory, key(g), functions(g)), g);
}

/** Test hook: the module's bytes (encoder / opcode errors show in WebAssembly.validate). */
export function gemmModuleBytes(g: GemmLayout, shared = false): Uint8Array {
  return encodeModule(functions(g)(), { shared });
}

/**
 * A batch of products C_i = A_i x B_i (i < count, all with one layout and shape m x n), whose byte
 * addresses sit in three i32 tables on the heap: the kernel-pool task `tableGemm`, one range of
 * products per part.
 */
export interface TableGemm {
  layout: GemmLayout;
  aTable: number;
  bTable: number;
  cTable: number;
  count: number;
  m: number;
  n: number;
  /** Byte address of the bias row where the layout adds one. */
  bias?: number;
}

const tableArgs = (t: TableGemm) => [t.layout.k, t.layout.lda, t.layout.ldb, t.layout.ldc, t.aTable, t.bTable, t.cTable, t.count, t.m, t.n, t.layout.bias ? t.bias! : 0, t.layout.accumulate ? 1 : 0];

function tableGemmPart(gemm: Gemm, memory: WasmMemory, t: TableGemm): (part: number, parts: number) => void {
  return (part, parts) => {
    const heap = new Int32Array(memory.buffer);
    const end = Math.floor((t.count * (part + 1)) / parts);
    for (let i = Math.floor((t.count * part) / parts); i < end; i++) {
      gemm(heap[t.aTable / 4 + i], heap[t.bTable / 4 + i], heap[t.cTable / 4 + i], t.m, t.n, t.bias);
    }
  };
}

/** pool-tasks.ts' side of runTableGemm. */
export function tableGemmTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const [k, lda, ldb, ldc, aTable, bTable, cTable, count, m, n, bias, accumulate] = args;
  const layout = { k, lda, ldb, ldc, ...(bias ? { bias: true } : {}), ...(accumulate ? { accumulate: true } : {}) };
  const gemm = gemmOnMemory(memory, layout);
  if (!gemm) throw new Error('the GEMM kernel could not be instantiated on this thread');
  return tableGemmPart(gemm, memory, { layout, aTable, bTable, cTable, count, m, n, bias });
}

/** Runs the batch of products, split over the kernel pool's threads. False where our GEMM cannot run. */
export function runTableGemm(backend: BackendWasm, t: TableGemm): boolean {
  const gemm = gemmOnBackend(backend, t.layout);
  const memory = backendMemory(backend);
  if (!gemm || !memory) return false;
  // ~55 GFLOP/s on one thread (measured on Winograd-sized products).
  const micros = (2 * t.count * t.m * t.n * t.layout.k) / 55e3;
  const parts = poolParts(backend, micros, t.count);
  const run = tableGemmPart(gemm, memory, t);
  runParts(backend, { name: 'tableGemm', args: tableArgs(t) }, parts, (part) => run(part, parts));
  return true;
}

/** One product C [m, n] = A [m, k] x B [k, n] (byte addresses): the kernel-pool task `gemmRows`. */
export interface RowsGemm {
  layout: GemmLayout;
  a: number;
  b: number;
  c: number;
  m: number;
  n: number;
}

const rowsArgs = (t: RowsGemm) => [t.layout.k, t.layout.lda, t.layout.ldb, t.layout.ldc, t.a, t.b, t.c, t.m, t.n];

/** Part `part` of `parts`: a range of C's rows, in whole register tiles but for the last. */
function rowsGemmPart(gemm: Gemm, t: RowsGemm): (part: number, parts: number) => void {
  return (part, parts) => {
    const tiles = Math.ceil(t.m / TILE_R);
    const r0 = Math.floor((tiles * part) / parts) * TILE_R;
    const r1 = Math.min(t.m, Math.floor((tiles * (part + 1)) / parts) * TILE_R);
    if (r1 > r0) gemm(t.a + r0 * t.layout.lda * 4, t.b, t.c + r0 * t.layout.ldc * 4, r1 - r0, t.n);
  };
}

/** pool-tasks.ts' side of runGemm. */
export function rowsGemmTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const [k, lda, ldb, ldc, a, b, c, m, n] = args;
  const layout = { k, lda, ldb, ldc };
  const gemm = gemmOnMemory(memory, layout);
  if (!gemm) throw new Error('the GEMM kernel could not be instantiated on this thread');
  return rowsGemmPart(gemm, { layout, a, b, c, m, n });
}

/** One product, its rows split over the kernel pool's threads. False where our GEMM cannot run. */
export function runGemm(backend: BackendWasm, t: RowsGemm): boolean {
  const gemm = gemmOnBackend(backend, t.layout);
  if (!gemm) return false;
  const parts = poolParts(backend, (2 * t.m * t.n * t.layout.k) / 55e3, Math.ceil(t.m / TILE_R), 2);
  const run = rowsGemmPart(gemm, t);
  runParts(backend, { name: 'gemmRows', args: rowsArgs(t) }, parts, (part) => run(part, parts));
  return true;
}
