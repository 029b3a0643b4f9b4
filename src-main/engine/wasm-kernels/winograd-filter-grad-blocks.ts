/**
 * The Winograd filter gradient (winograd.ts' winogradFilterGrad) block by block of tiles, as
 * winograd-blocks.ts does the forward pass: for each block, on one thread, x's rows and dy's rows
 * copied into strips (zero past the edges), V = B^T d B and dM = A dy A^T into small buffers, V
 * transposed, and dU[p] += V[p]^T dM[p] into that part's own dU. The parts' dU are then added up
 * and dW = G^T dU G. The whole-batch form writes V, its transpose and dM to memory (9.4 MB each
 * for 16x32x32x64) and reads them back; here a block's stay in L2.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backendMemory, type WasmMemory } from './backend-module.js';
import { type Gemm, type GemmLayout, gemmOnMemory } from './gemm.js';
import { poolParts, runParts } from './kernel-pool.js';
import { simdKernelsOnMemory, type SimdKernels } from './simd-kernels.js';
import { copyStrip, imageAt, partBlocks, planeStride } from './winograd-blocks.js';
import type { DirectGeometry } from './strided-filter-grad.js';
import { AT, BT, getTransformOnMemory, getTransposeOnMemory, type TransformFn, type TransformSpec, type TransposeFn, transposeMatrix } from './winograd-transforms.js';

const POSITIONS = 36;
const TILE = 4;
/** Input rows a tile reads. */
const SPAN = 6;
/** Tiles per block: the reduction length of each block's products. */
const BLOCK_TILES = 64;

/** The task's numeric arguments, in order (byte addresses and sizes). */
const ARG_KEYS = ['x', 'n', 'h', 'w', 'ci', 'top', 'left', 'th', 'tw', 'dy', 'ho', 'wo', 'co', 'du', 'duStride', 'scratch', 'partBytes', 'rowsPerBlock'] as const;
type GradArgs = Record<(typeof ARG_KEYS)[number], number>;

/** Byte offsets in a part's scratch: the V and dM tables, the strips, V, V^T and dM. */
function partLayout(a: Pick<GradArgs, 'ci' | 'co' | 'tw' | 'rowsPerBlock'>) {
  const wp = TILE * a.tw + SPAN - TILE;
  const wq = TILE * a.tw;
  const tiles = a.rowsPerBlock * a.tw;
  const vStride = planeStride(tiles * a.ci * 4);
  const mStride = planeStride(tiles * a.co * 4);
  const xSlot = SPAN * wp * a.ci * 4;
  const dySlot = TILE * wq * a.co * 4;
  const xStrip = 2 * POSITIONS * 4;
  const dyStrip = xStrip + a.rowsPerBlock * xSlot;
  const v = Math.ceil((dyStrip + a.rowsPerBlock * dySlot) / 64) * 64;
  const vt = v + POSITIONS * vStride;
  const m = vt + POSITIONS * vStride;
  return { wp, wq, tiles, vStride, mStride, xSlot, dySlot, xStrip, dyStrip, v, vt, m, bytes: m + POSITIONS * mStride };
}

const inputSpec = (wp: number, ci: number): TransformSpec => ({ L: BT, input: { kind: 'image', rowBytes: wp * ci * 4, pixBytes: ci * 4, tile: TILE }, output: { kind: 'table' } });
/** dM = A dy_tile A^T: the adjoint of the output transform. */
const gradSpec = (wq: number, co: number): TransformSpec => ({
  L: transposeMatrix(AT),
  input: { kind: 'image', rowBytes: wq * co * 4, pixBytes: co * 4, tile: TILE },
  output: { kind: 'table' },
});
/** dU[p] += V[p]^T [ci, tiles] x dM[p] [tiles, co]. */
const productLayout = (co: number, tiles: number): GemmLayout => ({ k: tiles, lda: tiles, ldb: co, ldc: co, accumulate: true });

interface Kernels {
  input: TransformFn;
  grad: TransformFn;
  transpose: TransposeFn;
  gemm: Gemm;
  simd: SimdKernels;
}

