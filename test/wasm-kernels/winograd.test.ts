/**
 * Winograd F(4x4, 3x3) on wasm (forward Conv2D / FusedConv2D, Conv2DBackpropInput and
 * Conv2DBackpropFilter for 3x3 stride 1) against the `cpu` backend, plus the shapes that must fall
 * back to the XNNPACK paths. FINETUNE_WINOGRAD=1 makes every eligible shape take Winograd (by
 * default only large layers do, where it pays).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { winogradPays, winogradStats } from '../../src-main/engine/wasm-kernels/winograd.js';
import { winogradBlockOptions } from '../../src-main/engine/wasm-kernels/winograd-blocks.js';
import { AT, AT4X5, AT4X7, BT, BT5, BT7, G, G2, G7X4, transformModuleBytes, transposeMatrix } from '../../src-main/engine/wasm-kernels/winograd-transforms.js';
import { assertMatchesCpu, assertWasmMatches, type ConvCase, explicitPad, type Pad, pick, randomArray, relativeMaxError, rng, runOn, sizeOf, useWasmWithWinogradForced } from './helpers.js';

interface Case extends ConvCase {
  k?: number;
  stride?: number;
  dilation?: number;
}

const FIXED: Case[] = [
  { n: 1, h: 7, w: 7, ci: 4, co: 4, pad: 'same' },
  { n: 3, h: 9, w: 13, ci: 8, co: 12, pad: 'same' },
  { n: 1, h: 14, w: 14, ci: 16, co: 8, pad: 'valid' },
  { n: 3, h: 14, w: 14, ci: 64, co: 32, pad: 'same' },
  { n: 1, h: 1, w: 1, ci: 4, co: 8, pad: 'same' }, // 1x1 image: only the centre tap sees data
  { n: 3, h: 1, w: 2, ci: 12, co: 4, pad: explicitPad(1, 1, 1, 1) },
  { n: 1, h: 8, w: 9, ci: 4, co: 20, pad: explicitPad(2, 0, 0, 3) }, // asymmetric, > 1
  { n: 3, h: 5, w: 6, ci: 8, co: 4, pad: explicitPad(0, 1, 2, 0) },
  { n: 1, h: 3, w: 3, ci: 4, co: 4, pad: 'valid' }, // a single output
  { n: 1, h: 17, w: 11, ci: 36, co: 64, pad: 'same' },
  { n: 2, h: 6, w: 7, ci: 136, co: 132, pad: 'same' }, // over 128 channels: the chunked form, not blocks
  { n: 3, h: 21, w: 22, ci: 8, co: 12, pad: 'same' }, // blocks of 10 tile rows: the last one short
];

function randomCase(seed: number): Case {
  const r = rng(seed);
  const pad = pick<Pad>(r, ['same', 'valid', explicitPad(Math.floor(r() * 3), Math.floor(r() * 3), Math.floor(r() * 3), Math.floor(r() * 3))]);
  const min = pad === 'valid' ? 3 : 1;
  return {
    n: pick(r, [1, 3]),
    h: min + Math.floor(r() * 14),
    w: min + Math.floor(r() * 14),
    ci: 4 * (1 + Math.floor(r() * 8)),
    co: 4 * (1 + Math.floor(r() * 8)),
    pad,
  };
}

const RANDOM = Array.from({ length: 24 }, (_, i) => randomCase(5000 + i));

const k = (c: Case) => c.k ?? 3;
const stride = (c: Case) => c.stride ?? 1;
const dilation = (c: Case) => c.dilation ?? 1;

function outShape(c: Case): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [k(c), k(c), c.ci, c.co], stride(c), dilation(c), c.pad).outShape;
}

function checkForward(c: Case, seed: number, fused?: { activation: 'linear' | 'relu' | 'relu6'; bias: boolean }): number {
  const r = rng(seed);
  const xShape = [c.n, c.h, c.w, c.ci];
  const fShape = [k(c), k(c), c.ci, c.co];
  const x = randomArray(sizeOf(xShape), r);
  const w = randomArray(sizeOf(fShape), r);
  const b = randomArray(c.co, r);
  return assertMatchesCpu(`forward ${JSON.stringify(c)} ${JSON.stringify(fused)}`, () => {
    const xs = tf.tensor4d(x, xShape as [number, number, number, number]);
    const ws = tf.tensor4d(w, fShape as [number, number, number, number]);
    if (!fused) return tf.conv2d(xs, ws, stride(c), c.pad, 'NHWC', dilation(c));
    return tf.fused.conv2d({
      x: xs,
      filter: ws,
      strides: stride(c),
      pad: c.pad,
      dilations: dilation(c),
      bias: fused.bias ? tf.tensor1d(b) : undefined,
      activation: fused.activation,
    });
  });
}

function checkDx(c: Case, seed: number): number {
  const r = rng(seed);
  const fShape = [k(c), k(c), c.ci, c.co];
  const yShape = outShape(c);
  const w = randomArray(sizeOf(fShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  return assertMatchesCpu(`dx ${JSON.stringify(c)}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor(dy, yShape), filter: tf.tensor(w, fShape) },
      { strides: stride(c), pad: c.pad, dataFormat: 'NHWC', inputShape: [c.n, c.h, c.w, c.ci] },
    ) as tf.Tensor,
  );
}

function checkDw(c: Case, seed: number): number {
  const r = rng(seed);
  const xShape = [c.n, c.h, c.w, c.ci];
  const yShape = outShape(c);
  const x = randomArray(sizeOf(xShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  return assertMatchesCpu(`dW ${JSON.stringify(c)}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropFilter',
      { x: tf.tensor(x, xShape), dy: tf.tensor(dy, yShape) },
      { strides: stride(c), pad: c.pad, dataFormat: 'NHWC', filterShape: [k(c), k(c), c.ci, c.co] },
    ) as tf.Tensor,
  );
}

const worst = { forward: 0, dx: 0, dw: 0 };
useWasmWithWinogradForced(
  () => `winograd max relative errors: forward ${worst.forward.toExponential(2)}, dx ${worst.dx.toExponential(2)}, dW ${worst.dw.toExponential(2)}`,
);

/** Runs `body` and returns how many Winograd calls of each kind it made. */
function counting(body: () => void): { forward: number; filterGrad: number } {
  const start = { ...winogradStats };
  body();
  return { forward: winogradStats.forward - start.forward, filterGrad: winogradStats.filterGrad - start.filterGrad };
}

