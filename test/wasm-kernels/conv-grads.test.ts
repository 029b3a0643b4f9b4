/**
 * Conv2DBackpropInput / Conv2DBackpropFilter on wasm against the `cpu` backend, on fixed cases that
 * cover each code path (stride 1, 1x1 strided, sub-pixel strided, unequal strides -> stock
 * fallback, padding that crops) and on seeded random geometries.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BAND_REDUCTION } from '../../src-main/engine/wasm-kernels/conv2d-backprop-filter.js';
import { wasmTrainingKernelsRegistered } from '../../src-main/engine/wasm-kernels/index.js';
import { assertMatchesCpu, type ConvCase, type Pad, pick, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

interface Case extends ConvCase {
  k: [number, number];
  s: [number, number];
  round?: 'floor' | 'round' | 'ceil';
}

const FIXED: Case[] = [
  { n: 2, h: 7, w: 9, ci: 3, co: 5, k: [3, 3], s: [1, 1], pad: 'same' },
  { n: 2, h: 8, w: 8, ci: 4, co: 6, k: [3, 3], s: [2, 2], pad: 'same' },
  { n: 2, h: 9, w: 7, ci: 4, co: 6, k: [3, 3], s: [2, 2], pad: 'valid' },
  { n: 1, h: 8, w: 10, ci: 2, co: 3, k: [3, 3], s: [2, 2], pad: 'valid' }, // forward ignores the last row: crop
  { n: 2, h: 11, w: 11, ci: 3, co: 4, k: [7, 7], s: [2, 2], pad: [[0, 0], [3, 3], [3, 3], [0, 0]] }, // ResNet stem
  { n: 2, h: 10, w: 9, ci: 3, co: 4, k: [3, 3], s: [2, 2], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] }, // torchvision
  { n: 2, h: 10, w: 9, ci: 3, co: 4, k: [1, 1], s: [2, 2], pad: 'valid' }, // ResNet downsample
  { n: 2, h: 9, w: 11, ci: 5, co: 3, k: [1, 1], s: [2, 3], pad: 'same' }, // pointwise, strided, odd, Ci > Co
  { n: 3, h: 7, w: 5, ci: 6, co: 2, k: [1, 1], s: [1, 1], pad: 'valid' }, // pointwise (MobileNet)
  { n: 2, h: 6, w: 6, ci: 2, co: 3, k: [1, 1], s: [1, 1], pad: [[0, 0], [1, 0], [0, 1], [0, 0]] }, // padded 1x1
  { n: 2, h: 6, w: 5, ci: 3, co: 4, k: [2, 3], s: [1, 1], pad: 'valid' },
  { n: 2, h: 9, w: 9, ci: 3, co: 4, k: [5, 5], s: [3, 3], pad: 'same' },
  { n: 2, h: 9, w: 8, ci: 3, co: 4, k: [3, 3], s: [2, 1], pad: 'same' }, // unequal strides
  { n: 1, h: 5, w: 5, ci: 2, co: 2, k: [3, 3], s: [1, 1], pad: [[0, 0], [4, 0], [0, 4], [0, 0]] }, // pad > k - 1
  { n: 2, h: 9, w: 9, ci: 3, co: 2, k: [3, 3], s: [2, 2], pad: 1, round: 'ceil' },
];

function randomCase(seed: number): Case {
  const r = rng(seed);
  const k: [number, number] = [pick(r, [1, 2, 3, 3, 5]), pick(r, [1, 2, 3, 3, 5])];
  const stride = pick(r, [1, 1, 2, 2, 3]);
  const s: [number, number] = r() < 0.85 ? [stride, stride] : [stride, pick(r, [1, 2])];
  const h = k[0] + Math.floor(r() * 9);
  const w = k[1] + Math.floor(r() * 9);
  const pad = pick<Pad>(r, [
    'same',
    'valid',
    [[0, 0], [Math.floor(r() * 3), Math.floor(r() * 3)], [Math.floor(r() * 3), Math.floor(r() * 3)], [0, 0]],
  ]);
  return { n: 1 + Math.floor(r() * 3), h, w, ci: 1 + Math.floor(r() * 6), co: 1 + Math.floor(r() * 6), k, s, pad };
}

const RANDOM = Array.from({ length: 40 }, (_, i) => randomCase(1000 + i));

function outShape(c: Case): number[] {
  const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [...c.k, c.ci, c.co], c.s, 1, c.pad, c.round);
  return info.outShape;
}

function checkDx(c: Case, seed: number): void {
  const r = rng(seed);
  const fShape = [...c.k, c.ci, c.co];
  const yShape = outShape(c);
  const w = randomArray(sizeOf(fShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  assertMatchesCpu(`dx ${JSON.stringify(c)}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor(dy, yShape), filter: tf.tensor(w, fShape) },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', ...(c.round ? { dimRoundingMode: c.round } : {}), inputShape: [c.n, c.h, c.w, c.ci] },
    ) as tf.Tensor,
  );
}

function checkDw(c: Case, seed: number): void {
  const r = rng(seed);
  const xShape = [c.n, c.h, c.w, c.ci];
  const yShape = outShape(c);
  const x = randomArray(sizeOf(xShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  assertMatchesCpu(`dW ${JSON.stringify(c)}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropFilter',
      { x: tf.tensor(x, xShape), dy: tf.tensor(dy, yShape) },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', ...(c.round ? { dimRoundingMode: c.round } : {}), filterShape: [...c.k, c.ci, c.co] },
    ) as tf.Tensor,
  );
}

before(useWasmWithTrainingKernels);

test('our kernels are the ones registered on wasm', () => {
  assert.ok(wasmTrainingKernelsRegistered());
});

test('Conv2DBackpropInput matches cpu on the fixed cases', () => {
  FIXED.forEach((c, i) => checkDx(c, i));
});

test('Conv2DBackpropFilter matches cpu on the fixed cases', () => {
  FIXED.forEach((c, i) => checkDw(c, 100 + i));
});

test('Conv2DBackpropInput matches cpu on 40 random geometries', () => {
  RANDOM.forEach((c, i) => checkDx(c, 200 + i));
});

test('Conv2DBackpropFilter matches cpu on 40 random geometries', () => {
  RANDOM.forEach((c, i) => checkDw(c, 300 + i));
});

test('conv gradients at realistic channel counts (accumulation over 9*64 terms and 16x14x14 pixels)', () => {
  const c: Case = { n: 4, h: 14, w: 14, ci: 64, co: 32, k: [3, 3], s: [2, 2], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] };
  checkDx(c, 7);
  checkDw(c, 8);
  checkDx({ ...c, s: [1, 1], pad: 'same' }, 9);
  checkDw({ ...c, s: [1, 1], pad: 'same' }, 10);
});

test('Conv2DBackpropFilter splits a long reduction into bands of dy rows, exactly', () => {
  // Wo * N = 3 * 57 > BAND_REDUCTION / rows: several bands, the last one short.
  assert.ok(3 * 57 * 57 > BAND_REDUCTION);
  const cases: Case[] = [
    { n: 3, h: 57, w: 57, ci: 3, co: 5, k: [3, 3], s: [1, 1], pad: 'same' },
    { n: 3, h: 114, w: 113, ci: 2, co: 4, k: [3, 3], s: [2, 2], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
    { n: 2, h: 120, w: 119, ci: 3, co: 4, k: [7, 7], s: [2, 2], pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
    { n: 3, h: 60, w: 57, ci: 2, co: 3, k: [3, 3], s: [2, 2], pad: 'valid' },
    { n: 2, h: 80, w: 60, ci: 2, co: 3, k: [2, 3], s: [3, 2], pad: [[0, 0], [4, 5], [2, 0], [0, 0]] },
  ];
  cases.forEach((c, i) => checkDw(c, 400 + i));
});

test('the fused conv2d gradient (bias + relu, what tf.layers.conv2d uses) matches cpu', () => {
  const r = rng(77);
  const x = randomArray(2 * 9 * 9 * 3, r);
  const w = randomArray(3 * 3 * 3 * 4, r);
  const b = randomArray(4, r);
  for (const which of [0, 1, 2]) {
    assertMatchesCpu(`fused grad ${which}`, () => {
      const xs = tf.tensor4d(x, [2, 9, 9, 3]);
      const ws = tf.tensor4d(w, [3, 3, 3, 4]);
      const bs = tf.tensor1d(b);
      const grads = tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.fused
          .conv2d({ x: xx as tf.Tensor4D, filter: ww as tf.Tensor4D, bias: bb, strides: 2, pad: 'same', activation: 'relu' })
          .square()
          .sum(),
      )([xs, ws, bs]);
      return grads[which];
    });
  }
});