/** Part `part` of `parts`: a contiguous range of blocks, summed into this part's dU. */
function gradPart(k: Kernels, memory: WasmMemory, a: GradArgs): (part: number, parts: number) => void {
  return (part, parts) => {
    const i32 = new Int32Array(memory.buffer);
    const L = partLayout(a);
    const base = a.scratch + part * a.partBytes;
    const vTable = base;
    const mTable = base + POSITIONS * 4;
    const plane = (start: number, stride: number) => Array.from({ length: POSITIONS }, (_, p) => start + p * stride);
    const vAt = plane(base + L.v, L.vStride);
    const vtAt = plane(base + L.vt, L.vStride);
    const mAt = plane(base + L.m, L.mStride);
    const duAt = plane(a.du + part * POSITIONS * a.duStride, a.duStride);
    i32.set(vAt, vTable / 4);
    i32.set(mAt, mTable / 4);
    k.simd.zero(duAt[0], POSITIONS * a.duStride);
    const [pixIn, pixOut] = [a.ci * 4, a.co * 4];
    for (const [r0, r1] of partBlocks(a.n * a.th, a.rowsPerBlock, part, parts)) {
      for (let r = r0; r < r1; r++) {
        const slot = r - r0;
        const image = Math.floor(r / a.th);
        const ty = r - image * a.th;
        const xAt = base + L.xStrip + slot * L.xSlot;
        copyStrip(k.simd, imageAt(a.x, image, a), TILE * ty - a.top, SPAN, a.left, xAt, L.wp * a.ci);
        k.input(xAt, 0, vTable, slot * a.tw * pixIn, a.tw, pixIn, 0, 0);
        const dyAt = base + L.dyStrip + slot * L.dySlot;
        copyStrip(k.simd, imageAt(a.dy, image, { h: a.ho, w: a.wo, ci: a.co }), TILE * ty, TILE, 0, dyAt, L.wq * a.co);
        k.grad(dyAt, 0, mTable, slot * a.tw * pixOut, a.tw, pixOut, 0, 0);
      }
      // A short last block: zero tiles past its end, so that the products' fixed reduction adds nothing.
      const tiles = (r1 - r0) * a.tw;
      if (tiles < L.tiles) {
        for (let p = 0; p < POSITIONS; p++) {
          k.simd.zero(vAt[p] + tiles * pixIn, (L.tiles - tiles) * pixIn);
          k.simd.zero(mAt[p] + tiles * pixOut, (L.tiles - tiles) * pixOut);
        }
      }
      for (let p = 0; p < POSITIONS; p++) {
        k.transpose(vAt[p], vtAt[p], L.tiles, a.ci, 1);
        k.gemm(vtAt[p], mAt[p], duAt[p], a.ci, a.co);
      }
    }
  };
}

/** The kernels on `memory` (the main thread's and every pool thread's alike). */
function kernelsOnMemory(memory: WasmMemory, a: GradArgs): Kernels {
  const L = partLayout(a);
  const input = getTransformOnMemory(memory, JSON.stringify(inputSpec(L.wp, a.ci)));
  const grad = getTransformOnMemory(memory, JSON.stringify(gradSpec(L.wq, a.co)));
  const transpose = getTransposeOnMemory(memory);
  const gemm = gemmOnMemory(memory, productLayout(a.co, L.tiles));
  const simd = simdKernelsOnMemory(memory);
  if (!input || !grad || !transpose || !gemm || !simd) throw new Error('wasm-kernels: the Winograd filter-gradient blocks need wasm SIMD');
  return { input, grad, transpose, gemm, simd };
}

/** pool-tasks.ts' side of winogradFilterGradBlocks. */
export function winogradFilterGradBlocksTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const a = Object.fromEntries(ARG_KEYS.map((key, i) => [key, args[i]])) as GradArgs;
  return gradPart(kernelsOnMemory(memory, a), memory, a);
}

/** x [n, h, w, ci], dy [n, ho, wo, co], and dy's rows and columns of 4x4 tiles. */
export type GradShape = Pick<DirectGeometry, 'n' | 'h' | 'w' | 'ci' | 'ho' | 'wo' | 'co'> & { th: number; tw: number };

/** Parts, per-part scratch bytes and bytes between dU's planes, for a call of this shape. */
export function gradBlocksPlan(backend: BackendWasm, shape: GradShape) {
  const rowsPerBlock = Math.max(1, Math.min(shape.n * shape.th, Math.floor(BLOCK_TILES / shape.tw)));
  const partBytes = Math.ceil(partLayout({ ...shape, rowsPerBlock }).bytes / 64) * 64;
  const blocks = Math.ceil((shape.n * shape.th) / rowsPerBlock);
  const micros = (2 * POSITIONS * shape.n * shape.th * shape.tw * shape.ci * shape.co) / 55e3;
  const duStride = planeStride(shape.ci * shape.co * 4);
  // One part per thread: every part's dU is added up after.
  return { parts: poolParts(backend, micros, blocks), partBytes, rowsPerBlock, duStride };
}

/**
 * Each part's dU (36 planes [ci, co], `plan.duStride` bytes apart, part after part from `du`),
 * split over the kernel pool's threads. `scratch` holds parts x partBytes; x and dy byte
 * addresses.
 */
export function winogradFilterGradBlocks(
  backend: BackendWasm,
  call: { x: number; dy: number; shape: GradShape; top: number; left: number; du: number; scratch: number },
  plan: ReturnType<typeof gradBlocksPlan>,
): void {
  const { shape } = call;
  const memory = backendMemory(backend);
  if (!memory) throw new Error('wasm-kernels: the Winograd filter-gradient blocks need the wasm heap');
  const a: GradArgs = { ...shape, x: call.x, dy: call.dy, top: call.top, left: call.left, du: call.du, duStride: plan.duStride, scratch: call.scratch, partBytes: plan.partBytes, rowsPerBlock: plan.rowsPerBlock };
  const run = gradPart(kernelsOnMemory(memory, a), memory, a);
  runParts(backend, { name: 'winogradFilterGradBlocks', args: ARG_KEYS.map((key) => a[key]) }, plan.parts, (part) => run(part, plan.parts));
}
