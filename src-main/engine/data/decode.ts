/**
 * Decoding one image file into the RGB pixels the model sees, with sharp (libvips, off the JS
 * thread): EXIF orientation applied, alpha flattened onto white, greyscale/CMYK/16-bit converted
 * to 8-bit sRGB, then fastai's Resize crop. Every failure becomes a `DecodeError` whose message
 * says what is wrong with the file and what to do.
 */
import sharp from 'sharp';
import { centreCropBox, shortSideSize, type CropBox } from './crop.js';
import { DECODABLE_FORMATS, describeNonImage, sniffImageFormat, type ImageFormat } from './image-format.js';

/** 100 megapixels: far above any photo worth training on, far below what exhausts memory. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export class DecodeError extends Error {
  override name = 'DecodeError';
}

export interface RgbImage {
  /** Interleaved 8-bit RGB, row-major (HWC). */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodedImage extends RgbImage {
  format: ImageFormat;
  /** Size of the source after EXIF rotation. */
  sourceWidth: number;
  sourceHeight: number;
}

/**
 * `valid`: fastai's validation crop (centred largest square) resized to size x size.
 * `train`: the whole image with its short side resized to `size`; each epoch crops a random square.
 */
export type DecodeMode = 'valid' | 'train';

export interface DecodeOptions {
  size: number;
  mode: DecodeMode;
  maxPixels?: number;
}

const WHITE = { r: 255, g: 255, b: 255 };

function explainSharpError(message: string): string {
  if (/premature end|truncat|unexpected end|short read|not enough data|Invalid PNG|read error/i.test(message)) {
    return `the image data is truncated or damaged (${message.trim()}); re-download or re-export the file`;
  }
  if (/unsupported image format/i.test(message)) return 'the image format is not supported; convert it to JPEG or PNG';
  return `the image could not be decoded (${message.trim()}); the file is probably corrupt — open it in an image viewer to check`;
}

const megapixels = (n: number) => `${Number((n / 1e6).toPrecision(3))} megapixels`;

/** Reads the header: real format, oriented size; enforces the pixel limit before any decoding. */
export async function probeImage(buf: Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): Promise<{ format: ImageFormat; width: number; height: number }> {
  const format = sniffImageFormat(buf);
  if (!format) throw new DecodeError(describeNonImage(buf));
  if (!DECODABLE_FORMATS.has(format)) {
    throw new DecodeError(`${format.toUpperCase()} images are not supported; convert the file to JPEG or PNG`);
  }
  let meta;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new DecodeError(explainSharpError((err as Error).message));
  }
  if (!meta.width || !meta.height) throw new DecodeError('the image header has no size; the file is probably corrupt');
  const pixels = meta.width * meta.height;
  if (pixels > maxPixels) {
    throw new DecodeError(
      `the image is ${meta.width}x${meta.height} (${megapixels(pixels)}), above the ${megapixels(maxPixels)} safety limit; shrink it or raise the limit (--max-pixels)`,
    );
  }
  const rotated = (meta.orientation ?? 1) >= 5;
  return { format, width: rotated ? meta.height : meta.width, height: rotated ? meta.width : meta.height };
}

export async function decodeImage(buf: Uint8Array, options: DecodeOptions): Promise<DecodedImage> {
  try {
    return await decodeLock.shared(() => decodeOnce(buf, options));
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    // libvips keeps one error buffer per process, which any concurrent pipeline may clear: a
    // failing file can then report "Unknown error". Failures are rare, so the file is decoded
    // again with nothing else running, to get its real reason (or its pixels, if it now works).
    return decodeLock.exclusive(() => decodeOnce(buf, options));
  }
}

/** Many shared holders at once, or one exclusive holder alone. */
class SharedExclusiveLock {
  private active = 0;
  private exclusiveTail: Promise<void> = Promise.resolve();
  private drained: (() => void) | undefined;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    // Re-check after waking: an exclusive holder may have queued while this one waited.
    for (;;) {
      const tail = this.exclusiveTail;
      await tail;
      if (tail === this.exclusiveTail) break;
    }
    this.active++;
    try {
      return await fn();
    } finally {
      if (--this.active === 0) this.drained?.();
    }
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusiveTail.then(async () => {
      if (this.active > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
      return fn();
    });
    this.exclusiveTail = run.then(() => undefined, () => undefined);
    return run;
  }
}

const decodeLock = new SharedExclusiveLock();

async function decodeOnce(buf: Uint8Array, options: DecodeOptions): Promise<DecodedImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const { format, width, height } = await probeImage(buf, maxPixels);
  const size = options.size;
  // failOn 'truncated' rejects cut-off files instead of silently padding them with grey.
  let pipeline = sharp(buf, { failOn: 'truncated', limitInputPixels: maxPixels, animated: false }).autoOrient();
  let outW: number;
  let outH: number;
  if (options.mode === 'valid') {
    const box: CropBox = centreCropBox(width, height, size);
    pipeline = pipeline.extract(box).resize(size, size, { fit: 'fill', kernel: 'linear' });
    outW = outH = size;
  } else {
    ({ width: outW, height: outH } = shortSideSize(width, height, size));
    pipeline = pipeline.resize(outW, outH, { fit: 'fill', kernel: 'linear' });
  }
  try {
    const { data, info } = await pipeline
      .flatten({ background: WHITE })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== outW || info.height !== outH) {
      throw new DecodeError(`decoder returned ${info.width}x${info.height}x${info.channels}, expected ${outW}x${outH}x3`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: outW, height: outH, format, sourceWidth: width, sourceHeight: height };
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(explainSharpError((err as Error).message));
  }
}
