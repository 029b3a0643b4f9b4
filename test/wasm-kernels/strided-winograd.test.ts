/**
 * Stride-2 convolutions through Winograd on the four phase images (strided-winograd.ts), against
 * the `cpu` backend: 3x3 filters (ResNet's downsampling layers, F(4x4, 2x2) or F(2x2, 2x2)) and 7x7 (ResNet's
 * stem, F(4x4, 4x4)), phases read in place (channels a multiple of 4) and side by side (RGB
 * images); paddings ('same', 'valid', explicit and asymmetric), odd sizes, tiles that overhang the
 * output, bias and relu / relu6; which shapes stay on XNNPACK, and ResNet's layer 4 in training.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { stridedTile } from '../../src-main/engine/wasm-kernels/strided-winograd.js';
import { winogradStats } from '../../src-main/engine/wasm-kernels/winograd.js';
import { winogradBlockOptions } from '../../src-main/engine/wasm-kernels/winograd-blocks.js';
import { assertMatchesCpu, type ConvCase, explicitPad, randomArray, rng, runOn, sizeOf, useWasmWithWinogradForced } from './helpers.js';

const CASES: Record<3 | 7, ConvCase[]> = {
  3: [
    { n: 2, h: 16, w: 16, ci: 8, co: 12, pad: 'same' },
    { n: 1, h: 17, w: 19, ci: 4, co: 8, pad: 'valid' },
    { n: 1, h: 3, w: 3, ci: 4, co: 4, pad: 'valid' }, // a single output
    { n: 2, h: 18, w: 18, ci: 16, co: 32, pad: explicitPad(1, 1, 1, 1) }, // ResNet's, small
    { n: 3, h: 9, w: 14, ci: 12, co: 8, pad: explicitPad(2, 0, 0, 2) },
    { n: 1, h: 34, w: 34, ci: 64, co: 128, pad: 'valid' }, // ResNet-18's layer 2 at 128 px, after its pad
    { n: 2, h: 11, w: 8, ci: 20, co: 4, pad: 'same' },
    { n: 2, h: 9, w: 10, ci: 8, co: 132, pad: 'same' }, // over 128 channels: the chunked form, not blocks
    { n: 1, h: 16, w: 16, ci: 8, co: 132, pad: 'same' }, // the chunked form with 4x4 tiles
    { n: 1, h: 28, w: 28, ci: 16, co: 32, pad: explicitPad(1, 1, 1, 1) }, // ResNet's layer 3 at 224 px, small: 14x14 in 2x2 tiles
  ],
  7: [
    { n: 2, h: 20, w: 23, ci: 3, co: 8, pad: 'same' },
    { n: 1, h: 17, w: 17, ci: 3, co: 16, pad: 'valid' },
    { n: 1, h: 7, w: 7, ci: 3, co: 4, pad: 'valid' }, // a single output
    { n: 2, h: 30, w: 30, ci: 4, co: 12, pad: explicitPad(3, 2, 1, 3) },
    { n: 3, h: 9, w: 12, ci: 1, co: 4, pad: explicitPad(3, 3, 3, 3) },
    { n: 1, h: 38, w: 38, ci: 3, co: 64, pad: explicitPad(3, 3, 3, 3) }, // ResNet's stem, small
    { n: 2, h: 11, w: 8, ci: 5, co: 20, pad: 'same' },
    { n: 1, h: 15, w: 14, ci: 3, co: 132, pad: explicitPad(3, 3, 3, 3) }, // the chunked form, side by side
  ],
};

const calls = (body: () => void): number => {
  const start = winogradStats.forward;
  body();
  return winogradStats.forward - start;
};

type Fused = { bias: boolean; activation: 'linear' | 'relu' | 'relu6' };

function stridedConv(c: ConvCase, taps: number, seed: number, fused?: Fused, dilation = 1): () => tf.Tensor {
  const r = rng(seed);
  const xShape: [number, number, number, number] = [c.n, c.h, c.w, c.ci];
  const fShape: [number, number, number, number] = [taps, taps, c.ci, c.co];
  const x = randomArray(sizeOf(xShape), r);
  const w = randomArray(sizeOf(fShape), r);
  const b = randomArray(c.co, r);
  const strides = dilation === 1 ? 2 : 1; // tf.js takes dilation only with stride 1
  return () => {
    const xs = tf.tensor4d(x, xShape);
    const ws = tf.tensor4d(w, fShape);
    if (!fused) return tf.conv2d(xs, ws, strides, c.pad, 'NHWC', dilation);
    return tf.fused.conv2d({ x: xs, filter: ws, strides, pad: c.pad, bias: fused.bias ? tf.tensor1d(b) : undefined, activation: fused.activation });
  };
}

const worst = { 3: 0, 7: 0 };
useWasmWithWinogradForced(() => `stride-2 Winograd: max relative error 3x3 ${worst[3].toExponential(2)}, 7x7 ${worst[7].toExponential(2)}`);

for (const taps of [3, 7] as const) {
  test(`${taps}x${taps} stride-2 Conv2D / FusedConv2D match cpu through Winograd (paddings, odd sizes, bias, relu)`, () => {
    const n = calls(() => {
      CASES[taps].forEach((c, i) => {
        worst[taps] = Math.max(worst[taps], assertMatchesCpu(`${taps}x${taps} ${JSON.stringify(c)}`, stridedConv(c, taps, 10 * taps + i)));
        const fused = { bias: i % 2 === 0, activation: (['relu', 'relu6', 'linear'] as const)[i % 3] };
        worst[taps] = Math.max(worst[taps], assertMatchesCpu(`fused ${taps}x${taps} ${JSON.stringify(c)}`, stridedConv(c, taps, 100 * taps + i, fused)));
      });
    });
    assert.equal(n, 2 * CASES[taps].length);
  });
}

test('3x3: the cases above take both tilings, each where it multiplies less (2x2 tiles where 4x4 ones overhang)', () => {
  const tiles = CASES[3].map((c) => {
    const out = tf.conv2d(tf.zeros([c.n, c.h, c.w, c.ci]) as tf.Tensor4D, tf.zeros([3, 3, c.ci, c.co]) as tf.Tensor4D, 2, c.pad);
    const [, outH, outW] = out.shape;
    out.dispose();
    return stridedTile([3, 3, c.ci, c.co], outH, outW);
  });
  assert.deepEqual(tiles, [4, 4, 2, 2, 2, 4, 2, 2, 4, 2]);
  // ResNet at 224 / 128 px: layers 2-4 (56, 28, 14, 7 / 32, 16, 8, 4 outputs a side after layer 1).
  assert.deepEqual([28, 14, 7, 16, 8, 4].map((o) => stridedTile([3, 3, 64, 128], o, o)), [4, 2, 4, 4, 4, 4]);
});

test('block by block (up to 128 channels of products) gives bitwise what the chunked form gives, phases in place and side by side', () => {
  let blocks = 0;
  let chunks = 0;
  for (const taps of [3, 7] as const) {
    CASES[taps].forEach((c, i) => {
      const conv = stridedConv(c, taps, 300 + i, { bias: true, activation: 'relu' });
      const start = winogradStats.blocks;
      const byBlocks = runOn('wasm', conv).values;
      if (winogradStats.blocks > start) blocks++;
      else chunks++;
      winogradBlockOptions.enabled = false;
      let chunked: Float32Array;
      try {
        chunked = runOn('wasm', conv).values;
      } finally {
        winogradBlockOptions.enabled = true;
      }
      const differs = byBlocks.findIndex((v, j) => !Object.is(v, chunked[j]));
      assert.equal(differs, -1, `${taps}x${taps} ${JSON.stringify(c)}: element ${differs} ${byBlocks[differs]} vs ${chunked[differs]}`);
    });
  }
  // All but the three with over 128 output channels.
  assert.deepEqual({ blocks, chunks }, { blocks: CASES[3].length + CASES[7].length - 3, chunks: 3 });
});

test('stay on XNNPACK: 3x3 with 3 input or 6 output channels, dilation 2, 7x7 with stride 1 or dilation 2', () => {
  const n = calls(() => {
    assertMatchesCpu('3x3, 3 input channels (an image)', stridedConv({ n: 1, h: 12, w: 12, ci: 3, co: 8, pad: 'same' }, 3, 50));
    assertMatchesCpu('3x3, 6 output channels', stridedConv({ n: 1, h: 12, w: 12, ci: 4, co: 6, pad: 'same' }, 3, 51));
    assertMatchesCpu('3x3, dilation 2', stridedConv({ n: 2, h: 15, w: 15, ci: 4, co: 8, pad: 'same' }, 3, 52, undefined, 2));
    assertMatchesCpu('7x7, stride 1', () => tf.conv2d(tf.ones([2, 15, 15, 3]) as tf.Tensor4D, tf.ones([7, 7, 3, 8]) as tf.Tensor4D, 1, 'same'));
    assertMatchesCpu('7x7, dilation 2', stridedConv({ n: 2, h: 15, w: 15, ci: 3, co: 8, pad: 'same' }, 7, 53, undefined, 2));
  });
  assert.equal(n, 0);
});

test("ResNet's layer 4 (a 52 MB filter transform) takes Winograd in inference, its transform kept, and in training, made fresh", () => {
  const r = rng(54);
  const x = tf.tensor4d(randomArray(8 * 10 * 10 * 256, r), [8, 10, 10, 256]);
  const initial = tf.tensor4d(randomArray(3 * 3 * 256 * 512, r), [3, 3, 256, 512]);
  const w = tf.variable(initial);
  initial.dispose(); // the variable holds the only reference, so disposing it frees the kept transform
  const forced = process.env.FINETUNE_WINOGRAD;
  delete process.env.FINETUNE_WINOGRAD; // the automatic rule
  try {
    const conv = () => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 2, 'valid')) as tf.Scalar;
    assert.equal(calls(() => tf.tidy(() => void conv())), 1, 'inference');
    const training = () => {
      const { value, grads } = tf.variableGrads(conv, [w]);
      tf.dispose([value, grads]);
    };
    assert.equal(calls(training), 1, 'training');
  } finally {
    process.env.FINETUNE_WINOGRAD = forced;
    tf.dispose([x, w]);
  }
});
