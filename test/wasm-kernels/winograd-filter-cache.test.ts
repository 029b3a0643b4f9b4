/**
 * Winograd-transformed filters kept between inference calls (winograd-filter-cache.ts): reused
 * while the filter lives, never while gradients are recorded, freed with their filter, the least
 * recently used making room when the cache is full; for stride-1 and stride-2 layers alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { filterCacheOptions, keptFilterTransforms } from '../../src-main/engine/wasm-kernels/winograd-filter-cache.js';
import { stridedTile } from '../../src-main/engine/wasm-kernels/strided-winograd.js';
import { assertWasmMatches, randomArray, rng, useWasmWithWinogradForced } from './helpers.js';

useWasmWithWinogradForced(() => 'kept Winograd filter transforms');

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

test("a stride-2 filter's transform is kept like the others, and replaced when another output size takes the other tiling", () => {
  const backend = tf.findBackend('wasm') as BackendWasm;
  const r = rng(53);
  const x = tf.tensor4d(randomArray(2 * 16 * 16 * 8, r), [2, 16, 16, 8]);
  const w = tf.tensor4d(randomArray(3 * 3 * 8 * 16, r), [3, 3, 8, 16]);
  const start = keptFilterTransforms(backend);
  const planeBytes = (4 * 8 * 16 + 16) * 4; // one position's plane of the four phases' channels
  const first = tf.tidy(() => tf.conv2d(x, w, 2, 'same'));
  const again = tf.tidy(() => tf.conv2d(x, w, 2, 'same'));
  assert.deepEqual(again.dataSync(), first.dataSync());
  assert.equal(stridedTile(w.shape, 8, 8), 4);
  assert.equal(keptFilterTransforms(backend).count, start.count + 1);
  assert.equal(keptFilterTransforms(backend).bytes - start.bytes, 25 * planeBytes, 'F(4x4, 2x2): 25 positions');

  // 10x10 in, 5x5 out: F(2x2, 2x2) multiplies less; its 9 planes replace the 25.
  const small = tf.tidy(() => tf.slice(x, [0, 0, 0, 0], [2, 10, 10, 8]));
  assert.equal(stridedTile(w.shape, 5, 5), 2);
  assertWasmMatches('the other tiling, after a kept transform', () => tf.conv2d(small, w, 2, 'same'), () => tf.conv2d(small, w, 2, 'same'));
  assert.equal(keptFilterTransforms(backend).count, start.count + 1, 'still one transform per filter');
  assert.equal(keptFilterTransforms(backend).bytes - start.bytes, 9 * planeBytes, 'F(2x2, 2x2): 9 positions');
  const back = tf.tidy(() => tf.conv2d(x, w, 2, 'same'));
  assert.deepEqual(back.dataSync(), first.dataSync(), 'back at the first size, the same result');
  w.dispose();
  assert.equal(keptFilterTransforms(backend).count, start.count, 'disposing the filter frees its transform');
  tf.dispose([x, small, first, again, back]);
});
