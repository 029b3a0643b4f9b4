/**
 * DepthwiseConv2dNativeBackpropInput / ...BackpropFilter on wasm against the `cpu` backend:
 * strides 1-3, channel multipliers 1-3, dilation 2, odd sizes, 'same' / 'valid' / explicit pads.
 */
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { assertMatchesCpu, assertWasmMatches, pick, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

interface Case {
  n: number;
  h: number;
  w: number;
  c: number;
  m: number;
  k: [number, number];
  s: [number, number];
  d: [number, number];
  pad: Pad;
}

const FIXED: Case[] = [
  { n: 2, h: 9, w: 7, c: 5, m: 1, k: [3, 3], s: [1, 1], d: [1, 1], pad: 'same' }, // MobileNet stride 1
  { n: 2, h: 10, w: 10, c: 4, m: 1, k: [3, 3], s: [2, 2], d: [1, 1], pad: [[0, 0], [0, 1], [0, 1], [0, 0]] }, // Keras ZeroPadding + valid
  { n: 2, h: 11, w: 9, c: 3, m: 1, k: [3, 3], s: [2, 2], d: [1, 1], pad: 'same' },
  { n: 1, h: 8, w: 8, c: 3, m: 2, k: [3, 3], s: [2, 2], d: [1, 1], pad: 'valid' },
  { n: 2, h: 9, w: 9, c: 2, m: 3, k: [5, 5], s: [1, 1], d: [1, 1], pad: 'same' },
  { n: 2, h: 11, w: 10, c: 3, m: 2, k: [3, 3], s: [1, 1], d: [2, 2], pad: 'same' }, // dilation
  { n: 2, h: 11, w: 10, c: 3, m: 1, k: [3, 2], s: [1, 1], d: [2, 1], pad: 'valid' },
  { n: 2, h: 9, w: 8, c: 3, m: 1, k: [3, 3], s: [2, 1], d: [1, 1], pad: 'same' }, // unequal strides
  { n: 1, h: 5, w: 6, c: 2, m: 1, k: [3, 3], s: [1, 1], d: [1, 1], pad: [[0, 0], [3, 0], [0, 4], [0, 0]] }, // pad > k - 1
  // Multiplier 1 and C % 4 == 0: the filter gradient takes the SIMD path.
  { n: 3, h: 9, w: 7, c: 8, m: 1, k: [3, 3], s: [1, 1], d: [1, 1], pad: 'same' },
  { n: 2, h: 10, w: 11, c: 4, m: 1, k: [3, 3], s: [2, 2], d: [1, 1], pad: [[0, 0], [0, 1], [0, 1], [0, 0]] },
  { n: 2, h: 11, w: 10, c: 8, m: 1, k: [3, 3], s: [1, 1], d: [2, 2], pad: 'same' },
  { n: 2, h: 13, w: 9, c: 12, m: 1, k: [5, 3], s: [3, 2], d: [1, 1], pad: 'valid' },
  { n: 1, h: 5, w: 6, c: 4, m: 1, k: [3, 3], s: [1, 1], d: [1, 1], pad: [[0, 0], [3, 0], [0, 4], [0, 0]] },
];

function randomCase(seed: number): Case {
  const r = rng(seed);
  const k: [number, number] = [pick(r, [1, 2, 3, 3, 5]), pick(r, [1, 3, 3, 5])];
  const dilated = r() < 0.2;
  const s: [number, number] = dilated ? [1, 1] : [pick(r, [1, 2, 2, 3]), pick(r, [1, 2, 2, 3])];
  const d: [number, number] = dilated ? [2, pick(r, [1, 2])] : [1, 1];
  const pad = pick<Pad>(r, [
    'same',
    'valid',
    [[0, 0], [Math.floor(r() * 3), Math.floor(r() * 3)], [Math.floor(r() * 3), Math.floor(r() * 3)], [0, 0]],
  ]);
  return {
    n: 1 + Math.floor(r() * 3),
    h: (k[0] - 1) * d[0] + 1 + Math.floor(r() * 8),
    w: (k[1] - 1) * d[1] + 1 + Math.floor(r() * 8),
    c: 1 + Math.floor(r() * 6),
    m: pick(r, [1, 1, 2, 3]),
    k,
    s,
    d,
    pad,
  };
}

const RANDOM = Array.from({ length: 40 }, (_, i) => randomCase(5000 + i));

function outShape(c: Case): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.c], [...c.k, c.c, c.m], c.s, c.d, c.pad, undefined, true).outShape;
}

/**
 * The cpu backend's depthwise gradient kernels ignore `dilations` (tfjs-core never asks for dilated
 * gradients), so a dilated case is checked against the undilated computation with the filter's
 * taps spread out by zeros: a dilated convolution is exactly that.
 */
