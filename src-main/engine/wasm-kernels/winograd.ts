/**
 * Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions on the wasm backend: the forward pass, the
 * input gradient (a forward conv of dy with the flipped filter) and the filter gradient.
 *
 * Each 4x4 output tile comes from a 6x6 input tile d: y = A^T [U * V] A with V = B^T d B and
 * U = G g G^T, 36 products per tile instead of 144. Summed over input channels the product is a
 * matrix product per tile position p: M[p] = V[p] x U[p] with V[p] [tiles, Ci], U[p] [Ci, Co].
 * Those 36 GEMMs run on our generated GEMM (gemm.ts), split over the kernel pool's threads; the
 * transforms are SIMD loops (winograd-transforms.ts), split by rows of tiles.
 *
 * Filter gradient: Winograd is linear in U, so dU[p] = V[p]^T dM[p] with dM = A dy_tile A^T
 * (the adjoint of the output transform; outputs past the edge count as zero), and
 * dW = G^T dU G (the adjoint of the weight transform).
 *
 * Rounding: the transforms scale values by up to ~100 and cancel, so results differ from a direct
 * convolution by ~1e-6..1e-5 relative to the output scale (direct: ~1e-7).
 *
 * The forward products run a few images at a time so that V and M stay in cache (up to 128
 * channels, block by block of tiles on each thread: winograd-blocks.ts), and take U from
 * winograd-filter-cache.ts in inference, where a filter is used for many calls. Stride-2 layers
 * have their own forms (strided-winograd.ts), built from this file's pieces.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type Activation,
  AT,
  BT,
  G,
  getTranspose,
  runTableTranspose,
  runTransformRows,
  type Side,
  type TransformRows,
  type TransformSpec,
  transformsAvailable,
  transposeMatrix,
} from './winograd-transforms.js';
import { runTableGemm } from './gemm.js';
import { type BlockForm, blocksPay, blocksPlan, winogradBlocks } from './winograd-blocks.js';
import { gradBlocksPlan, winogradFilterGradBlocks } from './winograd-filter-grad-blocks.js';
import { simdKernels } from './simd-kernels.js';
import { keptFilterTransform } from './winograd-filter-cache.js';
import { crop4d, heapOffset, type Info, padSpatial, sameShape, type Scratch, type Shape4 } from './wasm-ops.js';

export type WinogradMode = 'off' | 'auto' | 'always';

/**
 * FINETUNE_WINOGRAD=0 turns Winograd off, =1 uses it for every eligible shape (tests), unset:
 * only for shapes where it measured faster (`winogradPays`). Read on every call so a process can
 * compare both.
 */
export function winogradMode(): WinogradMode {
  const v = typeof process === 'object' ? process.env?.FINETUNE_WINOGRAD : undefined;
  if (v === '0' || v === 'off' || v === 'false') return 'off';
  if (v === '1' || v === 'always' || v === 'true') return 'always';
  return 'auto';
}

export interface WinogradShape {
  /** Batch, output height and width (of the convolution that Winograd computes). */
  n: number;
  outH: number;
  outW: number;
  ci: number;
  co: number;
  /** Taps of the direct convolution (default 9) and outputs per tile side (default 4). */
  taps?: number;
  tile?: number;
}

export type WinogradUse = 'forward' | 'inputGrad' | 'filterGrad';

/**
 * Measured with the products on our GEMM (1 / 2 threads; direct = XNNPACK, with its filter cached
 * in the forward pass as in inference; Winograd / direct speed):
 * - forward: the weight transform (36 planes of Ci x Co) is a fixed cost that few tiles cannot
 *   carry: 1x4x4x512 (1 tile) 0.28x / 0.24x, 2 tiles 0.62x / 0.49x, 4 tiles 0.88-1.13x /
 *   0.78-0.96x, 8 tiles 1.62x / 1.50x, 16x4x4x512 2.3x / 2.2x; and below ~40 MFLOP threads favour
 *   XNNPACK: 1x28x28x32 and 1x14x14x64 (14 MFLOP) 1.23-1.29x on 1 thread but 0.68-0.74x on 2;
 * - input gradient: the direct form packs a fresh flipped filter every call too: Winograd won
 *   3-4.5x from a single tile on even with XNNPACK's GEMMs;
 * - filter gradient: 1 tile 0.89x / 0.94x, 2 tiles 1.10x / 0.96x, 4 tiles 1.8-2.5x, 16 tiles
 *   3.5-5.2x, and from ~10 MFLOP: 1x7x7x64 (4 MFLOP) 2.3x but 1x14x14x32 (4 MFLOP) 0.57x,
 *   1x56x56x16 (14 MFLOP) 1.29x.
 */
