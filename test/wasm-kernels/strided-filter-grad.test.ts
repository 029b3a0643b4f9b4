/**
 * The direct SIMD filter gradient (strided-filter-grad.ts) against the `cpu` backend: stride 2
 * with 7x7, 3x3 and 1x1 kernels, valid / same / explicit paddings, odd and even sizes, batch 1 and
 * 3, Ci = 3, multiples of 4 and not; through the shape rule ('auto') and forced ('new', which also
 * takes strides 1 and 3 and unequal strides), with chunks of whole images and of rows.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { stridedFilterGradOptions } from '../../src-main/engine/wasm-kernels/conv2d-backprop-filter.js';
import { stridedFilterGradModuleBytes, stridedFilterGradTiles } from '../../src-main/engine/wasm-kernels/strided-filter-grad.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { assertMatchesCpu, type ConvCase, explicitPad, type Pad, pick, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

interface Case extends ConvCase {
  k: [number, number];
  s: [number, number];
}

const FIXED: Case[] = [
  { n: 2, h: 21, w: 21, ci: 3, co: 8, k: [7, 7], s: [2, 2], pad: 'valid' }, // pre-padded stem
  { n: 3, h: 16, w: 15, ci: 3, co: 4, k: [7, 7], s: [2, 2], pad: explicitPad(3, 3, 3, 3) }, // stem, padded in the conv
  { n: 1, h: 13, w: 14, ci: 3, co: 12, k: [7, 7], s: [2, 2], pad: 'same' },
  { n: 3, h: 9, w: 9, ci: 8, co: 8, k: [3, 3], s: [2, 2], pad: 'valid' },
  { n: 1, h: 10, w: 11, ci: 5, co: 4, k: [3, 3], s: [2, 2], pad: 'same' },
  { n: 3, h: 8, w: 8, ci: 12, co: 16, k: [3, 3], s: [2, 2], pad: explicitPad(1, 1, 1, 1) }, // torchvision
  { n: 1, h: 8, w: 10, ci: 7, co: 4, k: [3, 3], s: [2, 2], pad: 'valid' }, // the last row is never read
  { n: 3, h: 12, w: 12, ci: 4, co: 20, k: [3, 3], s: [2, 2], pad: explicitPad(0, 1, 0, 1) }, // TF 'same' as explicit
  { n: 2, h: 7, w: 6, ci: 6, co: 8, k: [3, 3], s: [2, 2], pad: explicitPad(4, 0, 0, 4) }, // pad > k - 1: rows of zeros
  { n: 3, h: 10, w: 9, ci: 16, co: 8, k: [1, 1], s: [2, 2], pad: 'valid' }, // ResNet downsample
  { n: 1, h: 9, w: 11, ci: 5, co: 12, k: [1, 1], s: [2, 2], pad: 'same' },
  { n: 2, h: 8, w: 9, ci: 3, co: 4, k: [1, 1], s: [2, 2], pad: explicitPad(1, 0, 0, 1) }, // padded 1x1
  { n: 2, h: 9, w: 9, ci: 3, co: 6, k: [3, 3], s: [2, 2], pad: 'same' }, // Co % 4 != 0: the old path
];

/** Large enough for several chunks of dy rows (Ho*Wo > 512) and groups of whole images. */
const CHUNKED: Case[] = [
  { n: 2, h: 50, w: 49, ci: 3, co: 8, k: [7, 7], s: [2, 2], pad: explicitPad(3, 3, 3, 3) },
  { n: 3, h: 30, w: 31, ci: 9, co: 12, k: [3, 3], s: [2, 2], pad: 'same' },
  { n: 3, h: 10, w: 10, ci: 64, co: 32, k: [3, 3], s: [2, 2], pad: explicitPad(1, 1, 1, 1) },
];

