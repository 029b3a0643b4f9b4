/**
 * 3x3 stride-2 convolutions (ResNet's downsampling layers) through Winograd F(4x4, 2x2) on the four
 * phase images, against the `cpu` backend: paddings ('same', 'valid', explicit and asymmetric), odd
 * sizes, tiles that overhang the output, bias and relu / relu6; and which shapes stay on XNNPACK.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { winogradStats } from '../../src-main/engine/wasm-kernels/winograd.js';
import { keptFilterTransforms } from '../../src-main/engine/wasm-kernels/winograd-filter-cache.js';
import { assertMatchesCpu, type ConvCase, explicitPad, randomArray, rng, sizeOf, useWasmWithWinogradForced } from './helpers.js';

const CASES: ConvCase[] = [
  { n: 2, h: 16, w: 16, ci: 8, co: 12, pad: 'same' },
  { n: 1, h: 17, w: 19, ci: 4, co: 8, pad: 'valid' },
  { n: 1, h: 3, w: 3, ci: 4, co: 4, pad: 'valid' }, // a single output
  { n: 2, h: 18, w: 18, ci: 16, co: 32, pad: explicitPad(1, 1, 1, 1) }, // ResNet's, small
  { n: 3, h: 9, w: 14, ci: 12, co: 8, pad: explicitPad(2, 0, 0, 2) },
  { n: 1, h: 34, w: 34, ci: 64, co: 128, pad: 'valid' }, // ResNet-18's layer 2 at 128 px, after its pad
  { n: 2, h: 11, w: 8, ci: 20, co: 4, pad: 'same' },
];

const calls = (body: () => void): number => {
  const start = winogradStats.forward;
  body();
  return winogradStats.forward - start;
};

function stridedConv(c: ConvCase, seed: number, fused?: { bias: boolean; activation: 'linear' | 'relu' | 'relu6' }): () => tf.Tensor {
  const r = rng(seed);
  const xShape: [number, number, number, number] = [c.n, c.h, c.w, c.ci];
  const fShape: [number, number, number, number] = [3, 3, c.ci, c.co];
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
useWasmWithWinogradForced(() => `3x3 stride-2 Winograd: max relative error ${worst.toExponential(2)}`);

test('3x3 stride-2 Conv2D / FusedConv2D match cpu through Winograd (paddings, odd sizes, bias, relu)', () => {
  const n = calls(() => {
    CASES.forEach((c, i) => {
      worst = Math.max(worst, assertMatchesCpu(`strided ${JSON.stringify(c)}`, stridedConv(c, 30 + i)));
      const fused = { bias: i % 2 === 0, activation: (['relu', 'relu6', 'linear'] as const)[i % 3] };
      worst = Math.max(worst, assertMatchesCpu(`fused strided ${JSON.stringify(c)}`, stridedConv(c, 40 + i, fused)));
    });
  });
  assert.equal(n, 2 * CASES.length);
});

test('3x3 stride-2 convolutions with channels not a multiple of 4, or dilation 2, stay on XNNPACK', () => {
  const n = calls(() => {
    assertMatchesCpu('3 input channels (an image)', stridedConv({ n: 1, h: 12, w: 12, ci: 3, co: 8, pad: 'same' }, 50));
    assertMatchesCpu('6 output channels', stridedConv({ n: 1, h: 12, w: 12, ci: 4, co: 6, pad: 'same' }, 51));
    const r = rng(52);
    const x = randomArray(2 * 15 * 15 * 4, r);
    const w = randomArray(3 * 3 * 4 * 8, r);
    assertMatchesCpu('dilation 2', () => tf.conv2d(tf.tensor4d(x, [2, 15, 15, 4]), tf.tensor4d(w, [3, 3, 4, 8]), 1, 'same', 'NHWC', 2));
  });
  assert.equal(n, 0);
});

test("a stride-2 filter's transform is kept like the others: 25 planes of its four phases' channels", () => {
  const backend = tf.findBackend('wasm') as BackendWasm;
  const r = rng(53);
  const x = tf.tensor4d(randomArray(2 * 12 * 12 * 8, r), [2, 12, 12, 8]);
  const w = tf.tensor4d(randomArray(3 * 3 * 8 * 16, r), [3, 3, 8, 16]);
  const start = keptFilterTransforms(backend);
  const first = tf.tidy(() => tf.conv2d(x, w, 2, 'same'));
  const again = tf.tidy(() => tf.conv2d(x, w, 2, 'same'));
  assert.deepEqual(again.dataSync(), first.dataSync());
  assert.equal(keptFilterTransforms(backend).count, start.count + 1);
  assert.equal(keptFilterTransforms(backend).bytes - start.bytes, 25 * (4 * 8 * 16 + 16) * 4);
  w.dispose();
  assert.equal(keptFilterTransforms(backend).count, start.count, 'disposing the filter frees its transform');
  tf.dispose([x, first, again]);
});

test("in training, a stride-2 layer whose filter transform is large (ResNet's layer 4) stays on XNNPACK", () => {
  const r = rng(54);
  const x = tf.tensor4d(randomArray(8 * 10 * 10 * 256, r), [8, 10, 10, 256]);
  const w = tf.variable(tf.tensor4d(randomArray(3 * 3 * 256 * 512, r), [3, 3, 256, 512]));
  const forced = process.env.FINETUNE_WINOGRAD;
  delete process.env.FINETUNE_WINOGRAD; // the automatic rule
  try {
    const conv = () => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 2, 'valid')) as tf.Scalar;
    assert.equal(calls(() => tf.tidy(() => void conv())), 1, 'inference: Winograd, its 52 MB transform kept');
    const training = () => {
      const { value, grads } = tf.variableGrads(conv, [w]);
      tf.dispose([value, grads]);
    };
    assert.equal(calls(training), 0, 'training: XNNPACK');
  } finally {
    process.env.FINETUNE_WINOGRAD = forced;
    tf.dispose([x, w]);
  }
});
