/**
 * The forward Winograd F(4x4, 3x3) convolution (winograd.ts) block by block of tiles, each block
 * through all three steps on one thread: its rows of the image copied with their zero border into
 * a strip, the input transform into V, the 36 products into M, the output transform into y.
 *
 * winograd.ts runs each step over a whole chunk of images (8 MB of V and M) before the next, one
 * pool task per step. Those buffers leave the 1 MB L2 between steps, and the transforms ran at
 * memory speed: 16x32x32x64 with 7 images per chunk, ~0.9 ms per input transform, against 0.2
 * with V in cache. Here a block's V and M (~32 tiles) stay in L2 from one step to the next, each
 * part reusing its own buffers, and there is no separate padding pass. It pays where a tile's
 * products are cheap against its transforms (few channels); with many channels the filter's
 * planes (36 x Ci x Co) would be read again for every block (see `blocksPay`).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, type WasmMemory } from './backend-module.js';
import { type Gemm, gemmOnBackend, gemmOnMemory } from './gemm.js';
import { poolParts, runParts } from './kernel-pool.js';
import { AT, BT, getTransform, getTransformOnMemory, type TransformFn, type TransformSpec } from './winograd-transforms.js';
import type { Activation } from './winograd-transforms.js';

const POSITIONS = 36;
const TILE = 4;
/** Input rows a tile reads. */
const SPAN = 6;
/** Tiles a block aims at: enough rows for the products, few enough for V and M to stay in L2. */
const BLOCK_TILES = 64;

/** Tests: `enabled = false` runs every forward convolution through winograd.ts's chunked form. */
export const winogradBlockOptions = { enabled: true };

/**
 * Whether a forward convolution of these channel counts runs block by block. Measured on ResNet-34
 * at 128 px, batch 16 (chunked -> blocks, ms per batch, 1 / 2 threads): its 64-channel layers
 * 49 -> 38 / 31 -> 22-24, 128-channel 46 -> 40 / 28 -> 23-25; 256 even (63 vs 65 / 36 vs 38);
 * 512 (16 tiles: 2 blocks, so 1 thread idle on 2) 31 vs 31 / 32 vs 18. (Blocks of 16 to 128
 * tiles were within noise of each other; 64 was the best on 1 thread.)
 */
export function blocksPay(ci: number, co: number): boolean {
  return winogradBlockOptions.enabled && ci <= 128 && co <= 128;
}

/** The task's numeric arguments, in order (byte addresses and sizes). */
const ARG_KEYS = ['x', 'n', 'h', 'w', 'ci', 'top', 'left', 'th', 'tw', 'y', 'hq', 'wq', 'co', 'uTable', 'bias', 'scratch', 'partBytes', 'rowsPerBlock'] as const;
type BlockArgs = Record<(typeof ARG_KEYS)[number], number>;

/**
 * Bytes between the starts of `bytes`-long planes. Planes a multiple of 4 KiB apart alias in L1
 * (the input transform writes and reads all 36 at once: 25x slower); 64 bytes more puts each in
 * its own cache set.
 */
export const planeStride = (bytes: number) => Math.ceil(bytes / 4096) * 4096 + 64;

/** Byte offsets in a part's scratch: the V and M tables, the strip, V's and M's planes. */
function partLayout(a: BlockArgs) {
  const wp = TILE * a.tw + SPAN - TILE;
  const tiles = a.rowsPerBlock * a.tw;
  const vStride = planeStride(tiles * a.ci * 4);
  const mStride = planeStride(tiles * a.co * 4);
  const tables = 0;
  const strip = 2 * POSITIONS * 4;
  const stripSlot = SPAN * wp * a.ci * 4;
  const v = Math.ceil((strip + a.rowsPerBlock * stripSlot) / 64) * 64;
  const m = v + POSITIONS * vStride;
  return { wp, tiles, vStride, mStride, tables, strip, stripSlot, v, m, bytes: m + POSITIONS * mStride };
}

function inputSpec(wp: number, ci: number): TransformSpec {
  return { L: BT, input: { kind: 'image', rowBytes: wp * ci * 4, pixBytes: ci * 4, tile: TILE }, output: { kind: 'table' } };
}

