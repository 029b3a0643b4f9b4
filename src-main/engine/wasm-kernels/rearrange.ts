/**
 * Memory rearrangements done in JS with `copyWithin` on the wasm heap: each is a handful of
 * memmove calls over contiguous runs, cheaper than the stock Reverse / StridedSlice / 6-D Pad
 * kernels, which walk element by element.
 */
import { heapOffset, type Info, type Scratch, type Shape4 } from './wasm-ops.js';

/** Reverses the order of the outermost axis (for a [kh*kw, ...] filter: a 180 degree rotation). */
export function flipSpatial(s: Scratch, x: Info): Info {
  const taps = x.shape[0];
  const block = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = s.alloc(x.shape);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  for (let t = 0; t < taps; t++) {
    const from = src + (taps - 1 - t) * block;
    heap.copyWithin(dst + t * block, from, from + block);
  }
  return out;
}

/**
 * out = zeros [N, outH, outW, C]; out[n, offH + i*sh, offW + j*sw] = x[n, i, j] where that lands
 * inside out. Used to spread a strided gradient back onto the input grid.
 */
export function zeroInsert(
  s: Scratch,
  x: Info,
  outH: number,
  outW: number,
  sh: number,
  sw: number,
  offH: number,
  offW: number,
): Info {
  const [n, h, w, c] = x.shape as Shape4;
  const out = s.alloc([n, outH, outW, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  heap.fill(0, dst, dst + n * outH * outW * c);
  // Valid source index ranges: 0 <= off + i*s < out.
  const i0 = Math.max(0, Math.ceil(-offH / sh));
  const i1 = Math.min(h, Math.floor((outH - 1 - offH) / sh) + 1);
  const j0 = Math.max(0, Math.ceil(-offW / sw));
  const j1 = Math.min(w, Math.floor((outW - 1 - offW) / sw) + 1);
  for (let b = 0; b < n; b++) {
    for (let i = i0; i < i1; i++) {
      const rowSrc = src + ((b * h + i) * w) * c;
      const rowDst = dst + ((b * outH + offH + i * sh) * outW + offW) * c;
      if (sw === 1) {
        // Contiguous run of pixels.
        heap.copyWithin(rowDst + j0 * c, rowSrc + j0 * c, rowSrc + j1 * c);
        continue;
      }
      for (let j = j0; j < j1; j++) {
        const from = rowSrc + j * c;
        heap.copyWithin(rowDst + j * sw * c, from, from + c);
      }
    }
  }
  return out;
}

/**
 * DepthToSpace (NHWC, TF channel order: block (ry, rx) holds channels [(ry*s + rx)*C, +C)) fused
 * with a crop: returns rows [top, top+outH) and columns [left, left+outW) of the interleaved
 * image. The stock DepthToSpace kernel walks element by element (~100 ms for 3.4M floats); this
 * is one memmove per output pixel.
 */
export function depthToSpaceCrop(
  s: Scratch,
  x: Info,
  block: number,
  top: number,
  left: number,
  outH: number,
  outW: number,
): Info {
  const [n, h, w, cb] = x.shape as Shape4;
  const c = cb / (block * block);
  if (!Number.isInteger(c)) throw new Error(`depthToSpaceCrop: ${cb} channels not divisible by ${block}^2`);
  if (top < 0 || left < 0 || top + outH > h * block || left + outW > w * block) {
    throw new Error(`depthToSpaceCrop: crop outside ${h * block}x${w * block}`);
  }
  const out = s.alloc([n, outH, outW, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  let o = heapOffset(s.backend, out).offset;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < outH; y++) {
      const py = y + top;
      const u = Math.floor(py / block);
      const ry = py - u * block;
      const rowSrc = src + (b * h + u) * w * cb + ry * block * c;
      for (let xx = 0; xx < outW; xx++) {
        const px = xx + left;
        const v = Math.floor(px / block);
        const from = rowSrc + v * cb + (px - v * block) * c;
        heap.copyWithin(o, from, from + c);
        o += c;
      }
    }
  }
  return out;
}

/**
 * dst[n, y0 + i*sh, x0 + j*sw] = src[n, i, j] for every pixel of src (which must land inside dst);
 * the other pixels of dst are left as they are. Interleaves the output phases of a strided
 * input gradient: one memmove per pixel (a run of pixels when sw = 1).
 */
export function scatterStrided(s: Scratch, src: Info, dst: Info, y0: number, x0: number, sh: number, sw: number): void {
  const [n, h, w, c] = src.shape as Shape4;
  const [dn, dh, dw, dc] = dst.shape as Shape4;
  if (dn !== n || dc !== c || y0 < 0 || x0 < 0 || y0 + (h - 1) * sh >= dh || x0 + (w - 1) * sw >= dw) {
    throw new Error(`scatterStrided: [${src.shape}] at (${y0}, ${x0}) step (${sh}, ${sw}) outside [${dst.shape}]`);
  }
  const { heap, offset } = heapOffset(s.backend, src);
  const out = heapOffset(s.backend, dst).offset;
  let from = offset;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      const row = out + ((b * dh + y0 + i * sh) * dw + x0) * c;
      if (sw === 1) {
        heap.copyWithin(row, from, from + w * c);
        from += w * c;
        continue;
      }
      for (let j = 0; j < w; j++, from += c) heap.copyWithin(row + j * sw * c, from, from + c);
    }
  }
}
