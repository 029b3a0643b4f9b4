/**
 * A 3x3, stride-2 max pool (top padding 1: ResNet's, after its stem) applied to a Winograd
 * convolution's output block by block (winograd-blocks.ts), so that the convolution's output never
 * reaches memory: each row of 4-pixel tiles is output-transformed into one of two small buffers
 * that take turns, and pooled from there into pool rows 2ty and 2ty + 1 (input rows 4ty - 1 ..
 * 4ty + 3, the first from the previous row of tiles). ResNet-18's stem at 128 px, batch 16, had
 * written 16 MB that the pool read back; alone, alternating (ms, convolution then pool -> pooled
 * in its blocks): 1 thread 12.05 -> 11.27, 2 threads 6.87 -> 5.98 (the convolution alone 5.74).
 *
 * A part's rows of tiles are consecutive, so only its first row lacks the row before it: where
 * that row is not an image's first, its pool row 2ty is redone once every part is done, from rows
 * each part keeps aside (its first row of tiles' rows 0 and 1, its last one's row 3).
 */
import type { SimdKernels } from './simd-kernels.js';

/** Calls that pooled block by block (tests). */
export const blockPoolStats = { calls: 0 };

/** The pooled output and its geometry (byte addresses and sizes). */
export interface BlockPool {
  /** The pooled output [n, poolH, poolW, c]. */
  y: number;
  /** The convolution's output size (its tiles may overhang it). */
  outH: number;
  outW: number;
  poolH: number;
  poolW: number;
  /** The pool's left padding, 0 or 1 (its top padding is 1). */
  left: number;
}

export interface PoolGeometry extends BlockPool {
  /** Rows of tiles per image, pixels per tile row, bytes per pixel. */
  th: number;
  wq: number;
  pixBytes: number;
}

/** A part's scratch bytes for pooling: two buffers of 4 rows, and 3 rows kept aside. */
export const blockPoolBytes = (wq: number, pixBytes: number) => 11 * wq * pixBytes;

/** `rows` rows of `rowBytes` from src to dst (a strip without a border). */
const copyRows = (simd: SimdKernels, src: number, dst: number, rows: number, rowBytes: number) => simd.stripRows(src, rowBytes, dst, rowBytes, 0, rows, 0, 0, rowBytes, 0);

/** One part's pooling, in its scratch at `at`. */
export class PooledRows {
  private readonly rowBytes: number;
  private tileRows = 0;
  private last = -1;

  constructor(
    private readonly simd: SimdKernels,
    private readonly g: PoolGeometry,
    private readonly at: number,
  ) {
    this.rowBytes = g.wq * g.pixBytes;
  }

  /** Row of tiles r (of the batch): `transform` writes its 4 rows at the address it is given, then they are pooled. */
  add(r: number, transform: (dst: number) => void): void {
    const { g, simd, rowBytes } = this;
    const image = Math.floor(r / g.th);
    const ty = r - image * g.th;
    const buffer = this.at + (this.tileRows % 2) * 4 * rowBytes;
    transform(buffer);
    // Rows of the output past its edge repeat its last row (as the pool's window is clamped).
    const row = (k: number) => buffer + Math.min(k, g.outH - 1 - 4 * ty) * rowBytes;
    const before = this.tileRows > 0 && ty > 0 ? this.at + ((this.tileRows - 1) % 2) * 4 * rowBytes + 3 * rowBytes : row(0);
    const out = (i: number) => g.y + ((image * g.poolH + i) * g.poolW) * g.pixBytes;
    simd.maxPoolRow(before, row(0), row(1), out(2 * ty), g.poolW, g.outW, g.pixBytes, g.left);
    if (2 * ty + 1 < g.poolH) simd.maxPoolRow(row(1), row(2), row(3), out(2 * ty + 1), g.poolW, g.outW, g.pixBytes, g.left);
    const aside = this.at + 8 * rowBytes;
    if (this.tileRows === 0) copyRows(simd, buffer, aside, 2, rowBytes);
    this.last = buffer + 3 * rowBytes;
    this.tileRows++;
  }

  /** Keeps the last row aside for the next part's first pool row. */
  finish(): void {
    if (this.last >= 0) copyRows(this.simd, this.last, this.at + 10 * this.rowBytes, 1, this.rowBytes);
  }
}

/**
 * Redoes each part's first pool row that needed the previous part's last row (`firstRows[p]`: part
 * p's first row of tiles; `scratchOf(p)`: its pooling scratch).
 */
export function poolPartBoundaries(simd: SimdKernels, g: PoolGeometry, firstRows: number[], scratchOf: (part: number) => number): void {
  const rowBytes = g.wq * g.pixBytes;
  for (let part = 1; part < firstRows.length; part++) {
    const image = Math.floor(firstRows[part] / g.th);
    const ty = firstRows[part] - image * g.th;
    if (ty === 0) continue;
    const aside = scratchOf(part) + 8 * rowBytes;
    const next = 4 * ty + 1 < g.outH ? aside + rowBytes : aside;
    const dst = g.y + (image * g.poolH + 2 * ty) * g.poolW * g.pixBytes;
    simd.maxPoolRow(scratchOf(part - 1) + 10 * rowBytes, aside, next, dst, g.poolW, g.outW, g.pixBytes, g.left);
  }
}