function outputSpec(wq: number, co: number, bias: boolean, act: Activation): TransformSpec {
  return { L: AT, input: { kind: 'table' }, output: { kind: 'image', rowBytes: wq * co * 4, pixBytes: co * 4, tile: TILE }, bias, act };
}

interface Kernels {
  input: TransformFn;
  output: TransformFn;
  gemm: Gemm;
}

/** Part `part` of `parts`: a contiguous range of blocks, through this part's own scratch. */
function blocksPart(k: Kernels, memory: WasmMemory, a: BlockArgs): (part: number, parts: number) => void {
  return (part, parts) => {
    const f32 = new Float32Array(memory.buffer);
    const i32 = new Int32Array(memory.buffer);
    const L = partLayout(a);
    const base = a.scratch + part * a.partBytes;
    const vTable = base + L.tables;
    const mTable = vTable + POSITIONS * 4;
    const vAt = Array.from({ length: POSITIONS }, (_, p) => base + L.v + p * L.vStride);
    const mAt = Array.from({ length: POSITIONS }, (_, p) => base + L.m + p * L.mStride);
    i32.set(vAt, vTable / 4);
    i32.set(mAt, mTable / 4);
    const uAt = Array.from(i32.subarray(a.uTable / 4, a.uTable / 4 + POSITIONS));
    const [pixIn, pixOut] = [a.ci * 4, a.co * 4];
    const rowFloats = L.wp * a.ci;
    const rows = a.n * a.th;
    const blocks = Math.ceil(rows / a.rowsPerBlock);
    const b1 = Math.floor((blocks * (part + 1)) / parts);
    for (let blk = Math.floor((blocks * part) / parts); blk < b1; blk++) {
      const r0 = blk * a.rowsPerBlock;
      const r1 = Math.min(rows, r0 + a.rowsPerBlock);
      for (let r = r0; r < r1; r++) {
        const slot = r - r0;
        const image = Math.floor(r / a.th);
        const stripAt = base + L.strip + slot * L.stripSlot;
        const x = { at: a.x / 4 + image * a.h * a.w * a.ci, h: a.h, w: a.w, c: a.ci };
        copyStrip(f32, x, TILE * (r - image * a.th) - a.top, SPAN, a.left, stripAt / 4, rowFloats);
        k.input(stripAt, 0, vTable, slot * a.tw * pixIn, a.tw, pixIn, 0);
      }
      const tiles = (r1 - r0) * a.tw;
      for (let p = 0; p < POSITIONS; p++) k.gemm(vAt[p], uAt[p], mAt[p], tiles, a.co);
      for (let r = r0; r < r1; r++) {
        const image = Math.floor(r / a.th);
        const ty = r - image * a.th;
        const dst = a.y + ((image * a.hq + TILE * ty) * a.wq) * pixOut;
        k.output(mTable, (r - r0) * a.tw * pixOut, dst, 0, a.tw, pixOut, a.bias);
      }
    }
  };
}

/** An NHWC image on the heap: its first float and its size. */
export interface ImageAt {
  at: number;
  h: number;
  w: number;
  c: number;
}

/**
 * Rows y0 .. y0 + count - 1 of `image` into the strip at float `at`, each `rowFloats` wide:
 * column j holding the image's column j - left, zero outside the image.
 */
export function copyStrip(f32: Float32Array, image: ImageAt, y0: number, count: number, left: number, at: number, rowFloats: number): void {
  const { c } = image;
  const x0 = Math.max(0, left);
  const x1 = Math.min(rowFloats / c, image.w + left);
  for (let i = 0; i < count; i++) {
    const o = at + i * rowFloats;
    const y = y0 + i;
    if (y < 0 || y >= image.h || x1 <= x0) {
      f32.fill(0, o, o + rowFloats);
      continue;
    }
    f32.fill(0, o, o + x0 * c);
    f32.fill(0, o + x1 * c, o + rowFloats);
    const from = image.at + (y * image.w + (x0 - left)) * c;
    f32.copyWithin(o + x0 * c, from, from + (x1 - x0) * c);
  }
}

