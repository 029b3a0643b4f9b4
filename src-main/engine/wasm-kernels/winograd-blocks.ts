/**
 * Forward Winograd convolutions (winograd.ts' stride 1, strided-winograd.ts' stride 2) block by
 * block of tiles, each block through every step on one thread: its rows of the image copied with
 * their zero border into a strip, the input transforms into V, the products into M, the output
 * transform into y.
 *
 * The chunked forms run each step over a whole chunk of images (8 MB of V and M) before the next,
 * one pool task per step. Those buffers leave the 1 MB L2 between steps, and the transforms ran
 * at memory speed: 16x32x32x64 with 7 images per chunk, ~0.9 ms per input transform, against 0.2
 * with V in cache. Here a block's V and M (~64 tiles) stay in L2 from one step to the next, each
 * part reusing its own buffers, and the padding costs no pass of its own. It pays where a tile's
 * products are cheap against its transforms (few channels); with many channels the filter's planes
 * would be read again for every block (see `blocksPay`).
 *
 * What differs between the forms (`BlockForm`): how many input rows a row of tiles reads, the
 * input transforms that read its strip (one in place for stride 1; one per phase image, read in
 * place, for stride 2; or one over the phases copied side by side), and the products, grouped by
 * layout (strided-winograd.ts skips the zero products of its odd phases).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, type WasmMemory } from './backend-module.js';
import { type Gemm, type GemmLayout, gemmOnMemory } from './gemm.js';
import { type BlockPool, blockPoolBytes, blockPoolStats, PooledRows, type PoolGeometry, poolPartBoundaries } from './block-max-pool.js';
import { poolParts, runParts } from './kernel-pool.js';
import { simdKernelsOnMemory, type SimdKernels } from './simd-kernels.js';
import { getTransformOnMemory, type TransformFn } from './winograd-transforms.js';

/** Tiles a block aims at: enough rows for the products, few enough for V and M to stay in L2. */
const BLOCK_TILES = 64;

/** Tests: `enabled = false` runs every forward convolution through the chunked forms. */
export const winogradBlockOptions = { enabled: true };

/**
 * Whether a forward convolution with these input and output channel counts runs block by block
 * (stride 2: see strided-winograd.ts). Measured for stride 1 on ResNet-34 at 128 px, batch 16
 * (chunked -> blocks, ms per batch, 1 / 2 threads): its 64-channel layers 49 -> 38 / 31 -> 22-24, 128-channel
 * 46 -> 40 / 28 -> 23-25; 256 even (63 vs 65 / 36 vs 38); 512 (16 tiles: 2 blocks, so 1 thread idle
 * on 2) 31 vs 31 / 32 vs 18. (Blocks of 16 to 128 tiles were within noise of each other; 64 was
 * the best on 1 thread.)
 */
export function blocksPay(ci: number, co: number): boolean {
  return winogradBlockOptions.enabled && ci <= 128 && co <= 128;
}

/**
 * Bytes between the starts of `bytes`-long planes. Planes a multiple of 4 KiB apart alias in L1
 * (the input transform writes and reads all 36 at once: 25x slower); 64 bytes more puts each in
 * its own cache set.
 */
export const planeStride = (bytes: number) => Math.ceil(bytes / 4096) * 4096 + 64;

/** One input transform of a row of tiles. */
export interface BlockInput {
  /** JSON of its TransformSpec (workers key their modules by it). */
  spec: string;
  /** Where it reads: bytes into the strip (or the side-by-side copy) of the row. */
  src: number;
  /** Where it writes: bytes into each tile's row of V, and how many. */
  at: number;
  chanBytes: number;
}

/** One group of products M[p] = V[p] x U[p], each operand starting at an offset into its plane. */
export interface BlockProducts {
  layout: GemmLayout;
  positions: number[];
  aOffset: number;
  bOffset: number;
}

/** How a form turns a row of tiles into V, M and outputs (see the top of this file). */
export interface BlockForm {
  /** Outputs per tile side, and transform-domain positions (the input tile's side squared). */
  tile: number;
  positions: number;
  /** Floats of V per tile. */
  depth: number;
  /** Input rows a row of tiles reads, and input rows from one row of tiles to the next. */
  span: number;
  rowStep: number;
  /** The strip's width in input pixels (left edge at x's column -left). */
  width: number;
  /**
   * Stride-2 phases copied side by side before the transform (RGB): the copy's rows (phase rows
   * of `4 * c` channels, width / 2 pixels each). 0: the transforms read the strip in place.
   */
  sideBySideRows: number;
  inputs: BlockInput[];
  products: BlockProducts[];
  /** JSON of the output transform's TransformSpec. */
  output: string;
}