const MIN_TILES: Record<WinogradUse, number> = { forward: 8, inputGrad: 1, filterGrad: 4 };
const MIN_FLOPS: Record<WinogradUse, number> = { forward: 40e6, inputGrad: 40e6, filterGrad: 10e6 };

export function winogradPays(shape: WinogradShape, use: WinogradUse = 'forward'): boolean {
  const tile = shape.tile ?? 4;
  const directFlops = 2 * (shape.taps ?? 9) * shape.n * shape.outH * shape.outW * shape.ci * shape.co;
  if (directFlops < MIN_FLOPS[use]) return false;
  const tiles = shape.n * Math.ceil(shape.outH / tile) * Math.ceil(shape.outW / tile);
  return tiles >= MIN_TILES[use];
}

/** NHWC 3x3, channel counts SIMD-friendly, SIMD transforms available, and worth it (or forced). */
export function useWinograd(backend: BackendWasm, shape: WinogradShape, use: WinogradUse): boolean {
  const mode = winogradMode();
  if (mode === 'off') return false;
  if (shape.ci % 4 !== 0 || shape.co % 4 !== 0 || shape.outH < 1 || shape.outW < 1) return false;
  if (mode === 'auto' && !winogradPays(shape, use)) return false;
  return transformsAvailable(backend);
}

/** Calls taken through Winograd (tests check which path ran). */
export const winogradStats = { forward: 0, filterGrad: 0, blocks: 0, residual: 0 };

const POSITIONS = 36;
/** Outputs per tile side. */
const TILE = 4;

/** V and M of the images transformed at a time (both fit in L3 with room for U and the image). */
export const CHUNK_BYTES = 8 * 2 ** 20;

function spec(L: readonly number[][], input: Side, output: Side, bias = false, act: Activation = 'linear', residual = false): TransformSpec {
  return { L, input, output, bias, act, ...(residual ? { residual } : {}) };
}

export const byteAddress = (s: Scratch, info: Info) => heapOffset(s.backend, info).offset * 4;

/** An i32 table of byte addresses on the heap (the table side of a transform, a table GEMM or transpose). */
export function byteAddressTable(s: Scratch, addresses: readonly number[]): number {
  const table = s.alloc([addresses.length]);
  const at = byteAddress(s, table);
  const { heap } = heapOffset(s.backend, table);
  new Int32Array(heap.buffer, at, addresses.length).set(addresses);
  return at;
}

/** The table of the buffers' byte addresses. */
const addressTable = (s: Scratch, buffers: Info[]) => byteAddressTable(s, buffers.map((b) => byteAddress(s, b)));

/** Where a transform reads or writes its rows of tiles: a byte address and strides. */
interface RowSide {
  at: number;
  image: number;
  row: number;
}

/** An NHWC image of h x w pixels of `pix` bytes, rows of tiles m pixels apart. */
const imageSide = (at: number, h: number, w: number, pix: number, m: number): RowSide => ({ at, image: h * w * pix, row: m * w * pix });

/** How a transform reads or writes an image whose rows are `w` pixels of `pix` bytes. */
const imageGrid = (w: number, pix: number, m: number): Side => ({ kind: 'image', rowBytes: w * pix, pixBytes: pix, tile: m });

/** The tables side: element (tile, channel) of each position's buffer, tiles in (n, ty, tx) order. */
const tableSide = (at: number, t: Tiling, pix: number): RowSide => ({ at, image: t.th * t.tw * pix, row: t.tw * pix });

function rows(src: RowSide, dst: RowSide, t: Tiling, pix: number, bias = 0): TransformRows {
  return { src: src.at, srcImage: src.image, srcRow: src.row, dst: dst.at, dstImage: dst.image, dstRow: dst.row, n: t.n, th: t.th, tw: t.tw, chanBytes: pix, bias };
}

/** The weight transforms: one tile whose channels are the whole filter plane. */
const oneTile = (src: number, dst: number, plane: number) => ({ src, srcImage: 0, srcRow: 0, dst, dstImage: 0, dstRow: 0, n: 1, th: 1, tw: 1, chanBytes: plane, bias: 0 });

