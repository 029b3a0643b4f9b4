/**
 * SIMD code for Winograd F(4x4, 3x3), F(4x4, 2x2), F(2x2, 2x2) and F(4x4, 4x4): every transform
 * of the algorithm is `out = L d L^T` for a constant matrix L (r x k) applied to a k x k grid of
 * channel vectors, so one generator writes them all. The matrix is baked into the code (zeros
 * skipped, +-1 as add/sub); the grid is read from / written to either
 * - an image: grid element (i, j) at byte offset i*rowBytes + j*pixBytes from the tile's corner
 *   (constants, so they become load/store immediates), tiles `tile` pixels apart; or
 * - a table: k*k (or r*r) separate buffers, whose addresses sit in an i32 table in the heap,
 *   element (tile, channel) of each at tile*chanBytes + channel.
 * 4 channels per instruction; channel runs must be multiples of 4 floats.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, exportsOnBackend, exportsOnMemory, type WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { encodeModule, forLoop, type FunctionDef, op } from './wasm-asm.js';

/** F(4,3) matrices (Lavin & Gray 2015): y = A^T [(G g G^T) * (B^T d B)] A. */
export const BT: readonly number[][] = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
export const G: readonly number[][] = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];
export const AT: readonly number[][] = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];

/**
 * F(m, r) on n = m + r - 1 points p_j (the last one infinity) is built like F(4,3) above:
 * A^T[i][j] = p_j^i, G[j][k] = p_j^k / prod_{l != j} (p_j - p_l) over the finite points, the
 * point at infinity's column of A^T and row of G taking the highest coefficient only, and
 * B^T = the inverse of the n-point evaluation matrix, transposed, rows scaled by G's divisors.
 * (That construction reproduces F(4,3)'s matrices exactly; test/wasm-kernels checks each set on
 * convolutions against the cpu backend.)
 *
 * F(4,2) on 0, 1, -1, 2 and infinity: 4 outputs of a 2-tap correlation from 5 inputs. G's last row
 * takes only the second tap, so a filter whose second tap is zero has a zero there
 * (strided-winograd.ts skips those products).
 */
export const BT5: readonly number[][] = [
  [2, -1, -2, 1, 0],
  [0, -2, -1, 1, 0],
  [0, 2, -3, 1, 0],
  [0, -1, 0, 1, 0],
  [0, 2, -1, -2, 1],
];
export const G2: readonly number[][] = [
  [1 / 2, 0],
  [-1 / 2, -1 / 2],
  [-1 / 6, 1 / 6],
  [1 / 6, 1 / 3],
  [0, 1],
];
export const AT4X5: readonly number[][] = [
  [1, 1, 1, 1, 0],
  [0, 1, -1, 2, 0],
  [0, 1, 1, 4, 0],
  [0, 1, -1, 8, 1],
];

/**
 * F(2,2) on 0, 1 and infinity: 2 outputs of a 2-tap correlation from 3 inputs, every coefficient
 * 0 or +-1 (no rounding in the transforms). As with F(4,2), G's last row takes only the second tap.
 */
export const BT3: readonly number[][] = [
  [1, -1, 0],
  [0, 1, 0],
  [0, -1, 1],
];
export const G2X2: readonly number[][] = [
  [1, 0],
  [1, 1],
  [0, 1],
];
export const AT2X3: readonly number[][] = [
  [1, 1, 0],
  [0, 1, 1],
];

/**
 * F(4,4) on the points 0, +-1, +-2, -1/2 and infinity (the rounding of 0, +-1, +-2, +1/2 was ~40%
 * larger in a float32 simulation): 4 outputs of a 4-tap correlation from 7 inputs. As with F(4,2),
 * G's last row takes only the last tap.
 */