/** The task's numeric arguments, in order (byte addresses and sizes). */
const ARG_KEYS = ['x', 'n', 'h', 'w', 'ci', 'top', 'left', 'th', 'tw', 'y', 'hq', 'wq', 'co', 'uTable', 'bias', 'residual', 'scratch', 'partBytes', 'rowsPerBlock', 'pooled', 'outH', 'outW', 'poolH', 'poolW', 'poolLeft'] as const;
type BlockArgs = Record<(typeof ARG_KEYS)[number], number>;

/** Byte offsets in a part's scratch: the V and M tables, the strips, V's and M's planes, the pooling's rows. */
function partLayout(form: BlockForm, a: Pick<BlockArgs, 'ci' | 'co' | 'tw' | 'rowsPerBlock' | 'pooled'>) {
  const tiles = a.rowsPerBlock * a.tw;
  const vStride = planeStride(tiles * form.depth * 4);
  const mStride = planeStride(tiles * a.co * 4);
  const strip = 2 * form.positions * 4;
  const stripSlot = form.span * form.width * a.ci * 4;
  // The side-by-side copy: phase rows of width / 2 pixels of 4C channels.
  const phaseSlot = form.sideBySideRows * (form.width / 2) * 4 * a.ci * 4;
  const phases = strip + a.rowsPerBlock * stripSlot;
  const v = Math.ceil((phases + a.rowsPerBlock * phaseSlot) / 64) * 64;
  const m = v + form.positions * vStride;
  const pool = m + form.positions * mStride;
  const bytes = pool + (a.pooled ? blockPoolBytes(form.tile * a.tw, a.co * 4) : 0);
  return { tiles, vStride, mStride, strip, stripSlot, phases, phaseSlot, v, m, pool, bytes };
}

/** The stride-2 phases in channel order, (row, column) offsets (see strided-winograd.ts). */
export const PHASES: readonly (readonly [number, number])[] = [
  [0, 1],
  [0, 0],
  [1, 0],
  [1, 1],
];

interface Kernels {
  inputs: TransformFn[];
  output: TransformFn;
  gemms: Gemm[];
  simd: SimdKernels;
}

/** Part `part` of `parts`: a contiguous range of blocks, through this part's own scratch. */
function blocksPart(form: BlockForm, k: Kernels, memory: WasmMemory, a: BlockArgs): (part: number, parts: number) => void {
  return (part, parts) => {
    const i32 = new Int32Array(memory.buffer);
    const L = partLayout(form, a);
    const base = a.scratch + part * a.partBytes;
    const vTable = base;
    const mTable = base + form.positions * 4;
    const vAt = Array.from({ length: form.positions }, (_, p) => base + L.v + p * L.vStride);
    const mAt = Array.from({ length: form.positions }, (_, p) => base + L.m + p * L.mStride);
    i32.set(vAt, vTable / 4);
    i32.set(mAt, mTable / 4);
    const uAt = Array.from(i32.subarray(a.uTable / 4, a.uTable / 4 + form.positions));
    const pixOut = a.co * 4;
    const rowFloats = form.width * a.ci;
    const pool = a.pooled ? new PooledRows(k.simd, poolGeometry(a), base + L.pool) : undefined;
    for (const [r0, r1] of partBlocks(a.n * a.th, a.rowsPerBlock, part, parts)) {
      for (let r = r0; r < r1; r++) {
        const slot = r - r0;
        const image = Math.floor(r / a.th);
        const stripAt = base + L.strip + slot * L.stripSlot;
        copyStrip(k.simd, imageAt(a.x, image, a), form.rowStep * (r - image * a.th) - a.top, form.span, a.left, stripAt, rowFloats);
        let src = stripAt;
        if (form.sideBySideRows > 0) {
          src = base + L.phases + slot * L.phaseSlot;
          phasesSideBySide(k.simd, stripAt, src, form.sideBySideRows, form.width, a.ci);
        }
        const tileRow = slot * a.tw * form.depth * 4;
        form.inputs.forEach((input, i) => k.inputs[i](src + input.src, 0, vTable, tileRow + input.at, a.tw, input.chanBytes, 0, 0));
      }
      const tiles = (r1 - r0) * a.tw;
      form.products.forEach((group, g) => {
        for (const p of group.positions) k.gemms[g](vAt[p] + group.aOffset, uAt[p] + group.bOffset, mAt[p], tiles, a.co);
      });
      for (let r = r0; r < r1; r++) {
        const transform = (dst: number) => k.output(mTable, (r - r0) * a.tw * pixOut, dst, 0, a.tw, pixOut, a.bias, a.residual);
        if (pool) {
          pool.add(r, transform);
          continue;
        }
        const image = Math.floor(r / a.th);
        transform(a.y + (image * a.hq + form.tile * (r - image * a.th)) * a.wq * pixOut);
      }
    }
    pool?.finish();
  };
}