test('F(4,3), F(4,2) and F(4,4) matrices: A^T [(G g) * (B^T d)] is the 1-D correlation, exactly', () => {
  const r = rng(1);
  for (const { at, g: gm, bt, outputs, taps } of [
    { at: AT, g: G, bt: BT, outputs: 4, taps: 3 },
    { at: AT4X5, g: G2, bt: BT5, outputs: 4, taps: 2 },
    { at: AT4X7, g: G7X4, bt: BT7, outputs: 4, taps: 4 },
  ]) {
    for (let trial = 0; trial < 20; trial++) {
      const d = Array.from({ length: bt.length }, () => r() * 2 - 1);
      const g = Array.from({ length: taps }, () => r() * 2 - 1);
      const u = gm.map((row) => row.reduce((s, v, i) => s + v * g[i], 0));
      const v = bt.map((row) => row.reduce((s, x, i) => s + x * d[i], 0));
      const y = at.map((row) => row.reduce((s, a, i) => s + a * u[i] * v[i], 0));
      assert.equal(y.length, outputs);
      for (let o = 0; o < outputs; o++) {
        const direct = g.reduce((s, gk, k) => s + gk * d[o + k], 0);
        assert.ok(Math.abs(y[o] - direct) < 1e-12, `F(${outputs},${taps}) output ${o}: ${y[o]} vs ${direct}`);
      }
    }
    // The point at infinity reads only the last tap (strided-winograd.ts skips its products when that is 0).
    assert.deepEqual(gm[gm.length - 1], [...Array(taps - 1).fill(0), 1]);
  }
  assert.deepEqual(transposeMatrix(AT).length, 6);
});

