/**
 * Reads `.safetensors` files (the format of Hugging Face / timm checkpoints and of our PyTorch fixtures).
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the raw
 * little-endian, row-major tensor bytes; offsets are relative to the end of the header.
 *
 * Floating tensors (F32, and F16/BF16 upcast exactly) come back as Float32Array. Integer and bool
 * tensors (e.g. BatchNorm's I64 `num_batches_tracked`) carry no weights we use: they are listed in
 * `skipped` with their shape, not decoded. Anything else is an error that names the tensor.
 */
import { open, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';

export type FloatDtype = 'F32' | 'F16' | 'BF16';

const FLOAT_BYTES: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };
const SKIPPED_BYTES: Record<string, number> = { I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range inside the data section (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Bytes before the data section: 8 + header length. */
  dataStart: number;
  /** Size of the whole file the header describes. */
  expectedFileSize: number;
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

export interface FloatTensor {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  /** Where it came from, for error messages. */
  source: string;
  metadata: Record<string, string>;
  /** Floating tensors by name, upcast to float32, in file order. */
  tensors: Map<string, FloatTensor>;
  /** Integer/bool tensors that were not decoded (name, dtype, shape). */
  skipped: Array<{ name: string; dtype: string; shape: number[] }>;
}

/** A header bigger than this is not a checkpoint header (the format itself caps it at 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function fail(source: string, message: string): never {
  throw new Error(`${source}: ${message}`);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses and validates the JSON header given the first bytes of a file (at least 8 + header length). */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  if (bytes.length < 8) fail(source, `not a safetensors file: ${fileSize} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES) || Number(headerLength) + 8 > fileSize) {
    fail(source, `not a safetensors file or truncated: header length ${headerLength} does not fit in ${fileSize} bytes`);
  }
  const dataStart = 8 + Number(headerLength);
  if (bytes.length < dataStart) fail(source, `header needs ${dataStart} bytes, only ${bytes.length} were read`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    fail(source, `header is not valid UTF-8 JSON (${(err as Error).message}); the file is damaged or not safetensors`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(source, 'header is not a JSON object');

  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = info?.shape;
    const offsets = info?.data_offsets;
    if (typeof info?.dtype !== 'string') fail(source, `tensor "${name}" has no dtype`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(source, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      fail(source, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const dtype = info.dtype;
    const itemBytes = FLOAT_BYTES[dtype as FloatDtype] ?? SKIPPED_BYTES[dtype];
    if (itemBytes === undefined) {
      fail(source, `tensor "${name}" has dtype ${dtype}, which this reader does not support (F32, F16, BF16; integer/bool tensors are skipped); re-save the checkpoint as float32`);
    }
    const [begin, end] = offsets as [number, number];
    const want = numel(shape as number[]) * itemBytes;
    if (end - begin !== want) {
      fail(source, `tensor "${name}" (${dtype} ${JSON.stringify(shape)}) should hold ${want} bytes but its offsets span ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const dataBytes = entries.reduce((m, e) => Math.max(m, e.end), 0);
  const expectedFileSize = dataStart + dataBytes;
  if (expectedFileSize > fileSize) {
    fail(source, `file is truncated: its header describes ${expectedFileSize} bytes but it has ${fileSize}; delete it and download it again`);
  }
  return { dataStart, expectedFileSize, entries, metadata };
}

let f16Table: Float32Array | undefined;

/** All 65,536 half-precision values as float32: one table lookup per element is exact and fast. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) table[h] = sign * fraction * 2 ** -24; // zero and subnormals
    else if (exponent === 31) table[h] = fraction ? NaN : sign * Infinity;
    else table[h] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  f16Table = table;
  return table;
}

/** Decodes one floating tensor's bytes (any alignment) to float32. */
export function decodeFloat(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  const count = bytes.length / FLOAT_BYTES[dtype];
  // Copy into a fresh, aligned buffer first: offsets inside a file need not be multiples of 4.
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  if (dtype === 'F32') return new Float32Array(aligned.buffer, 0, count);
  const halves = new Uint16Array(aligned.buffer, 0, count);
  const out = new Float32Array(count);
  if (dtype === 'F16') {
    const table = halfTable();
    for (let i = 0; i < count; i++) out[i] = table[halves[i]];
  } else {
    // bfloat16 is the top half of a float32: shifting it back up is the exact conversion.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
  }
  return out;
}

/** Decodes a whole safetensors file held in memory. */
export function parseSafetensors(bytes: Uint8Array, source = '<safetensors buffer>'): SafetensorsFile {
  // Typed arrays use the host byte order; safetensors is little-endian. Every platform Node ships
  // for is little-endian, but say so instead of returning garbage if that ever changes.
  if (endianness() !== 'LE') fail(source, 'reading safetensors needs a little-endian machine');
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  const tensors = new Map<string, FloatTensor>();
  const skipped: SafetensorsFile['skipped'] = [];
  for (const e of header.entries) {
    if (!(e.dtype in FLOAT_BYTES)) {
      skipped.push({ name: e.name, dtype: e.dtype, shape: e.shape });
      continue;
    }
    const slice = bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype as FloatDtype, shape: e.shape, data: decodeFloat(e.dtype as FloatDtype, slice) });
  }
  return { source, metadata: header.metadata, tensors, skipped };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const bytes = await readFile(path);
  return parseSafetensors(bytes, path);
}

/**
 * Reads only the header (cheap even for 100 MB checkpoints) and checks the file is complete:
 * what a cache uses to tell a finished download from a damaged one.
 */
export async function inspectSafetensors(path: string): Promise<SafetensorsHeader & { fileSize: number }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const lengthBytes = new Uint8Array(8);
    await fh.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
    const want = Math.min(size, 8 + Math.min(headerLength, MAX_HEADER_BYTES));
    const head = new Uint8Array(want);
    await fh.read(head, 0, want, 0);
    const header = parseSafetensorsHeader(head, size, path);
    if (header.expectedFileSize !== size) {
      fail(path, `file has ${size - header.expectedFileSize} bytes after the last tensor; it is damaged or not a safetensors checkpoint`);
    }
    return { ...header, fileSize: size };
  } finally {
    await fh.close();
  }
}