/** The pooling's geometry in a task's arguments. */
const poolGeometry = (a: BlockArgs): PoolGeometry => ({
  y: a.pooled,
  outH: a.outH,
  outW: a.outW,
  poolH: a.poolH,
  poolW: a.poolW,
  left: a.poolLeft,
  th: a.th,
  wq: a.wq,
  pixBytes: a.co * 4,
});

/** An NHWC image on the heap: its first float and its size. */
export interface ImageAt {
  at: number;
  h: number;
  w: number;
  c: number;
}

/** Image `image` of the [n, h, w, ci] batch at byte address `batch`. */
export const imageAt = (batch: number, image: number, a: { h: number; w: number; ci: number }): ImageAt => ({
  at: batch / 4 + image * a.h * a.w * a.ci,
  h: a.h,
  w: a.w,
  c: a.ci,
});

/** Part `part` of `parts`' blocks of rows of tiles: [first row, end row) for each. */
export function* partBlocks(rows: number, rowsPerBlock: number, part: number, parts: number): Generator<[number, number]> {
  const blocks = Math.ceil(rows / rowsPerBlock);
  const end = Math.floor((blocks * (part + 1)) / parts);
  for (let blk = Math.floor((blocks * part) / parts); blk < end; blk++) yield [blk * rowsPerBlock, Math.min(rows, (blk + 1) * rowsPerBlock)];
}

/**
 * Rows y0 .. y0 + count - 1 of `image` into the strip at byte address `at`, each `rowFloats` wide:
 * column j holding the image's column j - left, zero outside the image.
 */
export function copyStrip(simd: SimdKernels, image: ImageAt, y0: number, count: number, left: number, at: number, rowFloats: number): void {
  const { c } = image;
  const x0 = Math.max(0, left);
  const x1 = Math.min(rowFloats / c, image.w + left);
  const first = Math.max(0, y0);
  const rows = x1 > x0 ? Math.max(0, Math.min(y0 + count, image.h) - first) : 0;
  const before = rows > 0 ? first - y0 : count;
  const from = (image.at + (first * image.w + x0 - left) * c) * 4;
  simd.stripRows(from, image.w * c * 4, at, rowFloats * 4, before, rows, count - before - rows, x0 * c * 4, (x1 - x0) * c * 4, (rowFloats - x1 * c) * 4);
}

/**
 * The phase images of `phaseRows` * 2 rows of `width` pixels side by side (byte addresses): phase
 * row i, pixel j holding pixel (2i + ry, 2j + rx) for each phase in PHASES order, 4C channels.
 */
export function phasesSideBySide(simd: SimdKernels, strip: number, out: number, phaseRows: number, width: number, c: number): void {
  const pix = c * 4;
  const half = width / 2;
  for (let i = 0; i < phaseRows; i++) {
    PHASES.forEach(([ry, rx], slot) => {
      simd.copyRuns(strip + ((2 * i + ry) * width + rx) * pix, 2 * pix, out + i * half * 4 * pix + slot * pix, 4 * pix, pix, half);
    });
  }
}

/** The form's kernels on `memory` (the main thread's and every pool thread's alike), by spec and layout. */
function kernelsOn(form: BlockForm, memory: WasmMemory): Kernels {
  const inputs = form.inputs.map((input) => getTransformOnMemory(memory, input.spec));
  const output = getTransformOnMemory(memory, form.output);
  const gemms = form.products.map((group) => gemmOnMemory(memory, group.layout));
  const simd = simdKernelsOnMemory(memory);
  if (inputs.some((f) => !f) || !output || gemms.some((g) => !g) || !simd) {
    throw new Error('wasm-kernels: the Winograd block kernels need wasm SIMD');
  }
  return { inputs: inputs as TransformFn[], output, gemms: gemms as Gemm[], simd };
}

