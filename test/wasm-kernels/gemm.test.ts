/**
 * The generated GEMM (gemm.ts) against a float64 JS product: whole register tiles, the row and
 * column tails, leading dimensions wider than the matrices, and a batch of products through the
 * address tables that the Winograd convolution uses.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { gemmModuleBytes, gemmOnBackend, runGemm, runTableGemm, splitReduction } from '../../src-main/engine/wasm-kernels/gemm.js';
import { heapOffset } from '../../src-main/engine/wasm-kernels/wasm-ops.js';
import { randomArray, rng, useWasmWithTrainingKernels } from './helpers.js';

before(useWasmWithTrainingKernels);

const backend = () => tf.backend() as unknown as BackendWasm;
const address = (t: tf.Tensor) => heapOffset(backend(), t).offset * 4;

/** C = A x B in float64, A [m, k] with row stride lda, B [k, n] with row stride ldb. */
function reference(a: Float32Array, b: Float32Array, m: number, k: number, n: number, lda: number, ldb: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) c[i * n + j] += a[i * lda + p] * b[p * ldb + j];
  return c;
}

function assertClose(actual: Float32Array, expected: Float64Array, n: number, ldc: number, label: string): void {
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < expected.length; i++) {
    const got = actual[Math.floor(i / n) * ldc + (i % n)];
    assert.ok(Math.abs(got - expected[i]) <= 1e-5 * scale, `${label}: element ${i} is ${got}, expected ${expected[i]}`);
  }
}

test('the generated GEMM module validates', () => {
  const Wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
  assert.ok(Wasm.validate(gemmModuleBytes({ k: 64, lda: 64, ldb: 128, ldc: 128 })));
  assert.ok(Wasm.validate(gemmModuleBytes({ k: 3, lda: 7, ldb: 4, ldc: 8 }, true)));
  assert.ok(Wasm.validate(gemmModuleBytes({ k: 3, lda: 7, ldb: 4, ldc: 8, bias: true })));
  assert.throws(() => gemmModuleBytes({ k: 3, lda: 3, ldb: 4, ldc: 4, bias: true, accumulate: true }), /either accumulates or adds a bias/);
});

test('C = bias + A x B: the bias starts every row, across whole and partial column blocks', () => {
  const r = rng(10);
  // m, k, n, lda: a strided A (lda = 2k, a stride-2 1x1 convolution's row), a column tail, a row tail.
  for (const [m, k, n, lda] of [
    [8, 16, 8, 32],
    [5, 3, 12, 6],
    [9, 7, 20, 7],
  ]) {
    const [a, b, bias] = [randomArray(m * lda, r), randomArray(k * n, r), randomArray(n, r)];
    const [at, bt, biasT, ct] = [tf.tensor(a), tf.tensor(b), tf.tensor(bias), tf.zeros([m * n])];
    const gemm = gemmOnBackend(backend(), { k, lda, ldb: n, ldc: n, bias: true });
    assert.ok(gemm, 'the GEMM kernel did not instantiate');
    gemm(address(at), address(bt), address(ct), m, n, address(biasT));
    const expected = reference(a, b, m, k, n, lda, n).map((v, i) => v + bias[i % n]);
    assertClose(ct.dataSync() as Float32Array, expected, n, n, `bias ${m}x${k}x${n}`);
    tf.dispose([at, bt, biasT, ct]);
  }
});

test('C = A x B for whole tiles, row and column tails and padded leading dimensions', () => {
  const r = rng(7);
  const shapes = [
    // m, k, n, lda, ldb, ldc
    [8, 16, 8, 16, 8, 8],
    [1, 1, 4, 1, 4, 4],
    [3, 5, 4, 5, 4, 4],
    [7, 9, 12, 9, 12, 12],
    [13, 33, 20, 40, 24, 28],
    [64, 64, 64, 64, 64, 64],
    [101, 17, 36, 17, 36, 36],
    // Long reductions: A's rows go to the kernel in several row blocks (64 KiB of A each), then a tail.
    [70, 520, 12, 520, 12, 16],
  ];
  for (const [m, k, n, lda, ldb, ldc] of shapes) {
    const a = randomArray(m * lda, r);
    const b = randomArray(k * ldb, r);
    const at = tf.tensor(a);
    const bt = tf.tensor(b);
    const ct = tf.fill([m * ldc], 7);
    const gemm = gemmOnBackend(backend(), { k, lda, ldb, ldc });
    assert.ok(gemm, 'the GEMM kernel did not instantiate');
    gemm(address(at), address(bt), address(ct), m, n);
    const c = ct.dataSync() as Float32Array;
    assertClose(c, reference(a, b, m, k, n, lda, ldb), n, ldc, `${m}x${k}x${n}`);
    // Columns between n and ldc are not written.
    for (let i = 0; i < m; i++) for (let j = n; j < ldc; j++) assert.equal(c[i * ldc + j], 7);
    tf.dispose([at, bt, ct]);
  }
});