interface Tiling {
  m: number;
  n: number;
  th: number;
  tw: number;
  tiles: number;
}

function tiling(n: number, outH: number, outW: number, m = TILE): Tiling {
  const th = Math.ceil(outH / m);
  const tw = Math.ceil(outW / m);
  return { m, n, th, tw, tiles: n * th * tw };
}

/**
 * V[p] = (B^T d B)[p] for every 6x6 tile of x (padded by top/left, zeros outside): 36 tensors
 * [tiles, C], tiles in (n, ty, tx) order.
 */
function inputTransform(s: Scratch, x: Info, top: number, left: number, t: Tiling): Info[] {
  const c = x.shape[3];
  const hp = t.m * t.th + 6 - t.m;
  const wp = t.m * t.tw + 6 - t.m;
  const padded = padSpatial(s, x, top, left, hp, wp);
  const v = Array.from({ length: POSITIONS }, () => s.alloc([t.tiles, c]));
  const table = addressTable(s, v);
  const pix = c * 4;
  const src = imageSide(byteAddress(s, padded), hp, wp, pix, t.m);
  runTransformRows(s.backend, spec(BT, imageGrid(wp, pix, t.m), { kind: 'table' }), rows(src, tableSide(table, t, pix), t, pix));
  if (padded !== x) s.release(padded);
  return v;
}

/** G with its columns reversed: (G J) g (G J)^T = G (J g J) G^T transforms g rotated by 180 degrees. */
const G_FLIPPED = G.map((row) => [...row].reverse());

/**
 * Floats between the starts of U's planes: Ci x Co plus one cache line. Planes exactly 2^k bytes
 * apart (layer 4: 1 MiB) share cache sets, and the weight transform, which writes all 36 at once,
 * ran ~2x slower (a ResNet-18 training step at 128 px: 460 -> 535 ms).
 */
const planeFloats = (ci: number, co: number) => ci * co + 16;

/** The table of the 36 planes' byte addresses in U. */
function planeTable(s: Scratch, u: Info): number {
  const [count, stride] = u.shape;
  const at = byteAddress(s, u);
  return byteAddressTable(s, Array.from({ length: count }, (_, p) => at + p * stride * 4));
}

/**
 * u = U, U[p] = (G g G^T)[p] of an [r, r, Ci, Co] filter (L = G): u is [36, planeFloats], the
 * planes [Ci, Co]. With L = G_FLIPPED: of the 3x3 filter rotated by 180 degrees (the input
 * gradient's), read in place.
 */
export function weightTransform(s: Scratch, filter: Info, L: readonly number[][], u: Info): void {
  const plane = filter.shape[2] * filter.shape[3] * 4;
  const taps = filter.shape[1];
  runTransformRows(s.backend, spec(L, imageGrid(taps, plane, 1), { kind: 'table' }), oneTile(byteAddress(s, filter), planeTable(s, u), plane));
}

/** A filter's U (planes [ci, co]) and whether the caller owns it (scratch memory to release) or it is kept. */
export interface FilterTransform {
  u: Info;
  ci: number;
  co: number;
  owned: boolean;
}

/**
 * U of `filter` made by `fill`, `positions` planes [ci, co]: kept between inference calls
 * (winograd-filter-cache.ts), else made in scratch memory.
 */
export function filterTransform(s: Scratch, filter: Info, ci: number, co: number, fill: (u: Info) => void, keep = true, positions = POSITIONS): FilterTransform {
  const shape = [positions, planeFloats(ci, co)];
  const kept = keep ? keptFilterTransform(s.backend, filter, shape, fill) : undefined;
  if (kept) return { u: kept, ci, co, owned: false };
  const u = s.alloc(shape);
  fill(u);
  return { u, ci, co, owned: true };
}

/**
 * [..., rows, cols] -> [..., cols, rows] (for each leading index) by the SIMD loop when cols is a
 * multiple of 4, else the stock kernel.
 */
export function transposeLast2(s: Scratch, x: Info): Info {
  const rank = x.shape.length;
  const rows = x.shape[rank - 2];
  const cols = x.shape[rank - 1];
  const fn = cols % 4 === 0 ? getTranspose(s.backend) : null;
  if (!fn) return s.transpose(x, [...Array(rank - 2).keys(), rank - 1, rank - 2]);
  const out = s.alloc([...x.shape.slice(0, -2), cols, rows]);
  fn(byteAddress(s, x), byteAddress(s, out), rows, cols, x.shape.slice(0, -2).reduce((a, b) => a * b, 1));
  return out;
}

