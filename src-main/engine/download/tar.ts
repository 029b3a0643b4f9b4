/**
 * A streaming tar reader: POSIX ustar, GNU long names/links (`L`/`K`) and pax extended headers
 * (`x` per entry, `g` global), as produced by GNU tar, bsdtar and Python's tarfile. It only parses;
 * writing to disk, and deciding what is safe to write, is the extractor's job.
 *
 * Usage: `for await (const { entry, body } of readTar(chunks))`; consume `body` before the next
 * iteration, or leave it and the reader skips it.
 */
import { ByteReader } from './byte-reader.js';
import { ArchiveFormatError } from './errors.js';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** The name as stored (after long-name/pax resolution), not yet checked for safety. */
  path: string;
  type: TarEntryType;
  /** The raw type flag, e.g. '0', '5', '2'; useful in messages for 'other'. */
  typeflag: string;
  size: number;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Symlink target (relative to the link's folder) or hardlink target (an archive path). */
  linkTarget?: string;
}

const BLOCK = 512;
/** Long names and pax headers are read into memory; a crafted archive must not make that unbounded. */
const MAX_META_BYTES = 1 << 20;

export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  const reader = new ByteReader(source);
  const globalPax: Record<string, string> = {};
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;

  for (;;) {
    const headerOffset = reader.position;
    const header = await reader.readExact(BLOCK, 'a tar header');
    // Archives without the end-of-archive blocks exist (and GNU tar accepts them); a gzip cut short is caught by gunzip.
    if (!header) return;
    if (isZeroBlock(header)) {
      await reader.drain();
      return;
    }
    verifyChecksum(header, headerOffset);

    const typeflag = header[156] === 0 ? '0' : String.fromCharCode(header[156]);
    let size = parseNumber(header, 124, 12, headerOffset);
    const paxSize = pax.size ?? globalPax.size;
    if (paxSize !== undefined && /^\d+$/.test(paxSize)) size = Number(paxSize);
    if (size < 0 || !Number.isSafeInteger(size)) throw new ArchiveFormatError(`Bad entry size ${size} in the tar header at offset ${headerOffset}; the archive is damaged`);
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;

    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      if (size > MAX_META_BYTES) throw new ArchiveFormatError(`A tar ${typeflag} header at offset ${headerOffset} claims ${size} bytes; the archive is damaged`);
      const data = (await reader.readExact(size, 'a tar extended header')) ?? Buffer.alloc(0);
      await reader.skip(padding, 'tar padding');
      if (typeflag === 'L') longName = cString(data);
      else if (typeflag === 'K') longLink = cString(data);
      else if (typeflag === 'x') pax = { ...pax, ...parsePax(data, headerOffset) };
      else Object.assign(globalPax, parsePax(data, headerOffset));
      continue;
    }

    const magic = header.subarray(257, 263).toString('latin1');
    // POSIX ustar splits long names into prefix + name; GNU tar uses those bytes for other fields.
    const prefix = magic === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
    const rawName = cString(header.subarray(0, 100));
    const name = pax.path ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
    const linkTarget = pax.linkpath ?? longLink ?? cString(header.subarray(157, 257));

    let type: TarEntryType;
    if (typeflag === '0' || typeflag === '7') type = name.endsWith('/') ? 'directory' : 'file';
    else if (typeflag === '5') type = 'directory';
    else if (typeflag === '2') type = 'symlink';
    else if (typeflag === '1') type = 'hardlink';
    else type = 'other';

    const entry: TarEntry = {
      path: name,
      type,
      typeflag,
      // Hard links and symlinks carry no data even if a (buggy) size says otherwise.
      size: type === 'hardlink' || type === 'symlink' || type === 'directory' ? 0 : size,
      mode: parseNumber(header, 100, 8, headerOffset),
      mtime: Number(pax.mtime ?? parseNumber(header, 136, 12, headerOffset)),
      linkTarget: type === 'symlink' || type === 'hardlink' ? linkTarget : undefined,
    };
    pax = {};
    longName = undefined;
    longLink = undefined;

    // Counts what the consumer took, so whatever it left (all of it, or the rest after a `break`) is skipped.
    let remaining = entry.size;
    const what = `"${name}"`;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of reader.stream(remaining, what)) {
          remaining -= chunk.length;
          yield chunk;
        }
      },
    };
    yield { entry, body };
    await reader.skip(remaining + (size - entry.size) + padding, what);
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function verifyChecksum(header: Buffer, offset: number): void {
  const stored = parseNumber(header, 148, 8, offset);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : header[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte; // some old tars summed signed chars
  }
  if (stored !== unsigned && stored !== signed) {
    throw new ArchiveFormatError(`Bad tar header checksum at offset ${offset}: this is not a tar archive, or it is damaged`);
  }
}

/** Octal text, or GNU's base-256 (high bit set) for values that do not fit, like sizes over 8 GiB. */
function parseNumber(header: Buffer, start: number, length: number, offset: number): number {
  const field = header.subarray(start, start + length);
  if (field[0] & 0x80) {
    // Big-endian two's complement over the whole field; negative only for pre-1970 mtimes in practice.
    let value = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    return field[0] & 0x40 ? value - 2 ** (8 * field.length - 1) : value;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArchiveFormatError(`Bad number "${text}" in the tar header at offset ${offset}; the archive is damaged`);
  return parseInt(text, 8);
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString('utf8');
}

/** Pax records: "<length> <key>=<value>\n", where length counts the whole record in bytes. */
function parsePax(data: Buffer, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, pos);
    const length = Number(data.subarray(pos, space).toString('latin1'));
    if (space === -1 || !Number.isInteger(length) || length <= 0 || pos + length > data.length) {
      throw new ArchiveFormatError(`Bad pax header record at offset ${offset}; the archive is damaged`);
    }
    const record = data.subarray(space + 1, pos + length - 1).toString('utf8'); // drops the trailing \n
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return out;
}