test('the generated transform modules validate', () => {
  const Wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
  const image = { kind: 'image' as const, rowBytes: 4096, pixBytes: 64, tile: 4 };
  const table = { kind: 'table' as const };
  assert.ok(Wasm.validate(transformModuleBytes({ L: BT, input: image, output: table })));
  assert.ok(Wasm.validate(transformModuleBytes({ L: AT, input: table, output: image, bias: true, act: 'relu6' }, true)));
  assert.ok(Wasm.validate(transformModuleBytes({ L: transposeMatrix(G), input: table, output: image })));
});

test('forward Conv2D matches cpu (fixed and random cases) and goes through Winograd', () => {
  const calls = counting(() => {
    FIXED.forEach((c, i) => (worst.forward = Math.max(worst.forward, checkForward(c, i))));
    RANDOM.forEach((c, i) => (worst.forward = Math.max(worst.forward, checkForward(c, 100 + i))));
  });
  assert.equal(calls.forward, FIXED.length + RANDOM.length);
});

test('FusedConv2D with bias and relu / relu6 / linear matches cpu', () => {
  const calls = counting(() => {
    FIXED.forEach((c, i) => {
      worst.forward = Math.max(worst.forward, checkForward(c, 200 + i, { activation: 'relu', bias: true }));
      worst.forward = Math.max(worst.forward, checkForward(c, 300 + i, { activation: pick(rng(i), ['relu6', 'linear'] as const), bias: i % 2 === 0 }));
    });
  });
  assert.equal(calls.forward, 2 * FIXED.length);
});

test('forward block by block (up to 128 channels) gives bitwise what the chunked form gives', () => {
  const cases = [...FIXED, ...RANDOM, { n: 5, h: 33, w: 30, ci: 64, co: 128, pad: 'same' as Pad }];
  let blocks = 0;
  cases.forEach((c, i) => {
    const r = rng(900 + i);
    const x = randomArray(c.n * c.h * c.w * c.ci, r);
    const w = randomArray(9 * c.ci * c.co, r);
    const b = randomArray(c.co, r);
    const run = () =>
      runOn('wasm', () =>
        tf.fused.conv2d({
          x: tf.tensor4d(x, [c.n, c.h, c.w, c.ci]),
          filter: tf.tensor4d(w, [3, 3, c.ci, c.co]),
          pad: c.pad,
          strides: 1,
          bias: tf.tensor1d(b),
          activation: 'relu',
        }),
      ).values;
    const start = winogradStats.blocks;
    const byBlocks = run();
    blocks += winogradStats.blocks - start;
    winogradBlockOptions.enabled = false;
    let chunked: Float32Array;
    try {
      chunked = run();
    } finally {
      winogradBlockOptions.enabled = true;
    }
    assert.equal(byBlocks.length, chunked.length);
    const differs = byBlocks.findIndex((v, j) => !Object.is(v, chunked[j]));
    assert.equal(differs, -1, `${JSON.stringify(c)}: element ${differs} ${byBlocks[differs]} vs ${chunked[differs]}`);
  });
  assert.equal(blocks, cases.filter((c) => c.ci <= 128 && c.co <= 128).length);
});

test('Conv2DBackpropInput (stride 1, 3x3) matches cpu through Winograd', () => {
  const calls = counting(() => {
    FIXED.forEach((c, i) => (worst.dx = Math.max(worst.dx, checkDx(c, 400 + i))));
    RANDOM.forEach((c, i) => (worst.dx = Math.max(worst.dx, checkDx(c, 500 + i))));
  });
  assert.equal(calls.forward, FIXED.length + RANDOM.length);
});

test('Conv2DBackpropFilter (stride 1, 3x3) matches cpu through Winograd', () => {
  const calls = counting(() => {
    FIXED.forEach((c, i) => (worst.dw = Math.max(worst.dw, checkDw(c, 600 + i))));
    RANDOM.forEach((c, i) => (worst.dw = Math.max(worst.dw, checkDw(c, 700 + i))));
  });
  assert.equal(calls.filterGrad, FIXED.length + RANDOM.length);
});

