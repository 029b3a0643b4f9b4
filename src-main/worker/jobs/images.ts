/**
 * Small JPEG previews as data: URLs (the renderer's Content-Security-Policy allows images from
 * data: and the app itself only, and this keeps every pixel inside the one API message).
 */
import sharp from 'sharp';
import type { RgbImage } from '../../engine/data/decode.js';

const QUALITY = 82;

/** Raw RGB pixels (e.g. a `showBatch` crop) as a JPEG data: URL, scaled to `side` if larger. */
export async function rgbToDataUrl(image: RgbImage, side?: number): Promise<string> {
  let pipeline = sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: 3 },
  });
  // Tiny training sizes (32 px) are shown enlarged with hard pixels, so a person sees what the model sees.
  if (side && side !== image.width) pipeline = pipeline.resize(side, side, { kernel: side > image.width ? 'nearest' : 'lanczos3' });
  const jpeg = await pipeline.jpeg({ quality: QUALITY }).toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

/**
 * A thumbnail of an image file, EXIF-rotated, fitted inside `side` x `side` (nothing cropped:
 * a person checking a prediction should see the whole photo). Throws a message naming the file.
 */
export async function fileThumbnail(file: string, side: number): Promise<string> {
  try {
    const jpeg = await sharp(file, { limitInputPixels: 100_000_000, animated: false })
      .rotate()
      .flatten({ background: '#ffffff' })
      .resize(side, side, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: QUALITY })
      .toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  } catch (err) {
    throw new Error(`Cannot show ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
}