export interface Epilogue {
  bias?: Info;
  /**
   * An image [n, outH, outW, co] added before the activation (a ResNet block's shortcut). Stride 1
   * only, and only where whole tiles cover the output (`residualFits`): the output transform reads
   * it at the offset of each output it writes.
   */
  residual?: Info;
  act: Activation;
}

/** Whether a stride-1 output of this size can take a residual in its output transform. */
export const residualFits = (outH: number, outW: number) => outH % TILE === 0 && outW % TILE === 0;

/** The residual's offset from y in bytes (see TransformSpec.residual), 0 for none. */
function residualOffset(s: Scratch, epilogue: Epilogue, y: Info): number {
  if (!epilogue.residual) return 0;
  if (!sameShape(epilogue.residual.shape, y.shape)) {
    throw new Error(`wasm-kernels: a residual of shape ${epilogue.residual.shape} for an output of ${y.shape} (whole tiles only)`);
  }
  winogradStats.residual++;
  return byteAddress(s, epilogue.residual) - byteAddress(s, y);
}

/**
 * y[n, oh, ow, co] = sum_{a, b, ci} x[n, oh + a - top, ow + b - left, ci] * w[a, b, ci, co]
 * (zeros outside x), for oh < outH, ow < outW, then + bias and the activation.
 * `top` / `left` may be negative. x: [N, H, W, Ci]. `flipTaps`: w[2 - a, 2 - b] instead.
 */
export function winogradConv2d(
  s: Scratch,
  x: Info,
  filter: Info,
  top: number,
  left: number,
  outH: number,
  outW: number,
  epilogue: Epilogue = { act: 'linear' },
  flipTaps = false,
): Info {
  const L = flipTaps ? G_FLIPPED : G;
  const transform = filterTransform(s, filter, filter.shape[2], filter.shape[3], (u) => weightTransform(s, filter, L, u), !flipTaps);
  if (blocksPay(transform.ci, transform.co)) return winogradByBlocks(s, x, transform, top, left, outH, outW, epilogue);
  return winogradProducts(s, x, transform, top, left, outH, outW, epilogue);
}

/**
 * The convolution of x with the filter whose transform is `filter.u`: input transform, 36
 * products, output transform (+ bias, activation). Releases `filter.u` if owned.
 */
function winogradProducts(
  s: Scratch,
  x: Info,
  filter: FilterTransform,
  top: number,
  left: number,
  outH: number,
  outW: number,
  epilogue: Epilogue,
): Info {
  winogradStats.forward++;
  const [n, , , ci] = x.shape as Shape4;
  const { u, co, owned } = filter;
  const t = tiling(n, outH, outW);
  const hp = TILE * t.th + 6 - TILE;
  const wp = TILE * t.tw + 6 - TILE;
  const padded = padSpatial(s, x, top, left, hp, wp);
  const hq = TILE * t.th;
  const wq = TILE * t.tw;
  const y = s.alloc([n, hq, wq, co]);
  // A few images at a time, so that V and M (each 36/16 times their image's size) stay in cache
  // between the transforms and the products (ResNet-18's first layer at 224 px: 29 MB each for the batch).
  const perImage = t.th * t.tw;
  const chunk = Math.max(1, Math.min(n, Math.floor(CHUNK_BYTES / (POSITIONS * perImage * (ci + co) * 4))));
  const v = Array.from({ length: POSITIONS }, () => s.alloc([chunk * perImage, ci]));
  const m = Array.from({ length: POSITIONS }, () => s.alloc([chunk * perImage, co]));
  const vTable = addressTable(s, v);
  const mTable = addressTable(s, m);
  const uTable = planeTable(s, u);
  const [pixIn, pixOut] = [ci * 4, co * 4];
  const input = spec(BT, imageGrid(wp, pixIn, TILE), { kind: 'table' });
  const { bias, act } = epilogue;
  const output = spec(AT, { kind: 'table' }, imageGrid(wq, pixOut, TILE), bias !== undefined, act, epilogue.residual !== undefined);
  const residual = residualOffset(s, epilogue, y);
  const layout = { k: ci, lda: ci, ldb: co, ldc: co };
  for (let b0 = 0; b0 < n; b0 += chunk) {
    const part = tiling(Math.min(chunk, n - b0), outH, outW);
    const src = imageSide(byteAddress(s, padded) + b0 * hp * wp * pixIn, hp, wp, pixIn, TILE);
    runTransformRows(s.backend, input, rows(src, tableSide(vTable, part, pixIn), part, pixIn));
    // M[p] = V[p] x U[p]: 36 products [tiles, Ci] x [Ci, Co], split over the kernel pool's threads.
    const products = { layout, aTable: vTable, bTable: uTable, cTable: mTable, count: POSITIONS, m: part.tiles, n: co };
    if (!runTableGemm(s.backend, products)) throw new Error('wasm-kernels: the Winograd products need wasm SIMD');
    const dst = imageSide(byteAddress(s, y) + b0 * hq * wq * pixOut, hq, wq, pixOut, TILE);
    runTransformRows(s.backend, output, { ...rows(tableSide(mTable, part, pixOut), dst, part, pixOut, bias ? byteAddress(s, bias) : 0), residual });
  }
  for (const b of [...v, ...m]) s.release(b);
  if (owned) s.release(u);
  if (padded !== x) s.release(padded);
  return crop4d(s, y, 0, 0, outH, outW);
}