test('ineligible shapes fall back and stay correct: stride-2 gradients, 5x5, dilation 2, channels not a multiple of 4, prelu', () => {
  const cases: Case[] = [
    { n: 2, h: 9, w: 9, ci: 8, co: 8, pad: 'same', stride: 2 },
    { n: 2, h: 9, w: 9, ci: 8, co: 8, pad: 'same', k: 5 },
    { n: 2, h: 9, w: 9, ci: 8, co: 8, pad: 'same', dilation: 2 },
    { n: 2, h: 9, w: 9, ci: 6, co: 8, pad: 'same' },
    { n: 2, h: 9, w: 9, ci: 8, co: 3, pad: 'valid' },
  ];
  const calls = counting(() => {
    cases.forEach((c, i) => {
      // A stride-2 forward pass has its own Winograd form (strided-winograd.test.ts).
      if ((c.stride ?? 1) === 1) {
        checkForward(c, 800 + i);
        checkForward(c, 810 + i, { activation: 'relu', bias: true });
      }
      if (dilation(c) === 1) {
        checkDx(c, 820 + i);
        checkDw(c, 830 + i);
      }
    });
    const r = rng(9);
    const x = randomArray(2 * 8 * 8 * 8, r);
    const w = randomArray(3 * 3 * 8 * 8, r);
    const alpha = randomArray(8, r);
    assertMatchesCpu('prelu', () =>
      tf.fused.conv2d({
        x: tf.tensor4d(x, [2, 8, 8, 8]),
        filter: tf.tensor4d(w, [3, 3, 8, 8]),
        pad: 'same',
        strides: 1,
        activation: 'prelu',
        preluActivationWeights: tf.tensor1d(alpha),
      }),
    );
  });
  assert.deepEqual(calls, { forward: 0, filterGrad: 0 });
});

test('FINETUNE_WINOGRAD=0 turns Winograd off; by default only large layers use it', () => {
  const c: Case = { n: 2, h: 8, w: 8, ci: 8, co: 8, pad: 'same' };
  try {
    process.env.FINETUNE_WINOGRAD = '0';
    assert.deepEqual(counting(() => (checkForward(c, 1), checkDx(c, 2), checkDw(c, 3))), { forward: 0, filterGrad: 0 });
    delete process.env.FINETUNE_WINOGRAD;
    assert.deepEqual(counting(() => (checkForward(c, 1), checkDx(c, 2), checkDw(c, 3))), { forward: 0, filterGrad: 0 });
  } finally {
    process.env.FINETUNE_WINOGRAD = '1';
  }
  assert.ok(winogradPays({ n: 16, outH: 7, outW: 7, ci: 512, co: 512 }));
  assert.ok(winogradPays({ n: 16, outH: 56, outW: 56, ci: 64, co: 64 }));
  assert.ok(!winogradPays({ n: 2, outH: 8, outW: 8, ci: 8, co: 8 }));
  // Few tiles: transforming the filter costs more than the direct forward conv, not more than the
  // direct input gradient (which packs a fresh flipped filter itself).
  assert.ok(!winogradPays({ n: 1, outH: 7, outW: 7, ci: 512, co: 512 }));
  assert.ok(winogradPays({ n: 8, outH: 4, outW: 4, ci: 512, co: 512 }));
  assert.ok(winogradPays({ n: 1, outH: 7, outW: 7, ci: 512, co: 512 }, 'inputGrad'));
  assert.ok(winogradPays({ n: 1, outH: 7, outW: 7, ci: 512, co: 512 }, 'filterGrad'));
  assert.ok(!winogradPays({ n: 1, outH: 4, outW: 4, ci: 512, co: 512 }, 'filterGrad'));
  // The filter gradient pays from a lower size than the forward pass.
  assert.ok(winogradPays({ n: 1, outH: 56, outW: 56, ci: 16, co: 16 }, 'filterGrad'));
  assert.ok(!winogradPays({ n: 1, outH: 56, outW: 56, ci: 16, co: 16 }));
});

