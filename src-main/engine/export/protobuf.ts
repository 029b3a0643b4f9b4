/**
 * The protocol-buffers wire format, as much of it as ONNX files need: varints, length-delimited
 * fields (strings, bytes, packed numbers, nested messages) and 32-bit floats.
 *
 * Writing keeps a message as a list of byte chunks plus their total length, so nesting a message
 * only prepends its tag and length: a tensor's raw data (hundreds of MB for a ResNet-50) is never
 * copied until the one final concatenation. Reading is a plain cursor, used to inspect files we
 * wrote (tests, and checks on foreign `.onnx` files).
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const textEncoder = new TextEncoder();

function varintBytes(value: number | bigint): Uint8Array {
  // int64 fields hold negative numbers as their 64-bit two's complement: ten bytes on the wire.
  let v = typeof value === 'bigint' ? value : BigInt(value);
  if (v < 0n) v = (1n << 64n) + v;
  if (v < 0n || v >= 1n << 64n) throw new RangeError(`varint out of range: ${value}`);
  const out: number[] = [];
  if (v <= 0x7fffffffn) {
    // Fast path without BigInt arithmetic for the common small values.
    let n = Number(v);
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return Uint8Array.from(out);
  }
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** Little-endian bytes of float32 values (a view, not a copy, on little-endian machines). */
export function float32Bytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

export class ProtoWriter {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private tag(field: number, wire: number): void {
    this.push(varintBytes(field * 8 + wire));
  }

  /** int32, int64, enum and bool fields. */
  varint(field: number, value: number | bigint | boolean): this {
    this.tag(field, WIRE_VARINT);
    this.push(varintBytes(typeof value === 'boolean' ? Number(value) : value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.push(varintBytes(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, child: ProtoWriter): this {
    this.tag(field, WIRE_LEN);
    this.push(varintBytes(child.length));
    for (const c of child.chunks) this.push(c);
    return this;
  }

  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const parts = values.map(varintBytes);
    const inner = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      inner.set(p, at);
      at += p.length;
    }
    return this.bytes(field, inner);
  }

  packedFloats(field: number, values: readonly number[]): this {
    return this.bytes(field, float32Bytes(Float32Array.from(values)));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export interface ProtoField {
  field: number;
  wire: number;
  /** Varint fields (as bigint, to keep int64 exact). */
  int?: bigint;
  /** Length-delimited fields. */
  bytes?: Uint8Array;
  /** Fixed32 fields, as float. */
  float?: number;
}

/** Reads the varint at `at`; returns its value (unsigned, as bigint) and the position after it. */
function readVarint(buf: Uint8Array, at: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (at >= buf.length) throw new Error('truncated varint');
    const b = buf[at++];
    result |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [result, at];
    shift += 7n;
    if (shift > 63n) throw new Error('varint longer than 10 bytes');
  }
}

/** Splits a message into its fields, in order. Throws on malformed input (truncated, bad wire type). */
export function readFields(buf: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let at = 0;
  while (at < buf.length) {
    let key: bigint;
    [key, at] = readVarint(buf, at);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new Error('field number 0');
    if (wire === WIRE_VARINT) {
      let int: bigint;
      [int, at] = readVarint(buf, at);
      fields.push({ field, wire, int });
    } else if (wire === WIRE_LEN) {
      let len: bigint;
      [len, at] = readVarint(buf, at);
      const end = at + Number(len);
      if (end > buf.length) throw new Error(`field ${field} runs past the end of its message`);
      fields.push({ field, wire, bytes: buf.subarray(at, end) });
      at = end;
    } else if (wire === WIRE_FIXED32) {
      if (at + 4 > buf.length) throw new Error('truncated fixed32');
      fields.push({ field, wire, float: new DataView(buf.buffer, buf.byteOffset + at, 4).getFloat32(0, true) });
      at += 4;
    } else if (wire === WIRE_FIXED64) {
      if (at + 8 > buf.length) throw new Error('truncated fixed64');
      fields.push({ field, wire });
      at += 8;
    } else {
      throw new Error(`unsupported wire type ${wire} for field ${field}`);
    }
  }
  return fields;
}

/** Converts a signed int64 read as an unsigned varint back to a JS number. */
export function int64(v: bigint): number {
  return Number(v >= 1n << 63n ? v - (1n << 64n) : v);
}

/** Unpacks a packed repeated int64 field. */
export function unpackVarints(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    let v: bigint;
    [v, at] = readVarint(bytes, at);
    out.push(int64(v));
  }
  return out;
}

export function decodeString(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