export const BT7: readonly number[][] = [
  [2, 4, -5 / 2, -5, 1 / 2, 1, 0],
  [0, -2, -6, -7 / 2, 3 / 2, 1, 0],
  [0, 2, 2, -9 / 2, -1 / 2, 1, 0],
  [0, -1, -5 / 2, 0, 5 / 2, 1, 0],
  [0, 1, 3 / 2, -2, -3 / 2, 1, 0],
  [0, 4, 0, -5, 0, 1, 0],
  [0, 2, 4, -5 / 2, -5, 1 / 2, 1],
];
export const G7X4: readonly number[][] = [
  [1 / 2, 0, 0, 0],
  [-1 / 9, -1 / 9, -1 / 9, -1 / 9],
  [1 / 3, -1 / 3, 1 / 3, -1 / 3],
  [1 / 60, 1 / 30, 1 / 15, 2 / 15],
  [-1 / 36, 1 / 18, -1 / 9, 2 / 9],
  [-32 / 45, 16 / 45, -8 / 45, 4 / 45],
  [0, 0, 0, 1],
];
export const AT4X7: readonly number[][] = [
  [1, 1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, -1 / 2, 0],
  [0, 1, 1, 4, 4, 1 / 4, 0],
  [0, 1, -1, 8, -8, -1 / 8, 1],
];

export const transposeMatrix = (m: readonly number[][]): number[][] => m[0].map((_, j) => m.map((row) => row[j]));

/**
 * `tile`: pixels from one tile to the next along a row of the image (the output tile size).
 * `tileBytes`: bytes from one tile's row of a table buffer to the next, where a transform fills
 * only some of each row's channels (strided-winograd.ts: one phase image's); default chanBytes.
 */
export type Side = { kind: 'image'; rowBytes: number; pixBytes: number; tile: number } | { kind: 'table'; tileBytes?: number };
export type Activation = 'linear' | 'relu' | 'relu6';

/**
 * One transform. With r < k (A^T, G^T: fewer outputs than inputs) the input must be a table and
 * is overwritten (it is scratch: the products M, the filter gradient's dU); with r >= k the
 * output must be a table.
 */
export interface TransformSpec {
  /** r x k. */
  L: readonly number[][];
  input: Side;
  output: Side;
  /** Adds bias[channel] (then the activation) to every output: the forward output transform. */
  bias?: boolean;
  /**
   * Adds, before the activation, the value `residual` bytes past each output element (an image laid
   * out as the output): a ResNet block's shortcut, so that its sum and relu need no passes of their own.
   */
  residual?: boolean;
  act?: Activation;
}

/**
 * (src, srcOff, dst, dstOff, tiles, chanBytes, bias, residual): byte addresses / sizes; `residual`
 * is the residual image's offset from the output image in bytes (any sign), read only with
 * `spec.residual`.
 */
export type TransformFn = (src: number, srcOff: number, dst: number, dstOff: number, tiles: number, chanBytes: number, bias: number, residual: number) => void;

/** Code for sum_i coef[i] * locals[i] (a v128 on the stack). */
function linear(coefs: readonly number[], locals: number[]): number[] {
  const terms = coefs.map((c, i) => ({ c, l: locals[i] })).filter((t) => t.c !== 0);
  if (terms.length === 0) return op.f32x4Const(0);
  // Start from a +1 term when there is one (no negation or multiply needed).
  terms.sort((a, b) => Number(b.c === 1) - Number(a.c === 1));
  const code: number[] = [];
  terms.forEach((t, n) => {
    const abs = Math.abs(t.c);
    if (n === 0) {
      code.push(...op.get(t.l));
      if (t.c === -1) code.push(...op.f32x4Neg);
      else if (t.c !== 1) code.push(...op.f32x4Const(t.c), ...op.f32x4Mul);
      return;
    }
    code.push(...op.get(t.l));
    if (abs !== 1) code.push(...op.f32x4Const(abs), ...op.f32x4Mul);
    code.push(...(t.c > 0 ? op.f32x4Add : op.f32x4Sub));
  });
  return code;
}

