/**
 * 7x7 stride-2 convolutions (ResNet's stem) through Winograd F(4x4, 4x4) on the four phase images
 * (strided-winograd.ts), in place (channels a multiple of 4) and side by side (RGB images), against
 * the `cpu` backend; and the transformed filters kept between inference calls
 * (winograd-filter-cache.ts): reused while the filter lives, never while gradients are recorded,
 * freed with their filter, the least recently used making room when the cache is full.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { winogradStats } from '../../src-main/engine/wasm-kernels/winograd.js';
import { filterCacheOptions, keptFilterTransforms } from '../../src-main/engine/wasm-kernels/winograd-filter-cache.js';
import { assertMatchesCpu, type ConvCase, explicitPad, randomArray, rng, sizeOf, useWasmWithWinogradForced } from './helpers.js';

type Case = ConvCase;

const CASES: Case[] = [
  { n: 2, h: 20, w: 23, ci: 3, co: 8, pad: 'same' },
  { n: 1, h: 17, w: 17, ci: 3, co: 16, pad: 'valid' },
  { n: 1, h: 7, w: 7, ci: 3, co: 4, pad: 'valid' }, // a single output
  { n: 2, h: 30, w: 30, ci: 4, co: 12, pad: explicitPad(3, 2, 1, 3) },
  { n: 3, h: 9, w: 12, ci: 1, co: 4, pad: explicitPad(3, 3, 3, 3) },
  { n: 1, h: 38, w: 38, ci: 3, co: 64, pad: explicitPad(3, 3, 3, 3) }, // ResNet's stem, small
  { n: 2, h: 11, w: 8, ci: 5, co: 20, pad: 'same' },
];

const calls = (body: () => void): number => {
  const start = winogradStats.forward;
  body();
  return winogradStats.forward - start;
};

function stemConv(c: Case, seed: number, fused?: { bias: boolean; activation: 'linear' | 'relu' | 'relu6' }): () => tf.Tensor {
  const r = rng(seed);
  const xShape: [number, number, number, number] = [c.n, c.h, c.w, c.ci];
  const fShape: [number, number, number, number] = [7, 7, c.ci, c.co];
  const x = randomArray(sizeOf(xShape), r);
  const w = randomArray(sizeOf(fShape), r);
  const b = randomArray(c.co, r);
  return () => {
    const xs = tf.tensor4d(x, xShape);
    const ws = tf.tensor4d(w, fShape);
    if (!fused) return tf.conv2d(xs, ws, 2, c.pad);
    return tf.fused.conv2d({ x: xs, filter: ws, strides: 2, pad: c.pad, bias: fused.bias ? tf.tensor1d(b) : undefined, activation: fused.activation });
  };
}

let worst = 0;
useWasmWithWinogradForced(() => `7x7 stride-2 Winograd: max relative error ${worst.toExponential(2)}`);

test('7x7 stride-2 Conv2D / FusedConv2D match cpu through Winograd (paddings, odd sizes, bias, relu)', () => {
  const n = calls(() => {
    CASES.forEach((c, i) => {
      worst = Math.max(worst, assertMatchesCpu(`stem ${JSON.stringify(c)}`, stemConv(c, 10 + i)));
      const fused = { bias: i % 2 === 0, activation: (['relu', 'relu6', 'linear'] as const)[i % 3] };
      worst = Math.max(worst, assertMatchesCpu(`fused stem ${JSON.stringify(c)}`, stemConv(c, 20 + i, fused)));
    });
  });
  assert.equal(n, 2 * CASES.length);
});

test('7x7 convolutions with stride 1 or dilation 2 stay on XNNPACK', () => {
  const r = rng(5);
  const x = randomArray(2 * 15 * 15 * 3, r);
  const w = randomArray(7 * 7 * 3 * 8, r);
  const conv = (strides: number, dilations: number) => () =>
    tf.conv2d(tf.tensor4d(x, [2, 15, 15, 3]), tf.tensor4d(w, [7, 7, 3, 8]), strides, 'same', 'NHWC', dilations);
  const n = calls(() => {
    assertMatchesCpu('stride 1', conv(1, 1));
    assertMatchesCpu('dilation 2', conv(1, 2));
  });
  assert.equal(n, 0);
});

test('transformed filters are kept while the filter lives, freed with it, and never kept in training', () => {
  const backend = tf.findBackend('wasm') as BackendWasm;
  const r = rng(7);
  const x = tf.tensor4d(randomArray(2 * 12 * 12 * 8, r), [2, 12, 12, 8]);
  const initial = tf.tensor4d(randomArray(3 * 3 * 8 * 16, r), [3, 3, 8, 16]);
  const w = tf.variable(initial);
  initial.dispose(); // the variable holds the only reference to its memory, as a model's weights do
  const stem = tf.tensor4d(randomArray(7 * 7 * 8 * 4, r), [7, 7, 8, 4]);
  const start = keptFilterTransforms(backend);
  const ids = backend.numDataIds();

  const first = tf.tidy(() => tf.conv2d(x, w as tf.Tensor4D, 1, 'same'));
  assert.equal(keptFilterTransforms(backend).count, start.count + 1);
  const again = tf.tidy(() => tf.conv2d(x, w as tf.Tensor4D, 1, 'same'));
  assert.equal(keptFilterTransforms(backend).count, start.count + 1, 'the second call reuses the kept transform');
  assert.deepEqual(again.dataSync(), first.dataSync());
  tf.tidy(() => void tf.conv2d(x, stem, 2, 'same'));
  assert.equal(keptFilterTransforms(backend).count, start.count + 2);
  // The 3x3 filter's 36 planes of 8 x 16, the 7x7's 49 of its four phases' 32 x 4 (each plane 16 floats apart).
  assert.equal(keptFilterTransforms(backend).bytes - start.bytes, (36 * (8 * 16 + 16) + 49 * (32 * 4 + 16)) * 4);

  // A new value of the variable is a new filter: the result follows it (no stale transform).
  tf.tidy(() => w.assign(tf.mul(w, -1) as tf.Tensor4D));
  const flipped = tf.tidy(() => tf.conv2d(x, w as tf.Tensor4D, 1, 'same'));
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.add(flipped, first))).dataSync()[0]) < 1e-5);
  assert.equal(keptFilterTransforms(backend).count, start.count + 2, "the old value's transform went with it");

  // Under a gradient tape nothing is kept, and what was kept is dropped.
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'same')) as tf.Scalar, [w]);
  assert.equal(keptFilterTransforms(backend).count, start.count);
  tf.dispose([value, grads]);

  tf.tidy(() => void tf.conv2d(x, w as tf.Tensor4D, 1, 'same'));
  assert.equal(keptFilterTransforms(backend).count, start.count + 1);
  w.dispose();
  assert.equal(keptFilterTransforms(backend).count, start.count, 'disposing the filter frees its transform');
  tf.dispose([first, again, flipped, stem]);
  assert.equal(keptFilterTransforms(backend).bytes, start.bytes);
  assert.equal(backend.numDataIds(), ids - 2, 'every buffer but the two disposed filters is freed');
  x.dispose();
});

test('a full cache makes room by dropping the least recently used transforms', () => {
  const backend = tf.findBackend('wasm') as BackendWasm;
  const r = rng(8);
  const x = tf.tensor4d(randomArray(2 * 12 * 12 * 8, r), [2, 12, 12, 8]);
  const filters = [0, 1, 2, 3, 4].map(() => tf.tensor4d(randomArray(3 * 3 * 8 * 16, r), [3, 3, 8, 16]));
  const entryBytes = 36 * (8 * 16 + 16) * 4;
  const kept = () => keptFilterTransforms(backend).count;
  const saved = filterCacheOptions.maxBytes;
  assert.equal(kept(), 0, 'the tests before this one leave nothing kept');
  filterCacheOptions.maxBytes = 2 * entryBytes;
  try {
    const conv = (w: tf.Tensor4D) => tf.tidy(() => tf.conv2d(x, w, 1, 'same'));
    const first = filters.slice(0, 3).map(conv);
    assert.equal(keptFilterTransforms(backend).bytes, 2 * entryBytes);
    filters[0].dispose();
    assert.equal(kept(), 2, "filters[0]'s transform made room for filters[2]'s");
    const again = conv(filters[1]); // a hit: now the most recently used
    assert.deepEqual(again.dataSync(), first[1].dataSync());
    const fourth = conv(filters[3]); // makes room by dropping filters[2]'s, not filters[1]'s
    filters[2].dispose();
    assert.equal(kept(), 2);
    filters[1].dispose();
    assert.equal(kept(), 1);
    filterCacheOptions.maxBytes = entryBytes - 1;
    const uncached = conv(filters[4]); // larger than the whole cache: not kept, nothing dropped for it
    assert.equal(kept(), 1);
    tf.dispose([...first, again, fourth, uncached]);
  } finally {
    filterCacheOptions.maxBytes = saved;
    tf.dispose([x, ...filters]);
  }
  assert.equal(keptFilterTransforms(backend).bytes, 0);
});
