/**
 * Tells an image's real format from its first bytes: names lie (the Pets set has a GIF and a PNG
 * named `.jpg`), and a clear "this is not an image" beats a decoder's cryptic error.
 */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'heif' | 'bmp' | 'ico' | 'svg';

/** Formats the decoder (sharp/libvips) reads; the others are recognised only to explain the skip. */
export const DECODABLE_FORMATS: ReadonlySet<ImageFormat> = new Set(['jpeg', 'png', 'gif', 'webp', 'tiff', 'avif', 'heif', 'svg']);

/** Bytes needed by `sniffImageFormat` to decide. */
export const SNIFF_BYTES = 512;

function ascii(buf: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...buf.subarray(start, end));
}

export function sniffImageFormat(buf: Uint8Array): ImageFormat | undefined {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (buf.length >= 8 && ascii(buf, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (buf.length >= 6 && (ascii(buf, 0, 6) === 'GIF87a' || ascii(buf, 0, 6) === 'GIF89a')) return 'gif';
  if (buf.length >= 12 && ascii(buf, 0, 4) === 'RIFF' && ascii(buf, 8, 12) === 'WEBP') return 'webp';
  if (buf.length >= 4 && (ascii(buf, 0, 4) === 'II*\0' || ascii(buf, 0, 4) === 'MM\0*')) return 'tiff';
  if (buf.length >= 12 && ascii(buf, 4, 8) === 'ftyp') {
    const brand = ascii(buf, 8, 12);
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'hevx', 'mif1', 'msf1'].includes(brand)) return 'heif';
  }
  if (buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d) return 'bmp';
  if (buf.length >= 4 && buf[0] === 0 && buf[1] === 0 && buf[2] === 1 && buf[3] === 0) return 'ico';
  const head = ascii(buf, 0, Math.min(buf.length, SNIFF_BYTES)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'svg';
  return undefined;
}

/** A short guess at what a non-image file is, for the skip message. */
export function describeNonImage(buf: Uint8Array): string {
  if (buf.length === 0) return 'the file is empty (0 bytes)';
  const head = buf.subarray(0, Math.min(buf.length, SNIFF_BYTES));
  if (head[0] === 0x50 && head[1] === 0x4b) return 'the file is a zip archive, not an image';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'the file is gzip-compressed, not an image';
  if (ascii(head, 0, 5) === '%PDF-') return 'the file is a PDF, not an image';
  const printable = head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 128);
  if (printable) return 'the file contains text, not image data';
  return 'the file is not in any known image format';
}