/**
 * The generated transform. out = L d L^T is done in two passes of one matrix each, through the
 * memory of the table side as scratch, so that only one row or column of the grid is live at a
 * time: with all 36 values of d and 36 intermediates in locals, V8 spilled most of them (an input
 * transform, 16x32x32x64: 0.73 -> 0.54 ms on one thread).
 * - r >= k, table output: tmp = L d column by column into the output slots (a, j), then each row
 *   of tmp times L^T, in place;
 * - r < k, table input: d L^T row by row into the input slots (i, b) (the input is overwritten),
 *   then L times each column into the output.
 */
function transformFunction(spec: TransformSpec): FunctionDef {
  const r = spec.L.length;
  const k = spec.L[0].length;
  const columnsFirst = r >= k && spec.output.kind === 'table';
  if (!columnsFirst && !(r < k && spec.input.kind === 'table')) {
    throw new Error(`winograd transform: no scratch for L ${r}x${k} from ${spec.input.kind} to ${spec.output.kind}`);
  }
  if (spec.residual && spec.output.kind !== 'image') throw new Error('winograd transform: a residual needs an image output');
  const [src, srcOff, dst, dstOff, tiles, chanBytes, bias, residual] = [0, 1, 2, 3, 4, 5, 6, 7];
  let next = 8;
  const i32 = (n: number) => Array.from({ length: n }, () => next++);
  const [t, c, sp, dp, qi, qo] = i32(6);
  const inBase = spec.input.kind === 'table' ? i32(k * k) : [];
  const outBase = spec.output.kind === 'table' ? i32(r * r) : [];
  const i32Count = next - 8;
  const v128 = (n: number) => Array.from({ length: n }, () => next++);
  const [biasV] = v128(1);
  const line = v128(k);
  const body: number[][] = [];
  inBase.forEach((l, i) => body.push([...op.get(src), ...op.i32Load(4 * i), ...op.set(l)]));
  outBase.forEach((l, i) => body.push([...op.get(dst), ...op.i32Load(4 * i), ...op.set(l)]));
  body.push(spec.input.kind === 'image' ? [...op.get(src), ...op.get(srcOff), ...op.i32Add, ...op.set(sp)] : [...op.get(srcOff), ...op.set(sp)]);
  body.push(spec.output.kind === 'image' ? [...op.get(dst), ...op.get(dstOff), ...op.i32Add, ...op.set(dp)] : [...op.get(dstOff), ...op.set(dp)]);

  const { input, output } = spec;
  // Address of grid element (i, j) of the input / (a, b) of the output, for the current channel.
  const inAt = (i: number, j: number) =>
    input.kind === 'image' ? [...op.get(sp), ...op.get(c), ...op.i32Add] : [...op.get(inBase[i * k + j]), ...op.get(qi), ...op.i32Add];
  const inOffset = (i: number, j: number) => (input.kind === 'image' ? i * input.rowBytes + j * input.pixBytes : 0);
  const outAt = (a: number, b: number) =>
    output.kind === 'image' ? [...op.get(dp), ...op.get(c), ...op.i32Add] : [...op.get(outBase[a * r + b]), ...op.get(qo), ...op.i32Add];
  const outOffset = (a: number, b: number) => (output.kind === 'image' ? a * output.rowBytes + b * output.pixBytes : 0);
  const load = (at: number[], offset: number, into: number) => [...at, ...op.v128Load(offset), ...op.set(into)];
  /** Stores sum_x L[row][x] * line[x] (+ bias, activation when `last`) at `at`. */
  const store = (at: number[], offset: number, row: readonly number[], last: boolean) => {
    const value = linear(row, line);
    if (last && spec.bias) value.push(...op.get(biasV), ...op.f32x4Add);
    if (last && spec.residual) value.push(...at, ...op.get(residual), ...op.i32Add, ...op.v128Load(offset), ...op.f32x4Add);
    if (last && (spec.act === 'relu' || spec.act === 'relu6')) value.push(...op.f32x4Const(0), ...op.f32x4Max);
    if (last && spec.act === 'relu6') value.push(...op.f32x4Const(6), ...op.f32x4Min);
    return [...at, ...value, ...op.v128Store(offset)];
  };

  const inner: number[][] = [];
  if (spec.bias) inner.push([...op.get(bias), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...op.set(biasV)]);
  if (input.kind === 'table') inner.push([...op.get(sp), ...op.get(c), ...op.i32Add, ...op.set(qi)]);
  if (output.kind === 'table') inner.push([...op.get(dp), ...op.get(c), ...op.i32Add, ...op.set(qo)]);
  if (columnsFirst) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < k; i++) inner.push(load(inAt(i, j), inOffset(i, j), line[i]));
      for (let a = 0; a < r; a++) inner.push(store(outAt(a, j), 0, spec.L[a], false));
    }
    for (let a = 0; a < r; a++) {
      for (let j = 0; j < k; j++) inner.push(load(outAt(a, j), 0, line[j]));
      for (let b = 0; b < r; b++) inner.push(store(outAt(a, b), 0, spec.L[b], true));
    }
  } else {
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) inner.push(load(inAt(i, j), 0, line[j]));
      for (let b = 0; b < r; b++) inner.push(store(inAt(i, b), 0, spec.L[b], false));
    }
    for (let b = 0; b < r; b++) {
      for (let i = 0; i < k; i++) inner.push(load(inAt(i, b), 0, line[i]));
      for (let a = 0; a < r; a++) inner.push(store(outAt(a, b), outOffset(a, b), spec.L[a], true));
    }
  }
  const step = (side: Side) => (side.kind === 'image' ? op.i32(side.tile * side.pixBytes) : side.tileBytes ? op.i32(side.tileBytes) : op.get(chanBytes));
  body.push(
    forLoop(t, tiles, 1, [
      forLoop(c, chanBytes, 16, inner),
      [...op.get(sp), ...step(spec.input), ...op.i32Add, ...op.set(sp)],
      [...op.get(dp), ...step(spec.output), ...op.i32Add, ...op.set(dp)],
    ]),
  );
  return {
    name: 'transform',
    params: Array(8).fill('i32'),
    locals: [...Array(i32Count).fill('i32'), ...Array(next - 8 - i32Count).fill('v128')],
    body,
  };
}