/** F(4x4, 3x3) for winograd-blocks.ts: 6 input rows per row of tiles, one input transform in place. */
function blockForm(ci: number, co: number, tw: number, epilogue: Epilogue): BlockForm {
  const width = TILE * tw + 6 - TILE;
  const input = spec(BT, imageGrid(width, ci * 4, TILE), { kind: 'table' });
  const output = spec(AT, { kind: 'table' }, imageGrid(TILE * tw, co * 4, TILE), epilogue.bias !== undefined, epilogue.act, epilogue.residual !== undefined);
  return {
    tile: TILE,
    positions: POSITIONS,
    depth: ci,
    span: 6,
    rowStep: TILE,
    width,
    sideBySideRows: 0,
    inputs: [{ spec: JSON.stringify(input), src: 0, at: 0, chanBytes: ci * 4 }],
    products: [{ layout: { k: ci, lda: ci, ldb: co, ldc: co }, positions: [...Array(POSITIONS).keys()], aOffset: 0, bOffset: 0 }],
    output: JSON.stringify(output),
  };
}

/** winogradProducts block by block of tiles (winograd-blocks.ts). */
function winogradByBlocks(s: Scratch, x: Info, filter: FilterTransform, top: number, left: number, outH: number, outW: number, epilogue: Epilogue): Info {
  winogradStats.forward++;
  winogradStats.blocks++;
  const [n, h, w, ci] = x.shape as Shape4;
  const { u, co, owned } = filter;
  const t = tiling(n, outH, outW);
  const shape = { n, h, w, ci, co, th: t.th, tw: t.tw };
  const y = s.alloc([n, TILE * t.th, TILE * t.tw, co]);
  const bias = epilogue.bias ? byteAddress(s, epilogue.bias) : 0;
  const call = { x: byteAddress(s, x), y: byteAddress(s, y), shape, top, left, uTable: planeTable(s, u), bias, residual: residualOffset(s, epilogue, y) };
  runBlocks(s, blockForm(ci, co, t.tw, epilogue), call);
  if (owned) s.release(u);
  return crop4d(s, y, 0, 0, outH, outW);
}

/** Runs winogradBlocks with its scratch memory. */
export function runBlocks(s: Scratch, form: BlockForm, call: Parameters<typeof winogradBlocks>[2]): void {
  const plan = blocksPlan(s.backend, form, call.shape, call.pool !== undefined);
  // 16 floats more, to start the parts' scratch on a cache line.
  const scratch = s.alloc([(plan.parts * plan.partBytes) / 4 + 16]);
  winogradBlocks(s.backend, form, call, plan, Math.ceil(byteAddress(s, scratch) / 64) * 64);
  s.release(scratch);
}

/**
 * dW[a, b, ci, co] = sum_{n, oh, ow} x[n, oh + a - top, ow + b - left, ci] * dy[n, oh, ow, co]:
 * the filter gradient of a 3x3 stride-1 convolution. Returns [3, 3, Ci, Co].
 */
