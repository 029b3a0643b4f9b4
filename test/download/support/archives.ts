/**
 * Builds real archives in memory for the tests: tar (ustar, GNU long names, pax headers, links)
 * written byte by byte from the POSIX layout, gzip via zlib, and zip (stored or deflated, with
 * Unix symlinks). Independent of the code under test, so a reader bug cannot cancel a writer bug.
 */
import { createHash, randomBytes } from 'node:crypto';
import { deflateRawSync, gzipSync } from 'node:zlib';

export interface TarSpec {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo';
  data?: Buffer | string;
  linkTarget?: string;
  /** How to store a name over 100 bytes (default 'gnu'). */
  longNames?: 'gnu' | 'pax';
}

const TYPEFLAG = { file: '0', dir: '5', symlink: '2', hardlink: '1', fifo: '6' } as const;

function header(fields: { name: string; size: number; typeflag: string; linkname?: string; magic: 'ustar' | 'gnu'; prefix?: string }): Buffer {
  const h = Buffer.alloc(512);
  const put = (text: string, offset: number, length: number) => {
    const b = Buffer.from(text, 'utf8');
    if (b.length > length) throw new Error(`tar field too long: ${text}`);
    b.copy(h, offset);
  };
  const octal = (n: number, offset: number, length: number) => put(n.toString(8).padStart(length - 1, '0') + '\0', offset, length);
  put(fields.name, 0, 100);
  octal(0o644, 100, 8);
  octal(1000, 108, 8);
  octal(1000, 116, 8);
  octal(fields.size, 124, 12);
  octal(1_700_000_000, 136, 12);
  h.fill(0x20, 148, 156);
  put(fields.typeflag, 156, 1);
  put(fields.linkname ?? '', 157, 100);
  if (fields.magic === 'ustar') {
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    if (fields.prefix) put(fields.prefix, 345, 155);
  } else {
    h.write('ustar  \0', 257, 'latin1');
  }
  put('user', 265, 32);
  put('user', 297, 32);
  let sum = 0;
  for (const byte of h) sum += byte;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

function padded(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return pad ? [data, Buffer.alloc(pad)] : [data];
}

function paxRecords(records: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

export function buildTar(entries: TarSpec[], options: { endBlocks?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    let name = e.name;
    let linkname = e.linkTarget ?? '';
    const tooLong = (s: string) => Buffer.byteLength(s) > 100;
    if (tooLong(name) || tooLong(linkname)) {
      if ((e.longNames ?? 'gnu') === 'gnu') {
        for (const [flag, value] of [['L', name], ['K', linkname]] as const) {
          if (!tooLong(value)) continue;
          const content = Buffer.from(value + '\0', 'utf8');
          parts.push(header({ name: '././@LongLink', size: content.length, typeflag: flag, magic: 'gnu' }), ...padded(content));
        }
      } else {
        const records: Record<string, string> = {};
        if (tooLong(name)) records.path = name;
        if (tooLong(linkname)) records.linkpath = linkname;
        const content = paxRecords(records);
        parts.push(header({ name: 'PaxHeaders/x', size: content.length, typeflag: 'x', magic: 'ustar' }), ...padded(content));
      }
      if (tooLong(name)) name = Buffer.from(name).subarray(0, 99).toString('latin1').replace(/[^\x20-\x7e]/g, '_');
      if (tooLong(linkname)) linkname = 'truncated';
    }
    parts.push(header({ name, size: data.length, typeflag: TYPEFLAG[type], linkname, magic: e.longNames === 'pax' ? 'ustar' : 'gnu' }));
    parts.push(...padded(data));
  }
  if (options.endBlocks ?? true) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A ustar entry whose long name is split into prefix + name, as POSIX writers do. */
export function ustarPrefixed(prefix: string, name: string, data: string): Buffer {
  const body = Buffer.from(data);
  return Buffer.concat([header({ name, prefix, size: body.length, typeflag: '0', magic: 'ustar' }), ...padded(body)]);
}

export function buildTgz(entries: TarSpec[]): Buffer {
  return gzipSync(buildTar(entries));
}

// --- zip ---

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipSpec {
  name: string;
  data?: Buffer | string;
  /** Stored as a Unix symlink whose content is the target. */
  symlinkTarget?: string;
}

export function buildZip(entries: ZipSpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const isDir = e.name.endsWith('/');
    const raw = e.symlinkTarget !== undefined ? Buffer.from(e.symlinkTarget) : Buffer.from(e.data ?? '');
    const deflate = raw.length > 64 && e.symlinkTarget === undefined;
    const stored = deflate ? deflateRawSync(raw) : raw;
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(raw);
    const method = deflate ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, stored);
    const mode = e.symlinkTarget !== undefined ? 0o120777 : isDir ? 0o040755 : 0o100644;
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + stored.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// --- helpers ---

export function md5FirstMib(buf: Buffer): string {
  return createHash('md5').update(buf.subarray(0, 1 << 20)).digest('hex');
}

/**
 * A miniature oxford-iiit-pet.tgz: `oxford-iiit-pet/images/*.jpg` (incompressible, so the archive
 * is over 1 MiB and md5-first-mib differs from a whole-file md5), the three `.mat` files the real
 * one has, and `annotations/`.
 */
export function miniPets(photos = 24, photoBytes = 64 << 10): { tgz: Buffer; names: string[] } {
  const breeds = ['Abyssinian', 'Bengal', 'american_bulldog', 'beagle'];
  const entries: TarSpec[] = [
    { name: 'oxford-iiit-pet/', type: 'dir' },
    { name: 'oxford-iiit-pet/images/', type: 'dir' },
  ];
  const names: string[] = [];
  for (let i = 0; i < photos; i++) {
    const name = `${breeds[i % breeds.length]}_${i + 1}.jpg`;
    names.push(name);
    entries.push({ name: `oxford-iiit-pet/images/${name}`, data: randomBytes(photoBytes) });
  }
  for (const mat of ['Abyssinian_100.mat', 'Abyssinian_101.mat', 'Abyssinian_102.mat']) {
    entries.push({ name: `oxford-iiit-pet/images/${mat}`, data: randomBytes(100) });
  }
  entries.push({ name: 'oxford-iiit-pet/annotations/', type: 'dir' }, { name: 'oxford-iiit-pet/annotations/list.txt', data: '#Image CLASS-ID SPECIES BREED ID\n' });
  return { tgz: buildTgz(entries), names };
}