/**
 * `count` matrices [rows, cols] -> [cols, rows], cols a multiple of 4: one vector load of 4
 * columns, 4 lane stores into 4 output rows that advance together (all streams sequential; the
 * stock Transpose kernel runs 512x512 blocks at ~4 ns/element). (src, dst, rows, cols, count)
 */
function transposeFunction(): FunctionDef {
  const [src, dst, rows, cols, count] = [0, 1, 2, 3, 4];
  const [m, j, i, ip, o0, o1, o2, o3, rowBytes, v] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
  const outs = [o0, o1, o2, o3];
  const add = (local: number, amount: number[]) => [...op.get(local), ...amount, ...op.i32Add, ...op.set(local)];
  return {
    name: 'transpose',
    params: Array(5).fill('i32'),
    locals: [...Array(9).fill('i32'), 'v128'],
    body: [
      [...op.get(rows), ...op.i32(4), ...op.i32Mul, ...op.set(rowBytes)],
      forLoop(m, count, 1, [
        forLoop(j, cols, 4, [
          // ip = src + 4j; o_l = dst + (j + l) * rows * 4
          [...op.get(src), ...op.get(j), ...op.i32(4), ...op.i32Mul, ...op.i32Add, ...op.set(ip)],
          ...outs.map((o, l) => [...op.get(dst), ...op.get(j), ...op.i32(l), ...op.i32Add, ...op.get(rowBytes), ...op.i32Mul, ...op.i32Add, ...op.set(o)]),
          forLoop(i, rows, 1, [
            [...op.get(ip), ...op.v128Load(), ...op.set(v)],
            ...outs.map((o, l) => [...op.get(o), ...op.get(v), ...op.f32x4ExtractLane(l), ...op.f32Store()]),
            add(ip, [...op.get(cols), ...op.i32(4), ...op.i32Mul]),
            ...outs.map((o) => add(o, op.i32(4))),
          ]),
        ]),
        add(src, [...op.get(rowBytes), ...op.get(cols), ...op.i32Mul]),
        add(dst, [...op.get(rowBytes), ...op.get(cols), ...op.i32Mul]),
      ]),
    ],
  };
}

