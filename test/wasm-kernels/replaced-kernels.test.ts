/**
 * The stock wasm kernels we replace for speed or memory (Tile, Sum, Mean, Max, MaxPool, MaxPoolGrad, Slice,
 * Identity, Cast, BatchMatMul, PadV2, Relu, Relu6, ClipByValue) must keep their exact semantics:
 * checked against `cpu`, including the cases that fall back to the stock kernel and the ones that
 * share memory instead of copying.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { assertMatchesCpu, randomArray, rng, runOn, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

before(useWasmWithTrainingKernels);

function data(shape: number[], seed: number): Float32Array {
  return randomArray(sizeOf(shape), rng(seed));
}

test('Tile matches cpu for float32, int32 and bool, any rank and repetition', () => {
  const cases: [number[], number[]][] = [
    [[1, 1, 1, 5], [3, 4, 2, 1]], // BatchNorm broadcast
    [[2, 3], [1, 1]],
    [[2, 3], [3, 2]],
    [[4], [5]],
    [[2, 1, 3], [1, 7, 1]],
    [[1, 2, 1, 2, 1], [2, 1, 3, 1, 2]],
  ];
  cases.forEach(([shape, reps], i) => {
    const v = data(shape, i);
    assertMatchesCpu(`tile f32 ${shape} x ${reps}`, () => tf.tile(tf.tensor(v, shape), reps), 0);
    const ints = Int32Array.from(v, (x) => Math.round(x * 100));
    assertMatchesCpu(`tile i32 ${shape} x ${reps}`, () => tf.tile(tf.tensor(ints, shape, 'int32'), reps), 0);
    assertMatchesCpu(`tile bool ${shape} x ${reps}`, () => tf.tile(tf.tensor(v, shape).greater(0), reps).cast('float32'), 0);
  });
});

test('Sum and Mean match cpu on leading-axis (fast path) and other (stock) reductions', () => {
  const shape = [3, 5, 7, 6];
  const v = data(shape, 42);
  const axesList: (number | number[])[] = [[0, 1, 2], [0], [0, 1], [0, 1, 2, 3], [1, 2], [3], -1, [2, 0, 1]];
  for (const axis of axesList) {
    for (const keepDims of [false, true]) {
      assertMatchesCpu(`sum ${axis} ${keepDims}`, () => tf.sum(tf.tensor(v, shape), axis, keepDims));
      assertMatchesCpu(`mean ${axis} ${keepDims}`, () => tf.mean(tf.tensor(v, shape), axis, keepDims));
    }
  }
  // int32 sums stay exact (stock path).
  const ints = Int32Array.from(v, (x) => Math.round(x * 1000));
  assertMatchesCpu('sum int32', () => tf.sum(tf.tensor(ints, shape, 'int32'), [0, 1, 2]).cast('float32'), 0);
});

test('Mean and Max over height and width (the global pools) match cpu, as do the other reductions of Max', () => {
  for (const shape of [
    [3, 5, 7, 6],
    [16, 4, 4, 32], // ResNet's last map at 128 px
    [2, 1, 1, 5], // one pixel: the input itself
    [1, 2, 1, 3],
  ]) {
    const v = data(shape, sizeOf(shape));
    for (const keepDims of [false, true]) {
      for (const axis of [[1, 2], [2, 1]]) {
        assertMatchesCpu(`mean ${shape} ${axis} ${keepDims}`, () => tf.mean(tf.tensor(v, shape), axis, keepDims), 1e-6);
        assertMatchesCpu(`max ${shape} ${axis} ${keepDims}`, () => tf.max(tf.tensor(v, shape), axis, keepDims), 0);
      }
    }
  }
  const v = data([3, 5, 7, 6], 43);
  for (const axis of [[0, 1, 2], [3], [1], -1]) assertMatchesCpu(`max ${axis}`, () => tf.max(tf.tensor(v, [3, 5, 7, 6]), axis), 0);
  assertMatchesCpu('max 3-D', () => tf.max(tf.tensor(v, [15, 7, 6]), [1, 2]), 0);
});

test('Sum over a large leading extent keeps float32 accuracy', () => {
  const shape = [16, 56, 56, 8];
  const v = data(shape, 3).map((x) => x + 0.5); // a mean far from 0, where relative error shows
  assertMatchesCpu('sum large', () => tf.sum(tf.tensor(v, shape), [0, 1, 2]), 1e-5);
});

test("MaxPool matches cpu exactly: ResNet's 3x3 stride-2 pools (ours: padding, odd sizes, negative values, a NaN never winning) and every other pool (stock)", () => {
  const cases: { shape: number[]; f: number; s: number; pad: 'same' | 'valid' | number }[] = [
    { shape: [2, 9, 9, 8], f: 3, s: 2, pad: 'valid' },
    { shape: [3, 8, 7, 12], f: 3, s: 2, pad: 'same' },
    { shape: [2, 64, 64, 64], f: 3, s: 2, pad: 1 }, // ResNet's
    { shape: [1, 5, 6, 4], f: 3, s: 2, pad: 1 },
    { shape: [2, 3, 3, 4], f: 3, s: 2, pad: 'valid' },
    { shape: [2, 9, 9, 3], f: 3, s: 2, pad: 1 }, // 3 channels: stock
    { shape: [2, 8, 8, 4], f: 2, s: 2, pad: 'valid' }, // 2x2: stock
    { shape: [2, 8, 8, 4], f: 3, s: 1, pad: 'same' }, // stride 1: stock
  ];
  cases.forEach((c, i) => {
    const v = data(c.shape, 30 + i);
    assertMatchesCpu(`maxPool ${JSON.stringify(c)}`, () => tf.maxPool(tf.tensor4d(v, c.shape as [number, number, number, number]), c.f, c.s, c.pad), 0);
  });
  // A NaN never wins a window on cpu, wherever it sits in it (here the first pixel of a padded window, and inside one).
  const v = data([1, 6, 6, 4], 40);
  for (const at of [0, 1, (2 * 6 + 3) * 4 + 2]) v[at] = Number.NaN;
  assertMatchesCpu('maxPool with NaN', () => tf.maxPool(tf.tensor4d(v, [1, 6, 6, 4]), 3, 2, 1), 0);
});

test('MaxPoolGrad matches cpu (strides, padding, odd sizes)', () => {
  const cases: { shape: number[]; f: [number, number]; s: [number, number]; pad: 'same' | 'valid' | number }[] = [
    { shape: [2, 9, 9, 3], f: [3, 3], s: [2, 2], pad: 'valid' }, // ResNet stem after ZeroPadding
    { shape: [2, 8, 7, 4], f: [3, 3], s: [2, 2], pad: 'same' },
    { shape: [1, 6, 6, 2], f: [2, 2], s: [2, 2], pad: 'valid' },
    { shape: [2, 7, 9, 3], f: [3, 2], s: [1, 2], pad: 1 },
    { shape: [2, 9, 9, 8], f: [3, 3], s: [2, 2], pad: 'valid' }, // SIMD path from here
    { shape: [3, 8, 7, 12], f: [3, 3], s: [2, 2], pad: 'same' },
    { shape: [2, 7, 9, 4], f: [3, 2], s: [1, 2], pad: 1 },
  ];
  cases.forEach((c, i) => {
    const v = data(c.shape, 10 + i);
    const yShape = tf.backend_util.computePool2DInfo(c.shape as [number, number, number, number], c.f, c.s, 1, c.pad).outShape;
    const dy = data(yShape, 20 + i); // distinct per output, so a misrouted gradient shows
    assertMatchesCpu(`maxPoolGrad ${JSON.stringify(c)}`, () =>
      tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, c.f, c.s, c.pad).mul(tf.tensor(dy, yShape)).sum())(tf.tensor(v, c.shape)),
    );
  });
});

test('MaxPoolGrad sends a tied window to the same position as cpu (first max in row-major order)', () => {
  // ReLU outputs are full of exact zeros, so ties are the common case in real networks.
  // C = 2 takes the JS path, C = 8 the SIMD one.
  for (const c of [2, 8]) {
    const v = new Float32Array(2 * 6 * 6 * c).map((_, i) => (i % 5 === 0 ? 1 : 0));
    assertMatchesCpu(`maxPoolGrad ties C=${c}`, () =>
      tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same').sum())(tf.tensor(v, [2, 6, 6, c])),
      0,
    );
  }
});

test('FusedBatchNorm (forward) matches cpu with and without scale / offset, any rank', () => {
  for (const shape of [[3, 5, 7, 8], [4, 6, 12], [5, 16], [2, 3, 3, 6], [2, 4, 4, 8]]) {
    const c = shape[shape.length - 1];
    const r = rng(sizeOf(shape));
    const x = randomArray(sizeOf(shape), r).map((v) => v * 50 + 100); // far from 0: cancellation shows
    const [mean, variance, scale, offset] = [randomArray(c, r).map((v) => v * 50 + 100), randomArray(c, r).map((v) => v * v * 900 + 1), randomArray(c, r), randomArray(c, r)];
    for (const [withScale, withOffset] of [[true, true], [false, true], [true, false], [false, false]]) {
      assertMatchesCpu(`batchNorm ${shape} scale ${withScale} offset ${withOffset}`, () =>
        tf.batchNorm(
          tf.tensor(x, shape),
          tf.tensor1d(mean),
          tf.tensor1d(variance),
          withOffset ? tf.tensor1d(offset) : undefined,
          withScale ? tf.tensor1d(scale) : undefined,
          1e-3,
        ),
      );
    }
  }
});

test('Slice matches cpu for contiguous, strided-row and inner-axis slices of each dtype', () => {
  const shape = [3, 6, 5, 4];
  const v = data(shape, 5);
  const cases: [number[], number[]][] = [
    [[0, 1, 1, 0], [3, 4, 3, 4]], // ZeroPadding2D gradient
    [[1, 0, 0, 0], [2, 6, 5, 4]], // contiguous
    [[0, 0, 0, 1], [3, 6, 5, 2]], // innermost axis
    [[2, 5, 4, 3], [1, 1, 1, 1]],
    [[0, 0, 0, 0], [-1, -1, -1, -1]],
  ];
  for (const [begin, size] of cases) {
    assertMatchesCpu(`slice f32 ${begin} ${size}`, () => tf.slice(tf.tensor(v, shape), begin, size), 0);
    const ints = Int32Array.from(v, (x) => Math.round(x * 100));
    assertMatchesCpu(`slice i32 ${begin} ${size}`, () => tf.slice(tf.tensor(ints, shape, 'int32'), begin, size).cast('float32'), 0);
  }
  assertMatchesCpu('slice 1-D', () => tf.slice(tf.tensor(v), 7, 11), 0);
  assertMatchesCpu('slice 2-D', () => tf.slice(tf.tensor(v, [12, 30]), [3, 4], [5, 20]), 0);
});

test('Identity and same-dtype Cast share memory, and disposing either leaves the other intact', () => {
  tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  const a = tf.tensor([1, 2, 3]);
  const b = a.clone();
  const c = tf.cast(a, 'float32');
  const d = tf.cast(a, 'int32');
  a.dispose();
  assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3]);
  b.dispose();
  assert.deepEqual(Array.from(c.dataSync()), [1, 2, 3]);
  assert.deepEqual(Array.from(d.dataSync()), [1, 2, 3]);
  assert.equal(d.dtype, 'int32');
  c.dispose();
  d.dispose();
  assert.equal(tf.memory().numTensors, before);
  // Casting between dtypes still converts like cpu.
  const v = Float32Array.from([1.7, -2.2, 0, 3.5]);
  assert.deepEqual(runOn('wasm', () => tf.tensor(v).cast('int32')).values, runOn('cpu', () => tf.tensor(v).cast('int32')).values);
});

test('a slice of the whole tensor shares its buffer, and outlives the tensor it came from', () => {
  tf.setBackend('wasm');
  const before = tf.memory().numDataBuffers;
  const a = tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const whole = tf.slice(a, [0, 0], [2, 3]);
  assert.equal(tf.memory().numDataBuffers, before + 1, 'one buffer for both');
  a.dispose();
  assert.deepEqual(Array.from(whole.dataSync()), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(whole.shape, [2, 3]);
  whole.dispose();
  assert.equal(tf.memory().numDataBuffers, before);
});

test('a variable keeps its value when the tensor it was assigned from is disposed', () => {
  tf.setBackend('wasm');
  const v = tf.variable(tf.zeros([3]));
  const t = tf.tensor([4, 5, 6]);
  v.assign(t);
  const alias = v.clone();
  t.dispose();
  assert.deepEqual(Array.from(v.dataSync()), [4, 5, 6]);
  v.assign(tf.tensor([7, 8, 9]));
  assert.deepEqual(Array.from(alias.dataSync()), [4, 5, 6]);
  alias.dispose();
  v.dispose();
});

test('BatchMatMul matches cpu with every transpose flag, batched (stock) and not', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[7, 5], [5, 3], false, false],
    [[5, 7], [5, 3], true, false], // dW = xT dy of a Dense layer
    [[7, 5], [3, 5], false, true], // dx = dy WT
    [[4, 6], [40, 6], false, true], // ... with a large W: computed as (W dyT)T
    [[1, 4, 6], [1, 40, 6], false, true],
    [[5, 7], [3, 5], true, true],
    [[1, 6, 4], [1, 6, 2], true, false],
    [[2, 4, 6], [2, 5, 6], false, true], // batched: the stock loop
  ];
  cases.forEach(([sa, sb, ta, tb], i) => {
    const a = data(sa, 100 + i);
    const b = data(sb, 200 + i);
    assertMatchesCpu(`matMul ${sa} ${ta} x ${sb} ${tb}`, () => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb), 1e-5);
  });
  // A dense layer's gradients, the case the replacement exists for.
  assertMatchesCpu('dense gradients', () => {
    const x = tf.tensor(data([6, 10], 300), [6, 10]);
    const w = tf.tensor(data([10, 4], 301), [10, 4]);
    const [dx, dw] = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.matMul(xx, ww).square().sum())([x, w]);
    return tf.concat([dx.flatten(), dw.flatten()]);
  }, 1e-5);
});

test('PadV2 matches cpu: spatial zero padding (fast path) and every other case (stock)', () => {
  const shape = [2, 5, 3, 4];
  const v = data(shape, 77);
  const cases: [number, number][][] = [
    [[0, 0], [1, 1], [1, 1], [0, 0]], // ZeroPadding2D(1)
    [[0, 0], [3, 2], [0, 4], [0, 0]], // asymmetric, one side zero
    [[0, 0], [0, 0], [0, 0], [0, 0]], // nothing to pad (stock)
    [[1, 0], [1, 1], [0, 0], [0, 2]], // batch and channel axes (stock)
  ];
  for (const paddings of cases) {
    assertMatchesCpu(`pad ${JSON.stringify(paddings)}`, () => tf.pad(tf.tensor(v, shape), paddings), 0);
  }
  assertMatchesCpu('pad with a constant (stock)', () => tf.pad(tf.tensor(v, shape), cases[0], 2.5), 0);
  assertMatchesCpu('pad rank 2 (stock)', () => tf.pad(tf.tensor(v.slice(0, 12), [3, 4]), [[1, 1], [2, 0]]), 0);
  // The layer that produces it, and its gradient (Slice).
  assertMatchesCpu('zeroPadding2d and its gradient', () => {
    const layer = tf.layers.zeroPadding2d({ padding: [[1, 2], [0, 1]] });
    return tf.grad((t: tf.Tensor) => (layer.apply(t) as tf.Tensor).square().sum())(tf.tensor(v, shape));
  }, 0);
});

test('Relu, Relu6 and ClipByValue match cpu for float32 of any size (SIMD body and scalar tail) and int32 (stock)', () => {
  for (const [i, shape] of ([[16, 9, 9, 8], [7], [3, 5], [2, 3, 3, 3], [1]] as number[][]).entries()) {
    // Values across both bounds of relu6 and of the clip.
    const v = data(shape, 100 + i).map((x) => x * 10);
    const ints = Int32Array.from(v, (x) => Math.round(x * 100));
    const ops: [string, (t: tf.Tensor) => tf.Tensor][] = [
      ['relu', (t) => tf.relu(t)],
      ['relu6', (t) => tf.relu6(t)],
      ['clipByValue', (t) => tf.clipByValue(t, -2.5, 3)],
      ['clipByValue positive bounds', (t) => tf.clipByValue(t, 1.5, 7.7)],
    ];
    for (const [name, f] of ops) {
      assertMatchesCpu(`${name} f32 ${shape}`, () => f(tf.tensor(v, shape)), 0);
      assertMatchesCpu(`${name} i32 ${shape}`, () => f(tf.tensor(ints, shape, 'int32')), 0);
    }
  }
  // NaN and -0 come out as on cpu (Object.is tells -0 from 0), in the SIMD body and the tail.
  const special = [NaN, -1, 2, -0, -3, 4, 8, 0, -0, NaN, 7];
  const ops: [string, (t: tf.Tensor) => tf.Tensor][] = [
    ['relu', (t) => tf.relu(t)],
    ['relu6', (t) => tf.relu6(t)],
    ['clipByValue', (t) => tf.clipByValue(t, -2, 3)],
  ];
  for (const [name, f] of ops) {
    const want = Array.from(runOn('cpu', () => f(tf.tensor(special))).values);
    const got = Array.from(runOn('wasm', () => f(tf.tensor(special))).values);
    assert.ok(want.every((v, i) => Object.is(v, got[i])), `${name}: wasm ${got} against cpu ${want}`);
  }
});