function undilated(c: Case): Case {
  return { ...c, k: [(c.k[0] - 1) * c.d[0] + 1, (c.k[1] - 1) * c.d[1] + 1], d: [1, 1] };
}

/** [kh, kw, C, M] -> the zero-spread filter of `undilated(c)`. */
function spreadFilter(w: Float32Array, c: Case): tf.Tensor {
  const u = undilated(c);
  const out = new Float32Array(sizeOf([...u.k, c.c, c.m]));
  const block = c.c * c.m;
  for (let a = 0; a < c.k[0]; a++)
    for (let b = 0; b < c.k[1]; b++)
      out.set(w.subarray((a * c.k[1] + b) * block, (a * c.k[1] + b + 1) * block), (a * c.d[0] * u.k[1] + b * c.d[1]) * block);
  return tf.tensor(out, [...u.k, c.c, c.m]);
}

function dxKernel(c: Case, dy: tf.Tensor, filter: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(
    'DepthwiseConv2dNativeBackpropInput',
    { dy, filter },
    { strides: c.s, dilations: c.d, pad: c.pad, inputShape: [c.n, c.h, c.w, c.c] },
  ) as tf.Tensor;
}

function dwKernel(c: Case, x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(
    'DepthwiseConv2dNativeBackpropFilter',
    { x, dy },
    { strides: c.s, dilations: c.d, pad: c.pad, filterShape: [...c.k, c.c, c.m] },
  ) as tf.Tensor;
}

function checkDx(c: Case, seed: number): void {
  const r = rng(seed);
  const fShape = [...c.k, c.c, c.m];
  const yShape = outShape(c);
  const w = randomArray(sizeOf(fShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  const label = `depthwise dx ${JSON.stringify(c)}`;
  const onWasm = () => dxKernel(c, tf.tensor(dy, yShape), tf.tensor(w, fShape));
  if (c.d[0] === 1 && c.d[1] === 1) assertMatchesCpu(label, onWasm);
  else assertWasmMatches(label, () => dxKernel(undilated(c), tf.tensor(dy, yShape), spreadFilter(w, c)), onWasm);
}

function checkDw(c: Case, seed: number): void {
  const r = rng(seed);
  const xShape = [c.n, c.h, c.w, c.c];
  const yShape = outShape(c);
  const x = randomArray(sizeOf(xShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  const label = `depthwise dW ${JSON.stringify(c)}`;
  const onWasm = () => dwKernel(c, tf.tensor(x, xShape), tf.tensor(dy, yShape));
  if (c.d[0] === 1 && c.d[1] === 1) assertMatchesCpu(label, onWasm);
  else {
    // Gradient of the zero-spread filter, sampled at the real taps.
    const reference = () =>
      tf.stridedSlice(dwKernel(undilated(c), tf.tensor(x, xShape), tf.tensor(dy, yShape)), [0, 0, 0, 0], [...undilated(c).k, c.c, c.m], [c.d[0], c.d[1], 1, 1]);
    assertWasmMatches(label, reference, onWasm);
  }
}

before(useWasmWithTrainingKernels);

test('DepthwiseConv2dNativeBackpropInput matches cpu on the fixed cases', () => {
  FIXED.forEach((c, i) => checkDx(c, i));
});

test('DepthwiseConv2dNativeBackpropFilter matches cpu on the fixed cases', () => {
  FIXED.forEach((c, i) => checkDw(c, 100 + i));
});

test('DepthwiseConv2dNativeBackpropInput matches cpu on 40 random geometries', () => {
  RANDOM.forEach((c, i) => checkDx(c, 200 + i));
});

test('DepthwiseConv2dNativeBackpropFilter matches cpu on 40 random geometries', () => {
  RANDOM.forEach((c, i) => checkDw(c, 300 + i));
});

test('depthwise gradients at MobileNet-like sizes (accumulation over 8x28x28 pixels)', () => {
  const c: Case = { n: 8, h: 28, w: 28, c: 48, m: 1, k: [3, 3], s: [2, 2], d: [1, 1], pad: [[0, 0], [0, 1], [0, 1], [0, 0]] };
  checkDx(c, 1);
  checkDw(c, 2);
  checkDx({ ...c, s: [1, 1], pad: 'same' }, 3);
  checkDw({ ...c, s: [1, 1], pad: 'same' }, 4);
});

test('the depthwiseConv2d op gradient (what tf.layers.depthwiseConv2d uses) matches cpu', () => {
  const r = rng(99);
  const x = randomArray(2 * 9 * 9 * 4, r);
  const w = randomArray(3 * 3 * 4 * 2, r);
  for (const which of [0, 1]) {
    assertMatchesCpu(`op grad ${which}`, () => {
      const grads = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
        tf.depthwiseConv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same').square().sum(),
      )([tf.tensor4d(x, [2, 9, 9, 4]), tf.tensor4d(w, [3, 3, 4, 2])]);
      return grads[which];
    });
  }
});