export type TransposeFn = (src: number, dst: number, rows: number, cols: number, count: number) => void;

// --- instantiation on the backend's memory (as simd-kernels.ts) ------------------------------

/** Whether SIMD transforms can run on this backend at all. */
export function transformsAvailable(backend: BackendWasm): boolean {
  return getTransform(backend, { L: [[1]], input: { kind: 'table' }, output: { kind: 'table' } }) !== null;
}

export function getTransform(backend: BackendWasm, spec: TransformSpec, specJson = JSON.stringify(spec)): TransformFn | null {
  return instantiate(backend, specJson, () => transformFunction(spec));
}

export function getTranspose(backend: BackendWasm): TransposeFn | null {
  return instantiate(backend, 'transpose', transposeFunction);
}

/** One generated function per key, instantiated on the backend's heap (see backend-module.ts). */
function instantiate<F>(backend: BackendWasm, key: string, make: () => FunctionDef): F | null {
  const e = exportsOnBackend(backend, `winograd ${key}`, () => [{ ...make(), name: 'main' }]);
  return e ? (e.main as unknown as F) : null;
}

/**
 * A transform on a kernel-pool thread (the same module as getTransform's), by its spec's JSON:
 * parsed only to generate the module, as a worker spent ~20 µs per task parsing and
 * re-serialising it.
 */
export function getTransformOnMemory(memory: WasmMemory, specJson: string): TransformFn | null {
  const e = exportsOnMemory(memory, `winograd ${specJson}`, () => [{ ...transformFunction(JSON.parse(specJson) as TransformSpec), name: 'main' }]);
  return e ? (e.main as unknown as TransformFn) : null;
}

/**
 * A transform over rows of tiles: for image b < n and tile row ty < th, one call
 * fn(src, b*srcImage + ty*srcRow, dst, b*dstImage + ty*dstRow, tw, chanBytes, bias, residual).
 */
export interface TransformRows {
  src: number;
  srcImage: number;
  srcRow: number;
  dst: number;
  dstImage: number;
  dstRow: number;
  n: number;
  th: number;
  tw: number;
  chanBytes: number;
  bias: number;
  /** See TransformFn; 0 where the spec has none. */
  residual?: number;
}
const ROW_KEYS = ['src', 'srcImage', 'srcRow', 'dst', 'dstImage', 'dstRow', 'n', 'th', 'tw', 'chanBytes', 'bias', 'residual'] as const;

/**
 * Part `part` of `parts`: a range of the rows, or, for a single tile (the weight transforms: one
 * call over every filter channel), a range of its channels, 16-byte aligned.
 */
function transformRowsPart(fn: TransformFn, w: TransformRows): (part: number, parts: number) => void {
  const rows = w.n * w.th;
  return (part, parts) => {
    if (rows === 1 && w.tw === 1) {
      const vectors = w.chanBytes / 16;
      const c0 = 16 * Math.floor((vectors * part) / parts);
      const c1 = 16 * Math.floor((vectors * (part + 1)) / parts);
      if (c1 > c0) fn(w.src, c0, w.dst, c0, 1, c1 - c0, w.bias, 0);
      return;
    }
    const r1 = Math.floor((rows * (part + 1)) / parts);
    for (let r = Math.floor((rows * part) / parts); r < r1; r++) {
      const b = Math.floor(r / w.th);
      const ty = r - b * w.th;
      fn(w.src, b * w.srcImage + ty * w.srcRow, w.dst, b * w.dstImage + ty * w.dstRow, w.tw, w.chanBytes, w.bias, w.residual ?? 0);
    }
  };
}