function kernelsOnMemory(memory: WasmMemory, a: BlockArgs, specs: [string, string]): Kernels {
  const input = getTransformOnMemory(memory, specs[0]);
  const output = getTransformOnMemory(memory, specs[1]);
  const gemm = gemmOnMemory(memory, { k: a.ci, lda: a.ci, ldb: a.co, ldc: a.co });
  if (!input || !output || !gemm) throw new Error('the Winograd block kernels could not be instantiated on this thread');
  return { input, output, gemm };
}

/** pool-tasks.ts' side of winogradBlocks. */
export function winogradBlocksTask(memory: WasmMemory, args: readonly number[], text: string): (part: number, parts: number) => void {
  const a = Object.fromEntries(ARG_KEYS.map((key, i) => [key, args[i]])) as BlockArgs;
  return blocksPart(kernelsOnMemory(memory, a, JSON.parse(text) as [string, string]), memory, a);
}

/** What winogradBlocks needs besides the heap: the caller allocates `scratchBytes(...)` for it. */
export interface BlocksCall {
  /** x [n, h, w, ci] and y [n, hq, wq, co] (hq = 4 th, wq = 4 tw), byte addresses. */
  x: number;
  y: number;
  shape: { n: number; h: number; w: number; ci: number; co: number; th: number; tw: number };
  top: number;
  left: number;
  /** The i32 table of U's 36 plane addresses. */
  uTable: number;
  /** Byte address of the bias, 0 for none. */
  bias: number;
  act: Activation;
}

/** Parts and per-part scratch bytes for a call of this shape. */
export function blocksPlan(backend: BackendWasm, shape: BlocksCall['shape']): { parts: number; partBytes: number; rowsPerBlock: number } {
  const rowsPerBlock = Math.max(1, Math.min(shape.n * shape.th, Math.floor(BLOCK_TILES / shape.tw)));
  const a = { ...shape, rowsPerBlock } as unknown as BlockArgs;
  const partBytes = Math.ceil(partLayout(a).bytes / 64) * 64;
  const blocks = Math.ceil((shape.n * shape.th) / rowsPerBlock);
  // ~55 GFLOP/s of products on one thread.
  const micros = (2 * POSITIONS * shape.n * shape.th * shape.tw * shape.ci * shape.co) / 55e3;
  return { parts: poolParts(backend, micros, blocks, 2), partBytes, rowsPerBlock };
}

/** Runs the convolution into y, split over the kernel pool's threads; `scratch` holds parts x partBytes. */
export function winogradBlocks(backend: BackendWasm, call: BlocksCall, plan: ReturnType<typeof blocksPlan>, scratch: number): void {
  const { shape } = call;
  const wp = TILE * shape.tw + SPAN - TILE;
  const wq = TILE * shape.tw;
  const specs = [inputSpec(wp, shape.ci), outputSpec(wq, shape.co, call.bias !== 0, call.act)];
  const texts = specs.map((spec) => JSON.stringify(spec)) as [string, string];
  const input = getTransform(backend, specs[0], texts[0]);
  const output = getTransform(backend, specs[1], texts[1]);
  const gemm = gemmOnBackend(backend, { k: shape.ci, lda: shape.ci, ldb: shape.co, ldc: shape.co });
  const memory = backendMemory(backend);
  if (!input || !output || !gemm || !memory) throw new Error('wasm-kernels: the Winograd blocks need wasm SIMD');
  const a: BlockArgs = {
    x: call.x,
    ...shape,
    top: call.top,
    left: call.left,
    y: call.y,
    hq: TILE * shape.th,
    wq,
    uTable: call.uTable,
    bias: call.bias,
    scratch,
    partBytes: plan.partBytes,
    rowsPerBlock: plan.rowsPerBlock,
  };
  const run = blocksPart({ input, output, gemm }, memory, a);
  runParts(backend, { name: 'winogradBlocks', args: ARG_KEYS.map((key) => a[key]), text: JSON.stringify(texts) }, plan.parts, (part) => run(part, plan.parts));
}
