/**
 * CONV_MAX_POOL2D (conv2d-forward.ts): a fused convolution, then a max pool, as ResNet's stem. Against
 * the cpu backend's convolution and pool, and bitwise against our own unfused kernels on wasm (the
 * same sums, and a max is exact); pooled block by block (block-max-pool.ts) where the pool is 3x3,
 * stride 2, top padding 1 after a 4-pixel-tile stride-2 Winograd, else the convolution and then
 * the MaxPool kernel.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { blockPoolStats } from '../../src-main/engine/wasm-kernels/block-max-pool.js';
import { CONV_MAX_POOL2D } from '../../src-main/engine/wasm-kernels/index.js';
import { assertWasmMatches, type ConvCase, randomArray, rng, runOn, useWasmWithWinogradForced } from './helpers.js';

interface Case extends ConvCase {
  k: number;
  act: 'linear' | 'relu';
  poolSize: number;
  poolPad: 'same' | 'valid' | number;
  /** Whether the pool runs in the convolution's blocks. */
  inBlocks: boolean;
}

const CASES: Case[] = [
  { n: 2, h: 32, w: 32, ci: 3, co: 16, k: 7, pad: 3, act: 'relu', poolSize: 3, poolPad: 1, inBlocks: true }, // ResNet's stem, small
  { n: 3, h: 29, w: 35, ci: 3, co: 8, k: 7, pad: 3, act: 'relu', poolSize: 3, poolPad: 1, inBlocks: true }, // 15x18: tiles overhang, odd pool sizes
  { n: 1, h: 10, w: 6, ci: 3, co: 8, k: 7, pad: 3, act: 'linear', poolSize: 3, poolPad: 1, inBlocks: true }, // one row of tiles, negative values
  { n: 2, h: 32, w: 32, ci: 8, co: 16, k: 3, pad: 1, act: 'relu', poolSize: 3, poolPad: 1, inBlocks: true }, // 3x3, F(4x4, 2x2)
  { n: 2, h: 16, w: 16, ci: 3, co: 8, k: 7, pad: 3, act: 'relu', poolSize: 3, poolPad: 'same', inBlocks: false }, // top padding 0
  { n: 2, h: 16, w: 16, ci: 3, co: 8, k: 7, pad: 3, act: 'relu', poolSize: 2, poolPad: 'valid', inBlocks: false }, // 2x2: XNNPACK
  { n: 1, h: 12, w: 12, ci: 8, co: 6, k: 3, pad: 1, act: 'relu', poolSize: 3, poolPad: 1, inBlocks: false }, // 6 channels: XNNPACK conv
];

function tensors(c: Case, seed: number) {
  const r = rng(seed);
  const x = randomArray(c.n * c.h * c.w * c.ci, r);
  const w = randomArray(c.k * c.k * c.ci * c.co, r);
  const b = randomArray(c.co, r);
  return () => ({ x: tf.tensor4d(x, [c.n, c.h, c.w, c.ci]), filter: tf.tensor4d(w, [c.k, c.k, c.ci, c.co]), bias: tf.tensor1d(b) });
}

const separate = (c: Case, make: ReturnType<typeof tensors>) => () => {
  const { x, filter, bias } = make();
  return tf.maxPool(tf.fused.conv2d({ x, filter, bias, strides: 2, pad: c.pad, activation: c.act }), c.poolSize, 2, c.poolPad);
};

const fused = (c: Case, make: ReturnType<typeof tensors>) => () => {
  const attrs = { strides: 2, pad: c.pad, dataFormat: 'NHWC', dilations: 1, activation: c.act, poolSize: c.poolSize, poolStrides: 2, poolPad: c.poolPad };
  return tf.engine().runKernel(CONV_MAX_POOL2D, make() as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
};

let worst = 0;
useWasmWithWinogradForced(() => `conv + max pool: max relative error ${worst.toExponential(2)}`);

test("a convolution and its max pool match cpu, and our separate kernels bitwise, pooled in the blocks where the pool is ResNet's", () => {
  CASES.forEach((c, i) => {
    const label = JSON.stringify(c);
    const make = tensors(c, 60 + i);
    const start = blockPoolStats.calls;
    worst = Math.max(worst, assertWasmMatches(label, separate(c, make), fused(c, make)));
    assert.equal(blockPoolStats.calls > start, c.inBlocks, `${label}: pooled in the blocks`);
    const one = runOn('wasm', fused(c, make)).values;
    const two = runOn('wasm', separate(c, make)).values;
    const differs = one.findIndex((v, j) => !Object.is(v, two[j]));
    assert.equal(differs, -1, `${label}: element ${differs} ${one[differs]} vs ${two[differs]}`);
  });
});
