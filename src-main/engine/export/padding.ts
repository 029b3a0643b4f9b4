/**
 * Window geometry for the ONNX translation: Keras/TF padding rules turned into the explicit pads
 * ONNX operators take, and output sizes. All sizes are per spatial axis.
 */

/** A Keras size argument (kernel_size, strides, ...): one number for both axes, or [h, w]. */
export function pair(v: unknown, what: string, layer: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((n) => typeof n === 'number')) return [v[0], v[1]];
  throw new Error(`Layer "${layer}": ${what} ${JSON.stringify(v)} is not one number or two`);
}

/** TF's 'same' padding along one axis: [before, after], the odd pixel after. */
export function samePads(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const extent = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + extent - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

export function outSize(size: number | null, padTotal: number, kernel: number, stride: number, dilation: number): number | null {
  if (size === null) return null;
  const extent = (kernel - 1) * dilation + 1;
  return Math.floor((size + padTotal - extent) / stride) + 1;
}

/**
 * For a max-pool over an image zero-padded by `zero` and then padded by `same` (ignored, -inf):
 * 0 where the window covers a zero-padding cell, -inf elsewhere, shape [outH, outW].
 */
export function zeroWindowMask(h: number, w: number, outH: number, outW: number, kh: number, kw: number, sh: number, sw: number, zero: number[], same: number[]): Float32Array {
  // Per axis, in the coordinates of the fully padded input: the zero-padded span and the real span.
  const axis = (size: number, zb: number, za: number, sb: number) => ({ padded: [sb, sb + zb + size + za], real: [sb + zb, sb + zb + size] });
  const rows = axis(h, zero[0], zero[1], same[0]);
  const cols = axis(w, zero[2], zero[3], same[2]);
  const clip = (start: number, k: number, span: number[]) => [Math.max(start, span[0]), Math.min(start + k, span[1])];
  const mask = new Float32Array(outH * outW);
  for (let i = 0; i < outH; i++) {
    for (let j = 0; j < outW; j++) {
      const [r0, r1] = clip(i * sh, kh, rows.padded);
      const [c0, c1] = clip(j * sw, kw, cols.padded);
      const touchesImage = r0 < r1 && c0 < c1;
      const insideReal = r0 >= rows.real[0] && r1 <= rows.real[1] && c0 >= cols.real[0] && c1 <= cols.real[1];
      mask[i * outW + j] = touchesImage && !insideReal ? 0 : -Infinity;
    }
  }
  return mask;
}