/** A transpose on a kernel-pool thread (the same module as getTranspose's). */
export function getTransposeOnMemory(memory: WasmMemory): TransposeFn | null {
  const e = exportsOnMemory(memory, 'winograd transpose', () => [{ ...transposeFunction(), name: 'main' }]);
  return e ? (e.main as unknown as TransposeFn) : null;
}

/** `count` matrices [rows, cols] -> [cols, rows] whose byte addresses sit in two i32 tables. */
export interface TableTranspose {
  srcTable: number;
  dstTable: number;
  count: number;
  rows: number;
  cols: number;
}
const TRANSPOSE_KEYS = ['srcTable', 'dstTable', 'count', 'rows', 'cols'] as const;

function tableTransposePart(fn: TransposeFn, memory: WasmMemory, t: TableTranspose): (part: number, parts: number) => void {
  return (part, parts) => {
    const heap = new Int32Array(memory.buffer);
    const end = Math.floor((t.count * (part + 1)) / parts);
    for (let i = Math.floor((t.count * part) / parts); i < end; i++) fn(heap[t.srcTable / 4 + i], heap[t.dstTable / 4 + i], t.rows, t.cols, 1);
  };
}

/** pool-tasks.ts' side of runTableTranspose. */
export function tableTransposeTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const fn = getTransposeOnMemory(memory);
  if (!fn) throw new Error('the transpose kernel could not be instantiated on this thread');
  return tableTransposePart(fn, memory, Object.fromEntries(TRANSPOSE_KEYS.map((k, i) => [k, args[i]])) as unknown as TableTranspose);
}

/** The transposes, split over the kernel pool's threads. cols must be a multiple of 4. */
export function runTableTranspose(backend: BackendWasm, t: TableTranspose): void {
  const fn = getTranspose(backend);
  const memory = backendMemory(backend);
  if (!fn || !memory) throw new Error('wasm-kernels: the SIMD transpose needs wasm SIMD');
  // ~1 ns per element on one thread.
  const parts = poolParts(backend, (t.count * t.rows * t.cols) / 1000, t.count);
  const run = tableTransposePart(fn, memory, t);
  runParts(backend, { name: 'tableTranspose', args: TRANSPOSE_KEYS.map((k) => t[k]) }, parts, (part) => run(part, parts));
}

/** pool-tasks.ts' side of runTransformRows. */
export function transformRowsTask(memory: WasmMemory, args: readonly number[], specJson: string): (part: number, parts: number) => void {
  const fn = getTransformOnMemory(memory, specJson);
  if (!fn) throw new Error('Winograd transform unavailable on a kernel-pool thread');
  return transformRowsPart(fn, Object.fromEntries(ROW_KEYS.map((k, i) => [k, args[i]])) as unknown as TransformRows);
}

/**
 * Runs a transform over its rows, split over the kernel pool's threads. Work is split in a few
 * parts per thread so that a thread that starts late does less.
 */
export function runTransformRows(backend: BackendWasm, spec: TransformSpec, rows: TransformRows): void {
  const specJson = JSON.stringify(spec);
  const fn = getTransform(backend, spec, specJson);
  if (!fn) throw new Error('wasm-kernels: Winograd transforms need wasm SIMD');
  const single = rows.n * rows.th === 1 && rows.tw === 1;
  // ~3.6 GB/s written on one thread (measured: a 56x56x64 batch-16 input transform, 29 MB, 8 ms).
  const bytesWritten = rows.n * rows.th * rows.tw * rows.chanBytes * spec.L.length ** 2;
  const parts = poolParts(backend, bytesWritten / 3600, single ? rows.chanBytes / 16 : rows.n * rows.th, 4);
  const run = transformRowsPart(fn, rows);
  runParts(backend, { name: 'transformRows', args: ROW_KEYS.map((k) => rows[k] ?? 0), text: specJson }, parts, (part) => run(part, parts));
}

export function transformModuleBytes(spec: TransformSpec, shared = false): Uint8Array {
  return encodeModule([transformFunction(spec)], { shared });
}