test('variableGrads through a small conv net match cpu', () => {
  const r = rng(42);
  const shapes: Record<string, number[]> = { w1: [3, 3, 4, 8], b1: [8], w2: [3, 3, 8, 8], w3: [3, 3, 8, 4], w4: [3, 3, 4, 4] };
  const values = Object.fromEntries(Object.entries(shapes).map(([name, shape]) => [name, randomArray(sizeOf(shape), r)]));
  const x = randomArray(3 * 10 * 11 * 4, r);
  const net = () => {
    const v = Object.fromEntries(Object.entries(shapes).map(([name, shape]) => [name, tf.variable(tf.tensor(values[name], shape), true, `${name}_${Math.random()}`)]));
    const xs = tf.tensor4d(x, [3, 10, 11, 4]);
    const { value, grads } = tf.variableGrads(() => {
      let h = tf.fused.conv2d({ x: xs, filter: v.w1 as tf.Tensor4D, bias: v.b1, strides: 1, pad: 'same', activation: 'relu' });
      h = tf.relu(tf.conv2d(h, v.w2 as tf.Tensor4D, 1, 'valid'));
      h = tf.conv2d(h, v.w3 as tf.Tensor4D, 1, [[0, 0], [2, 0], [1, 2], [0, 0]]);
      h = tf.conv2d(h, v.w4 as tf.Tensor4D, 2, 'same'); // stride 2: not Winograd
      return tf.mean(tf.square(h)) as tf.Scalar;
    }, Object.values(v));
    const out = tf.concat([value.reshape([1]), ...Object.values(grads).map((g) => g.flatten())]);
    tf.dispose([...Object.values(v), ...Object.values(grads)]);
    return out;
  };
  const reference = runOn('cpu', net);
  const calls = counting(() => {
    const actual = runOn('wasm', net);
    // Per gradient, relative to its own scale (they differ by orders of magnitude).
    let offset = 1;
    for (const shape of Object.values(shapes)) {
      const size = sizeOf(shape);
      const err = relativeMaxError(reference.values.subarray(offset, offset + size), actual.values.subarray(offset, offset + size));
      assert.ok(err <= 1e-4, `gradient of ${JSON.stringify(shape)}: ${err.toExponential(2)}`);
      offset += size;
    }
    assert.ok(Math.abs(reference.values[0] - actual.values[0]) <= 1e-5 * Math.abs(reference.values[0]));
  });
  assert.ok(calls.forward >= 3 + 2 && calls.filterGrad >= 3, JSON.stringify(calls));
});

test('no tensor or wasm buffer leaks', () => {
  const backend = tf.findBackend('wasm') as BackendWasm;
  const c: Case = { n: 3, h: 9, w: 13, ci: 8, co: 12, pad: 'same' };
  const once = () => {
    checkForward(c, 1, { activation: 'relu', bias: true });
    checkDx(c, 2);
    checkDw(c, 3);
  };
  once();
  const tensors = tf.memory().numTensors;
  const ids = backend.numDataIds();
  once();
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), ids);
  // Same check with the default threshold, on a layer big enough to use Winograd by default.
  const big: Case = { n: 4, h: 28, w: 28, ci: 64, co: 64, pad: 'same' };
  delete process.env.FINETUNE_WINOGRAD;
  try {
    const calls = counting(() => {
      assertWasmMatches('big forward', ...sameOnBoth(big));
    });
    assert.equal(calls.forward, 1);
  } finally {
    process.env.FINETUNE_WINOGRAD = '1';
  }
  assert.equal(backend.numDataIds(), ids);
});

function sameOnBoth(c: Case): [() => tf.Tensor, () => tf.Tensor] {
  const r = rng(3);
  const x = randomArray(c.n * c.h * c.w * c.ci, r);
  const w = randomArray(9 * c.ci * c.co, r);
  const f = () => tf.conv2d(tf.tensor4d(x, [c.n, c.h, c.w, c.ci]), tf.tensor4d(w, [3, 3, c.ci, c.co]), 1, c.pad);
  return [f, f];
}
