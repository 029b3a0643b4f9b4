/**
 * Pixel normalisation: `(x/255 - mean) / std` per channel. ImageNet statistics for torchvision
 * models (fastai's `imagenet_stats`); Keras MobileNets want `x/127.5 - 1`, which is mean 0.5 and
 * std 0.5 on the same 0..1 scale, so one representation covers both.
 */
export interface Normalization {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

export const IMAGENET_NORMALIZATION: Normalization = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
export const MINUS_ONE_TO_ONE_NORMALIZATION: Normalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/**
 * Writes normalised floats for `rgb` (interleaved uint8, HWC) into `out` at `offset`.
 * Computed as `x * scale + shift` with per-channel constants (one multiply-add per value).
 */
export function normalizeInto(rgb: Uint8Array, out: Float32Array, offset: number, norm: Normalization): void {
  const scale = norm.std.map((s) => 1 / (255 * s));
  const shift = norm.mean.map((m, c) => -m / norm.std[c]);
  const [s0, s1, s2] = scale;
  const [h0, h1, h2] = shift;
  for (let i = 0; i < rgb.length; i += 3) {
    out[offset + i] = rgb[i] * s0 + h0;
    out[offset + i + 1] = rgb[i + 1] * s1 + h1;
    out[offset + i + 2] = rgb[i + 2] * s2 + h2;
  }
}
