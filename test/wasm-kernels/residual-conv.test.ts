/**
 * RESIDUAL_CONV2D (conv2d-forward.ts): a fused convolution plus a residual added before its
 * activation, as ResNet's blocks end. Against the cpu backend's conv + add + activation, and bitwise
 * against our own unfused kernels on wasm (same sums in the same order); through Winograd's output
 * transform where whole tiles cover a stride-1 output (blocks and chunked forms), else the
 * convolution and one pass over its output (odd sizes, stride 2, channel counts Winograd declines).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { RESIDUAL_CONV2D } from '../../src-main/engine/wasm-kernels/index.js';
import { winogradStats } from '../../src-main/engine/wasm-kernels/winograd.js';
import { assertWasmMatches, type ConvCase, explicitPad, randomArray, rng, runOn, useWasmWithWinogradForced } from './helpers.js';

type Act = 'linear' | 'relu' | 'relu6';

interface Case extends ConvCase {
  k: number;
  stride: 1 | 2;
  act: Act;
  /** Whether the output transform adds the residual (else the pass after the convolution). */
  inTransform: boolean;
}

const CASES: Case[] = [
  { n: 2, h: 8, w: 8, ci: 16, co: 16, k: 3, stride: 1, pad: 'same', act: 'relu', inTransform: true }, // blocks
  { n: 1, h: 12, w: 16, ci: 8, co: 8, k: 3, stride: 1, pad: explicitPad(1, 1, 1, 1), act: 'relu6', inTransform: true },
  { n: 2, h: 8, w: 4, ci: 8, co: 136, k: 3, stride: 1, pad: 'same', act: 'relu', inTransform: true }, // over 128 channels: chunked
  { n: 1, h: 4, w: 4, ci: 4, co: 4, k: 3, stride: 1, pad: 'same', act: 'linear', inTransform: true },
  { n: 2, h: 7, w: 7, ci: 8, co: 8, k: 3, stride: 1, pad: 'same', act: 'relu', inTransform: false }, // 7x7: tiles overhang
  { n: 1, h: 9, w: 9, ci: 8, co: 12, k: 3, stride: 2, pad: explicitPad(1, 1, 1, 1), act: 'relu', inTransform: false },
  { n: 1, h: 3, w: 3, ci: 4, co: 6, k: 3, stride: 1, pad: 'same', act: 'relu6', inTransform: false }, // 54 outputs: a tail past the SIMD
  { n: 2, h: 6, w: 6, ci: 8, co: 8, k: 1, stride: 1, pad: 'valid', act: 'relu', inTransform: false },
];

function tensors(c: Case, seed: number) {
  const r = rng(seed);
  const [ho, wo] = c.stride === 1 && c.pad !== 'valid' ? [c.h, c.w] : [Math.ceil((c.h - (c.pad === 'valid' ? c.k - 1 : 0)) / c.stride), Math.ceil((c.w - (c.pad === 'valid' ? c.k - 1 : 0)) / c.stride)];
  const x = randomArray(c.n * c.h * c.w * c.ci, r);
  const w = randomArray(c.k * c.k * c.ci * c.co, r);
  const b = randomArray(c.co, r);
  const res = randomArray(c.n * ho * wo * c.co, r);
  return () => ({
    x: tf.tensor4d(x, [c.n, c.h, c.w, c.ci]),
    filter: tf.tensor4d(w, [c.k, c.k, c.ci, c.co]),
    bias: tf.tensor1d(b),
    residual: tf.tensor4d(res, [c.n, ho, wo, c.co]),
  });
}

const attrs = (c: Case) => ({ strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dilations: 1, activation: c.act });

/** The same sums as separate ops: the fused convolution, the add, the activation. */
function unfused(c: Case, make: ReturnType<typeof tensors>): () => tf.Tensor {
  return () => {
    const { x, filter, bias, residual } = make();
    const sum = tf.add(tf.fused.conv2d({ x, filter, strides: c.stride, pad: c.pad, bias }), residual);
    return c.act === 'relu' ? tf.relu(sum) : c.act === 'relu6' ? tf.relu6(sum) : sum;
  };
}

function residualConv(c: Case, make: ReturnType<typeof tensors>): () => tf.Tensor {
  return () => {
    const inputs = make();
    return tf.engine().runKernel(RESIDUAL_CONV2D, inputs as unknown as tf.NamedTensorMap, attrs(c) as unknown as tf.NamedAttrMap) as tf.Tensor;
  };
}

let worst = 0;
useWasmWithWinogradForced(() => `residual conv: max relative error ${worst.toExponential(2)}`);

test('the residual convolution matches cpu, and our unfused kernels bitwise, in the output transform where whole tiles cover the output', () => {
  CASES.forEach((c, i) => {
    const label = JSON.stringify(c);
    const make = tensors(c, 40 + i);
    const start = winogradStats.residual;
    worst = Math.max(worst, assertWasmMatches(label, unfused(c, make), residualConv(c, make)));
    assert.equal(winogradStats.residual > start, c.inTransform, `${label}: added in the output transform`);
    const fused = runOn('wasm', residualConv(c, make)).values;
    const separate = runOn('wasm', unfused(c, make)).values;
    const differs = fused.findIndex((v, j) => !Object.is(v, separate[j]));
    assert.equal(differs, -1, `${label}: element ${differs} ${fused[differs]} vs ${separate[differs]}`);
  });
});

test('a residual of another shape is refused with a message that names it', () => {
  const c = CASES[0];
  const make = tensors(c, 7);
  assert.throws(
    () =>
      tf.tidy(() => {
        const inputs = make();
        const residual = tf.zeros([c.n, c.h, c.w, c.co + 4]);
        tf.engine().runKernel(RESIDUAL_CONV2D, { ...inputs, residual } as unknown as tf.NamedTensorMap, attrs(c) as unknown as tf.NamedAttrMap);
      }),
    /residual's shape 2,8,8,20/,
  );
});
