import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { inspectSafetensors, parseSafetensors, readSafetensors } from '../../src-main/engine/models/safetensors.js';
import { makeTempDir } from '../helpers/images.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Writes the format by hand (header length, JSON header, data) so the reader is tested against the spec, not itself. */
function encode(tensors: Record<string, RawTensor>, options: { metadata?: Record<string, string>; pad?: boolean } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  if (options.metadata) header.__metadata__ = options.metadata;
  let json = JSON.stringify(header);
  if (options.pad !== false) json += ' '.repeat((8 - (json.length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

const u16 = (...v: number[]) => new Uint8Array(new Uint16Array(v).buffer);
const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

describe('safetensors reader', () => {
  test('F16: normals, subnormals, signed zero, infinities and the largest half decode exactly', () => {
    // 0x3c00=1, 0xc000=-2, 0x3555≈1/3, 0x0001=2^-24 (smallest subnormal), 0x03ff (largest subnormal),
    // 0x8000=-0, 0x7bff=65504, 0x7c00=+inf, 0xfc00=-inf
    const file = parseSafetensors(encode({ h: { dtype: 'F16', shape: [3, 3], bytes: u16(0x3c00, 0xc000, 0x3555, 0x0001, 0x03ff, 0x8000, 0x7bff, 0x7c00, 0xfc00) } }));
    const t = file.tensors.get('h')!;
    assert.deepEqual(t.shape, [3, 3]);
    assert.deepEqual(Array.from(t.data), [1, -2, 0.333251953125, 2 ** -24, 1023 * 2 ** -24, -0, 65504, Infinity, -Infinity]);
    assert.ok(Object.is(t.data[5], -0));
    assert.ok(Number.isNaN(parseSafetensors(encode({ n: { dtype: 'F16', shape: [1], bytes: u16(0x7e00) } })).tensors.get('n')!.data[0]));
  });

  test('BF16 is the top half of a float32', () => {
    // 0x3f80=1, 0xc0a0=-5, 0x4049=3.140625, 0x0001 = smallest bf16 subnormal (2^-133)
    const t = parseSafetensors(encode({ b: { dtype: 'BF16', shape: [4], bytes: u16(0x3f80, 0xc0a0, 0x4049, 0x0001) } })).tensors.get('b')!;
    assert.deepEqual(Array.from(t.data), [1, -5, 3.140625, 2 ** -133]);
  });

  test('F32 at an offset that is not a multiple of 4, I64 skipped with its shape, metadata kept', () => {
    const bytes = encode(
      {
        odd: { dtype: 'U8', shape: [3], bytes: new Uint8Array([1, 2, 3]) },
        w: { dtype: 'F32', shape: [2, 2], bytes: f32(0.5, -1.25, 3e-8, 1e30) },
        'bn.num_batches_tracked': { dtype: 'I64', shape: [], bytes: new Uint8Array(8) },
      },
      { metadata: { format: 'pt' } },
    );
    const file = parseSafetensors(bytes, 'mem');
    assert.deepEqual([...file.tensors.keys()], ['w']);
    assert.deepEqual(Array.from(file.tensors.get('w')!.data), Array.from(new Float32Array([0.5, -1.25, 3e-8, 1e30])));
    assert.deepEqual(file.skipped, [
      { name: 'odd', dtype: 'U8', shape: [3] },
      { name: 'bn.num_batches_tracked', dtype: 'I64', shape: [] },
    ]);
    assert.deepEqual(file.metadata, { format: 'pt' });
  });

  test('errors name the file and the tensor', () => {
    const good = encode({ w: { dtype: 'F32', shape: [4], bytes: f32(1, 2, 3, 4) } });
    assert.throws(
      () => parseSafetensors(good.subarray(0, good.length - 4), 'cut.safetensors'),
      new RegExp(`cut\\.safetensors: file is truncated: its header describes ${good.length} bytes but it has ${good.length - 4}; delete it`),
    );
    assert.throws(() => parseSafetensors(encode({ w: { dtype: 'F32', shape: [3], bytes: f32(1, 2, 3, 4) } }), 'x'), /tensor "w" \(F32 \[3\]\) should hold 12 bytes but its offsets span 16/);
    assert.throws(() => parseSafetensors(encode({ q: { dtype: 'F8_E4M3', shape: [2], bytes: new Uint8Array(2) } }), 'x'), /tensor "q" has dtype F8_E4M3, which this reader does not support/);
    assert.throws(() => parseSafetensors(new Uint8Array(4), 'tiny'), /tiny: not a safetensors file: 4 bytes/);
    const badJson = encode({ w: { dtype: 'F32', shape: [1], bytes: f32(1) } });
    badJson[8] = 0x5b; // '{' -> '['
    assert.throws(() => parseSafetensors(badJson, 'bad'), /bad: header is not valid UTF-8 JSON/);
    const hugeHeader = new Uint8Array(16);
    new DataView(hugeHeader.buffer).setBigUint64(0, 1n << 40n, true);
    assert.throws(() => parseSafetensors(hugeHeader, 'huge'), /huge: not a safetensors file or truncated/);
  });

  test('inspect reads only the header and rejects truncated or padded files', async () => {
    const { dir, cleanup } = await makeTempDir('st-');
    try {
      const good = encode({ w: { dtype: 'F32', shape: [4], bytes: f32(1, 2, 3, 4) } });
      const file = path.join(dir, 'a.safetensors');
      await writeFile(file, good);
      const h = await inspectSafetensors(file);
      assert.equal(h.fileSize, good.length);
      assert.deepEqual(h.entries.map((e) => [e.name, e.dtype, e.shape]), [['w', 'F32', [4]]]);
      await writeFile(file, good.subarray(0, good.length - 1));
      await assert.rejects(inspectSafetensors(file), /file is truncated/);
      await writeFile(file, Buffer.concat([good, Buffer.from([0])]));
      await assert.rejects(inspectSafetensors(file), /1 bytes after the last tensor/);
    } finally {
      await cleanup();
    }
  });

  test('the PyTorch fixture: F16 weights upcast, I64 counters skipped', { skip: sharedSkipReason('fixtures', 'resnet18.weights.safetensors') }, async () => {
    const file = await readSafetensors(sharedPath('fixtures', 'resnet18.weights.safetensors'));
    assert.equal(file.tensors.size, 102);
    assert.equal(file.skipped.length, 20);
    assert.ok(file.skipped.every((s) => s.dtype === 'I64' && s.name.endsWith('num_batches_tracked')));
    const conv1 = file.tensors.get('conv1.weight')!;
    assert.equal(conv1.dtype, 'F16');
    assert.deepEqual(conv1.shape, [64, 3, 7, 7]);
    const total = [...file.tensors.values()].reduce((n, t) => n + t.data.length, 0);
    assert.equal(total, 11_689_512 + 2 * 4800); // parameters + BatchNorm running mean/var
  });
});
