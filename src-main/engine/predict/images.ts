/**
 * Images as a model sees them at inference: fastai's validation transform (the centred square crop,
 * resized to size x size, see data/decode.ts), as interleaved 8-bit RGB. A file that cannot be read
 * or decoded yields a reason instead of pixels, so one bad photo never stops a batch.
 */
import { readFile } from 'node:fs/promises';
import { decodeImage, DecodeError } from '../data/decode.js';

export type DecodedForPrediction = { ok: true; pixels: Uint8Array } | { ok: false; error: string };

function describeReadError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'the file does not exist; check the path';
    case 'EISDIR':
      return 'this is a folder, not an image file';
    case 'EACCES':
    case 'EPERM':
      return 'the file cannot be read (permission denied)';
    default:
      return `the file cannot be read (${err.code ?? err.message})`;
  }
}

export async function decodeForPrediction(file: string, size: number): Promise<DecodedForPrediction> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return { ok: false, error: describeReadError(err as NodeJS.ErrnoException) };
  }
  try {
    const image = await decodeImage(bytes, { size, mode: 'valid' });
    return { ok: true, pixels: image.data };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, error: err.message };
    throw err;
  }
}
