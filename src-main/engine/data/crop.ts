/**
 * fastai's `Resize(size)` geometry (ResizeMethod.Crop) on a square target: crop the largest
 * square whose side is `int(m * size)` with `m = min(w, h) / size`, at `int(pct * slack)` along
 * each axis — pct 0.5 on the validation set, random on the training set — then resize it to size.
 * The float arithmetic is the same as Python's, including its truncations.
 */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export function fastaiCropBox(width: number, height: number, size: number, pctX: number, pctY: number): CropBox {
  const ratioW = width / size;
  const ratioH = height / size;
  const m = ratioW < ratioH ? ratioW : ratioH;
  const side = Math.trunc(m * size);
  return {
    left: Math.trunc(pctX * (width - side)),
    top: Math.trunc(pctY * (height - side)),
    width: side,
    height: side,
  };
}

/** The validation crop: centred. */
export function centreCropBox(width: number, height: number, size: number): CropBox {
  return fastaiCropBox(width, height, size, 0.5, 0.5);
}

/**
 * Size of an image scaled so its short side is `size` (the cached form of a training image, from
 * which each epoch cuts its random square without decoding the file again).
 */
export function shortSideSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.max(size, Math.round((height * size) / width)) };
  return { width: Math.max(size, Math.round((width * size) / height)), height: size };
}

/**
 * Offset of the training crop inside a short-side-scaled image from a uniform [0,1) draw, as
 * fastai's `int(pct * (w - side))`; only the long side has slack, so one draw is enough.
 */
export function randomCropOffset(width: number, height: number, size: number, u: number): { left: number; top: number } {
  return { left: Math.trunc(u * (width - size)), top: Math.trunc(u * (height - size)) };
}