/** pool-tasks.ts' side of winogradBlocks. */
export function winogradBlocksTask(memory: WasmMemory, args: readonly number[], text: string): (part: number, parts: number) => void {
  const a = Object.fromEntries(ARG_KEYS.map((key, i) => [key, args[i]])) as BlockArgs;
  const form = JSON.parse(text) as BlockForm;
  return blocksPart(form, kernelsOn(form, memory), memory, a);
}

/** A forward convolution for winogradBlocks: x [n, h, w, ci] into y [n, tile th, tile tw, co]. */
export interface BlocksCall {
  /** Byte addresses. */
  x: number;
  y: number;
  shape: { n: number; h: number; w: number; ci: number; co: number; th: number; tw: number };
  top: number;
  left: number;
  /** The i32 table of U's plane addresses, one per position. */
  uTable: number;
  /** Byte address of the bias, 0 for none. */
  bias: number;
  /** The residual image's offset from y in bytes, when the output transform adds one (see TransformSpec). */
  residual?: number;
  /** A max pool of the output (block-max-pool.ts), written instead of it (y is then unused). */
  pool?: BlockPool;
}

/** Parts, per-part scratch bytes and rows of tiles per block for a call of this form and shape. */
export function blocksPlan(backend: BackendWasm, form: BlockForm, shape: BlocksCall['shape'], pooled = false): { parts: number; partBytes: number; rowsPerBlock: number } {
  const rowsPerBlock = Math.max(1, Math.min(shape.n * shape.th, Math.floor(BLOCK_TILES / shape.tw)));
  const partBytes = Math.ceil(partLayout(form, { ...shape, rowsPerBlock, pooled: pooled ? 1 : 0 }).bytes / 64) * 64;
  const blocks = Math.ceil((shape.n * shape.th) / rowsPerBlock);
  // ~55 GFLOP/s of products on one thread.
  const flops = form.products.reduce((sum, g) => sum + 2 * g.positions.length * g.layout.k, 0) * shape.n * shape.th * shape.tw * shape.co;
  return { parts: poolParts(backend, flops / 55e3, blocks, 2), partBytes, rowsPerBlock };
}

/** Runs the convolution into y, split over the kernel pool's threads; `scratch` holds parts x partBytes. */
export function winogradBlocks(backend: BackendWasm, form: BlockForm, call: BlocksCall, plan: ReturnType<typeof blocksPlan>, scratch: number): void {
  const { shape } = call;
  const memory = backendMemory(backend);
  if (!memory) throw new Error('wasm-kernels: the Winograd blocks need the wasm heap');
  const k = kernelsOn(form, memory);
  const a: BlockArgs = {
    ...shape,
    x: call.x,
    top: call.top,
    left: call.left,
    y: call.y,
    hq: form.tile * shape.th,
    wq: form.tile * shape.tw,
    uTable: call.uTable,
    bias: call.bias,
    residual: call.residual ?? 0,
    scratch,
    partBytes: plan.partBytes,
    rowsPerBlock: plan.rowsPerBlock,
    pooled: call.pool?.y ?? 0,
    outH: call.pool?.outH ?? 0,
    outW: call.pool?.outW ?? 0,
    poolH: call.pool?.poolH ?? 0,
    poolW: call.pool?.poolW ?? 0,
    poolLeft: call.pool?.left ?? 0,
  };
  const run = blocksPart(form, k, memory, a);
  runParts(backend, { name: 'winogradBlocks', args: ARG_KEYS.map((key) => a[key]), text: JSON.stringify(form) }, plan.parts, (part) => run(part, plan.parts));
  if (!call.pool) return;
  blockPoolStats.calls++;
  const firstRows = Array.from({ length: plan.parts }, (_, part) => partBlocks(shape.n * shape.th, plan.rowsPerBlock, part, plan.parts).next().value?.[0] ?? 0);
  const L = partLayout(form, a);
  poolPartBoundaries(k.simd, poolGeometry(a), firstRows, (part) => scratch + part * plan.partBytes + L.pool);
}
