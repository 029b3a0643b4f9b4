/**
 * 1x1 convolutions with a stride on our GEMM (pointwise-conv.ts), against the cpu backend: ResNet's
 * shortcut shape, odd sizes (an output row that is not whole register tiles, the last input
 * row and column unread), unequal strides, input channels that are not a multiple of 4, bias or
 * none, relu / relu6. Shapes it declines (Co not a multiple of 4, leading padding, stride 1) take
 * the stock kernel and still match.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { pointwiseStats } from '../../src-main/engine/wasm-kernels/pointwise-conv.js';
import { assertMatchesCpu, type ConvCase, explicitPad, randomArray, rng, useWasmWithTrainingKernels } from './helpers.js';

before(useWasmWithTrainingKernels);

interface Case extends ConvCase {
  strides: [number, number];
  bias: boolean;
  act: 'linear' | 'relu' | 'relu6';
  /** Whether our kernel takes it. */
  ours: boolean;
}

const CASES: Case[] = [
  { n: 2, h: 8, w: 8, ci: 16, co: 32, strides: [2, 2], pad: 'valid', bias: true, act: 'linear', ours: true }, // a ResNet shortcut
  { n: 1, h: 9, w: 11, ci: 8, co: 12, strides: [2, 2], pad: 'same', bias: true, act: 'relu', ours: true }, // 5x6 outputs
  { n: 3, h: 7, w: 10, ci: 3, co: 8, strides: [2, 3], pad: 'valid', bias: false, act: 'relu6', ours: true },
  { n: 1, h: 6, w: 5, ci: 5, co: 4, strides: [3, 1], pad: 'valid', bias: true, act: 'linear', ours: true },
  { n: 1, h: 8, w: 8, ci: 8, co: 6, strides: [2, 2], pad: 'valid', bias: true, act: 'relu', ours: false }, // Co not a multiple of 4
  { n: 1, h: 8, w: 8, ci: 8, co: 8, strides: [2, 2], pad: explicitPad(1, 0, 1, 0), bias: true, act: 'linear', ours: false },
  { n: 1, h: 6, w: 6, ci: 8, co: 8, strides: [1, 1], pad: 'valid', bias: true, act: 'relu', ours: false },
];

test('strided 1x1 convolutions match cpu, through our GEMM where they fit it', () => {
  CASES.forEach((c, i) => {
    const r = rng(300 + i);
    const [x, w, b] = [randomArray(c.n * c.h * c.w * c.ci, r), randomArray(c.ci * c.co, r), randomArray(c.co, r)];
    const conv = () =>
      tf.fused.conv2d({
        x: tf.tensor4d(x, [c.n, c.h, c.w, c.ci]),
        filter: tf.tensor4d(w, [1, 1, c.ci, c.co]),
        strides: c.strides,
        pad: c.pad as 'valid',
        bias: c.bias ? tf.tensor1d(b) : undefined,
        activation: c.act,
      });
    const calls = pointwiseStats.calls;
    assertMatchesCpu(`case ${i}`, conv, 1e-5);
    assert.equal(pointwiseStats.calls - calls, c.ours ? 1 : 0, `case ${i}: ${c.ours ? 'our kernel did not run' : 'our kernel ran'}`);
  });
});

test('the unfused Conv2D takes the same kernel', () => {
  const r = rng(320);
  const [x, w] = [randomArray(2 * 10 * 10 * 12, r), randomArray(12 * 16, r)];
  const calls = pointwiseStats.calls;
  assertMatchesCpu('conv2d', () => tf.conv2d(tf.tensor4d(x, [2, 10, 10, 12]), tf.tensor4d(w, [1, 1, 12, 16]), 2, 'valid'), 1e-5);
  assert.equal(pointwiseStats.calls - calls, 1);
});
