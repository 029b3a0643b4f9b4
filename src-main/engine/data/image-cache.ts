/**
 * The decoded-image cache: resized RGB pixels on disk so later epochs (and later runs) never
 * decode a JPEG again. An entry's key is the hash of the file's bytes plus the decode settings,
 * so editing a photo or changing the image size rebuilds only the entries affected.
 *
 * Entry format: 4-byte magic "FSI1", width and height as uint32 LE, then width*height*3 bytes.
 * Entries are written to a temporary file and renamed, so a crash never leaves a torn entry;
 * an entry of the wrong length is treated as missing and rebuilt.
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RgbImage } from './decode.js';

const MAGIC = 0x31495346; // "FSI1" read as uint32 LE
const HEADER_BYTES = 12;
/** Bump when decoding changes in a way that alters pixels, so old entries are not reused. */
export const DECODER_VERSION = 1;

export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface CacheKeyParts {
  contentHash: string;
  size: number;
  mode: 'train' | 'valid';
}

export function cacheKey(parts: CacheKeyParts): string {
  return createHash('sha256').update(`v${DECODER_VERSION}|${parts.contentHash}|${parts.size}|${parts.mode}`).digest('hex').slice(0, 40);
}

export class ImageCache {
  constructor(readonly dir: string) {}

  private entryPath(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.rgb`);
  }

  async get(key: string): Promise<RgbImage | undefined> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.entryPath(key));
    } catch {
      return undefined;
    }
    if (buf.length < HEADER_BYTES || buf.readUInt32LE(0) !== MAGIC) return undefined;
    const width = buf.readUInt32LE(4);
    const height = buf.readUInt32LE(8);
    if (buf.length !== HEADER_BYTES + width * height * 3) return undefined;
    return { width, height, data: new Uint8Array(buf.buffer, buf.byteOffset + HEADER_BYTES, width * height * 3) };
  }

  async has(key: string): Promise<boolean> {
    try {
      const st = await fs.stat(this.entryPath(key));
      return st.size > HEADER_BYTES;
    } catch {
      return false;
    }
  }

  async put(key: string, image: RgbImage): Promise<void> {
    const file = this.entryPath(key);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(image.width, 4);
    header.writeUInt32LE(image.height, 8);
    const tmp = `${file}.${randomUUID()}.tmp`;
    await fs.writeFile(tmp, Buffer.concat([header, image.data]));
    await fs.rename(tmp, file);
  }
}