export function winogradFilterGrad(s: Scratch, x: Info, dy: Info, top: number, left: number): Info {
  winogradStats.filterGrad++;
  const ci = x.shape[3];
  const [n, ho, wo, co] = dy.shape as Shape4;
  if (blocksPay(ci, co)) return filterGradByBlocks(s, x, dy, top, left);
  const t = tiling(n, ho, wo);
  const hq = 4 * t.th;
  const wq = 4 * t.tw;
  const v = inputTransform(s, x, top, left, t);
  // dM[p] = (A dy_tile A^T)[p], dy zero-padded to whole tiles.
  const dyPad = padSpatial(s, dy, 0, 0, hq, wq);
  const dm = Array.from({ length: POSITIONS }, () => s.alloc([t.tiles, co]));
  const table = addressTable(s, dm);
  const pix = co * 4;
  const src = imageSide(byteAddress(s, dyPad), hq, wq, pix, 4);
  runTransformRows(s.backend, spec(transposeMatrix(AT), imageGrid(wq, pix, 4), { kind: 'table' }), rows(src, tableSide(table, t, pix), t, pix));
  if (dyPad !== dy) s.release(dyPad);
  // dU[p] = V[p]^T [Ci, tiles] x dM[p] [tiles, Co]: a long reduction. Measured against the
  // outer-product kernel of strided-filter-grad.ts (no transposes; ms, batch 16, 1 / 2 threads):
  // 56x56x64 39 / 26 -> 35 / 24, 32x32x64 13 / 15 -> 10 / 7-10, 28x28x128 31 / 21 -> 24 / 17.
  const vT = v.map(() => s.alloc([ci, t.tiles]));
  const vTable = addressTable(s, vT);
  runTableTranspose(s.backend, { srcTable: addressTable(s, v), dstTable: vTable, count: POSITIONS, rows: t.tiles, cols: ci });
  const du = v.map(() => s.alloc([ci, co]));
  const layout = { k: t.tiles, lda: t.tiles, ldb: co, ldc: co };
  const products = { layout, aTable: vTable, bTable: addressTable(s, dm), cTable: addressTable(s, du), count: POSITIONS, m: ci, n: co };
  if (!runTableGemm(s.backend, products)) throw new Error('wasm-kernels: the Winograd products need wasm SIMD');
  for (const b of vT) s.release(b);
  for (const b of [...v, ...dm]) s.release(b);
  const dw = s.alloc([3, 3, ci, co]);
  const plane = ci * co * 4;
  const duTable = addressTable(s, du);
  runTransformRows(s.backend, spec(transposeMatrix(G), { kind: 'table' }, imageGrid(3, plane, 1)), oneTile(duTable, byteAddress(s, dw), plane));
  for (const d of du) s.release(d);
  return dw;
}

/** winogradFilterGrad block by block of tiles (winograd-filter-grad-blocks.ts). */
function filterGradByBlocks(s: Scratch, x: Info, dy: Info, top: number, left: number): Info {
  winogradStats.blocks++;
  const [n, h, w, ci] = x.shape as Shape4;
  const [, ho, wo, co] = dy.shape as Shape4;
  const simd = simdKernels(s.backend);
  if (!simd) throw new Error('wasm-kernels: the Winograd filter gradient needs wasm SIMD');
  const t = tiling(n, ho, wo);
  const shape = { n, h, w, ci, ho, wo, co, th: t.th, tw: t.tw };
  const plan = gradBlocksPlan(s.backend, shape);
  // 16 floats more, to start on a cache line.
  const scratch = s.alloc([(plan.parts * plan.partBytes) / 4 + 16]);
  const duBytes = POSITIONS * plan.duStride; // one part's dU
  const duInfo = s.alloc([(plan.parts * duBytes) / 4 + 16]);
  const line = (info: Info) => Math.ceil(byteAddress(s, info) / 64) * 64;
  const du = line(duInfo);
  const call = { x: byteAddress(s, x), dy: byteAddress(s, dy), shape, top, left, du, scratch: line(scratch) };
  winogradFilterGradBlocks(s.backend, call, plan);
  s.release(scratch);
  for (let part = 1; part < plan.parts; part++) simd.addInto(du, du + part * duBytes, duBytes);
  const dw = s.alloc([3, 3, ci, co]);
  const plane = ci * co * 4;
  const duTable = byteAddressTable(s, Array.from({ length: POSITIONS }, (_, p) => du + p * plan.duStride));
  runTransformRows(s.backend, spec(transposeMatrix(G), { kind: 'table' }, imageGrid(3, plane, 1)), oneTile(duTable, byteAddress(s, dw), plane));
  s.release(duInfo);
  return dw;
}