test('a batch of products through address tables (the Winograd layout)', () => {
  const r = rng(8);
  const [count, m, k, n] = [5, 21, 12, 16];
  const as = Array.from({ length: count }, () => randomArray(m * k, r));
  const bs = Array.from({ length: count }, () => randomArray(k * n, r));
  const at = as.map((a) => tf.tensor(a));
  const bt = bs.map((b) => tf.tensor(b));
  const ct = as.map(() => tf.zeros([m * n]));
  const table = (ts: tf.Tensor[]) => {
    const t = tf.tensor(new Float32Array(Int32Array.from(ts.map(address)).buffer));
    return { t, at: address(t) };
  };
  const [ta, tb, tc] = [table(at), table(bt), table(ct)];
  assert.ok(runTableGemm(backend(), { layout: { k, lda: k, ldb: n, ldc: n }, aTable: ta.at, bTable: tb.at, cTable: tc.at, count, m, n }));
  ct.forEach((c, i) => assertClose(c.dataSync() as Float32Array, reference(as[i], bs[i], m, k, n, k, n), n, n, `product ${i}`));
  tf.dispose([...at, ...bt, ...ct, ta.t, tb.t, tc.t]);
});

test('a long reduction split into pieces (the first sets C, the others add to it) gives the whole product', () => {
  const r = rng(9);
  // m, k, n, lda: ResNet's layer-4 stride-2 products in small (k 1024, A's rows 4C apart), an uneven split.
  for (const [m, k, n, lda] of [
    [16, 1024, 24, 1024],
    [9, 1100, 8, 1104],
  ]) {
    const pieces = splitReduction({ k, lda, ldb: n, ldc: n });
    assert.equal(pieces.length, Math.ceil(k / 512));
    assert.deepEqual(pieces.map((p) => p.layout.k).reduce((s, v) => s + v, 0), k);
    const [a, b] = [randomArray(m * lda, r), randomArray(k * n, r)];
    const [at, bt, ct] = [tf.tensor(a), tf.tensor(b), tf.fill([m * n], 7)];
    for (const piece of pieces) {
      const gemm = gemmOnBackend(backend(), piece.layout);
      assert.ok(gemm, 'the GEMM kernel did not instantiate');
      gemm(address(at) + piece.aOffset * 4, address(bt) + piece.bRowOffset * n * 4, address(ct), m, n);
    }
    assertClose(ct.dataSync() as Float32Array, reference(a, b, m, k, n, lda, n), n, n, `split ${m}x${k}x${n}`);
    tf.dispose([at, bt, ct]);
  }
  assert.equal(splitReduction({ k: 512, lda: 512, ldb: 8, ldc: 8, bias: true }).length, 1);
  assert.throws(() => splitReduction({ k: 600, lda: 600, ldb: 8, ldc: 8, bias: true }), /cannot start from a bias/);
});

test('one product through runGemm (rows split into parts where a kernel pool runs)', () => {
  const r = rng(9);
  const [m, k, n] = [37, 24, 20];
  const a = randomArray(m * k, r);
  const b = randomArray(k * n, r);
  const [at, bt, ct] = [tf.tensor(a), tf.tensor(b), tf.zeros([m * n])];
  assert.ok(runGemm(backend(), { layout: { k, lda: k, ldb: n, ldc: n }, a: address(at), b: address(bt), c: address(ct), m, n }));
  assertClose(ct.dataSync() as Float32Array, reference(a, b, m, k, n, k, n), n, n, 'runGemm');
  tf.dispose([at, bt, ct]);
});