function randomCase(seed: number): Case {
  const r = rng(seed);
  const k0 = pick(r, [1, 3, 3, 5, 7]);
  const k: [number, number] = r() < 0.8 ? [k0, k0] : [k0, pick(r, [1, 2, 3])];
  const h = k[0] + Math.floor(r() * 12);
  const w = k[1] + Math.floor(r() * 12);
  const pad = pick<Pad>(r, ['same', 'valid', explicitPad(Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4))]);
  return { n: pick(r, [1, 3]), h, w, ci: pick(r, [1, 2, 3, 4, 5, 8, 11]), co: pick(r, [4, 8, 12, 16, 36]), k, s: [2, 2], pad };
}

const RANDOM = Array.from({ length: 30 }, (_, i) => randomCase(5000 + i));

function outShape(c: Case): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [...c.k, c.ci, c.co], c.s, 1, c.pad).outShape;
}

function checkDw(c: Case, seed: number): void {
  const r = rng(seed);
  const xShape = [c.n, c.h, c.w, c.ci];
  const yShape = outShape(c);
  const x = randomArray(sizeOf(xShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  assertMatchesCpu(`dW ${stridedFilterGradOptions.mode} ${JSON.stringify(c)}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropFilter',
      { x: tf.tensor(x, xShape), dy: tf.tensor(dy, yShape) },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: [...c.k, c.ci, c.co] },
    ) as tf.Tensor,
  );
}

function withMode(mode: 'auto' | 'new' | 'old', body: () => void): void {
  const previous = stridedFilterGradOptions.mode;
  stridedFilterGradOptions.mode = mode;
  try {
    body();
  } finally {
    stridedFilterGradOptions.mode = previous;
  }
}

before(useWasmWithTrainingKernels);
after(() => {
  stridedFilterGradOptions.mode = 'auto';
});

test('the tile module validates and binds to the backend heap', () => {
  const Wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
  assert.ok(Wasm.validate(stridedFilterGradModuleBytes(false)));
  assert.ok(Wasm.validate(stridedFilterGradModuleBytes(true)));
  tf.setBackend('wasm');
  assert.ok(stridedFilterGradTiles(tf.backend() as unknown as BackendWasm), 'tiles unavailable: the direct path would never run');
});

test('stride-2 filter gradients match cpu on the fixed cases (shape rule and forced)', () => {
  for (const mode of ['auto', 'new'] as const) withMode(mode, () => FIXED.forEach((c, i) => checkDw(c, 10 + i)));
});

test('stride-2 filter gradients match cpu across chunks of rows and of images', () => {
  withMode('new', () => CHUNKED.forEach((c, i) => checkDw(c, 40 + i)));
});

test('stride-2 filter gradients match cpu on 30 random geometries', () => {
  withMode('new', () => RANDOM.forEach((c, i) => checkDw(c, 60 + i)));
});

test('the direct kernel is exact for other strides too (forced)', () => {
  const cases: Case[] = [
    { n: 2, h: 9, w: 8, ci: 3, co: 4, k: [3, 3], s: [1, 1], pad: 'same' },
    { n: 3, h: 11, w: 10, ci: 5, co: 8, k: [5, 5], s: [3, 3], pad: 'same' },
    { n: 1, h: 12, w: 9, ci: 4, co: 4, k: [3, 2], s: [2, 1], pad: explicitPad(1, 2, 0, 1) },
  ];
  withMode('new', () => cases.forEach((c, i) => checkDw(c, 100 + i)));
});

test('no tensors or heap buffers leak', () => {
  tf.setBackend('wasm');
  const backend = tf.backend();
  const c: Case = { n: 2, h: 17, w: 17, ci: 3, co: 8, k: [7, 7], s: [2, 2], pad: explicitPad(3, 3, 3, 3) };
  const x = tf.randomNormal([c.n, c.h, c.w, c.ci]);
  const dy = tf.randomNormal(outShape(c));
  const run = () =>
    tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: [...c.k, c.ci, c.co] }) as tf.Tensor;
  run().dispose();
  const tensors = tf.memory().numTensors;
  const ids = backend.numDataIds();
  for (const mode of ['auto', 'new'] as const) withMode(mode, () => run().dispose());
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), ids);
  tf.dispose([x, dy]);
});
