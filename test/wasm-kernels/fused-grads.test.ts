/**
 * The fused wasm gradients of ClipByValue, Relu, Relu6, FusedBatchNorm, Max, Mean and Sum against the
 * `cpu` backend (which keeps tfjs' original gradients), including boundary values (x exactly at a
 * clip bound), sizes that are not a multiple of the SIMD width, and channel counts that take the
 * scalar path.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { simdModuleBytes } from '../../src-main/engine/wasm-kernels/simd-kernels.js';
import { assertMatchesCpu, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

before(useWasmWithTrainingKernels);

test('the SIMD module validates in both memory flavours (plain and shared)', () => {
  // (The project's TypeScript lib has no WebAssembly typings.)
  const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
  assert.ok(wasm.validate(simdModuleBytes(false)));
  assert.ok(wasm.validate(simdModuleBytes(true)));
});

/** Values in [-8, 8] with exact hits on 0 and 6 (where the masks' inclusivity matters). */
function activations(size: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: size }, (_, i) => (i % 7 === 0 ? 0 : i % 11 === 0 ? 6 : r() * 16 - 8));
}

test('ClipByValue, Relu and Relu6 gradients match cpu, bounds included as tfjs does', () => {
  for (const shape of [[2, 5, 7, 3], [4, 8], [13], [3, 4, 4, 8]]) {
    const x = activations(sizeOf(shape), sizeOf(shape));
    const dy = randomArray(sizeOf(shape), rng(2));
    const grad = (f: (t: tf.Tensor) => tf.Tensor) => () => tf.grad((t: tf.Tensor) => f(t).mul(tf.tensor(dy, shape)).sum())(tf.tensor(x, shape));
    assertMatchesCpu(`clip ${shape}`, grad((t) => tf.clipByValue(t, 0, 6)), 0);
    assertMatchesCpu(`clip asymmetric ${shape}`, grad((t) => tf.clipByValue(t, -2.5, 3)), 0);
    assertMatchesCpu(`relu ${shape}`, grad((t) => tf.relu(t)), 0);
    assertMatchesCpu(`relu6 ${shape}`, grad((t) => tf.relu6(t)), 0);
    assertMatchesCpu(`layers relu6 ${shape}`, grad((t) => tf.layers.reLU({ maxValue: 6 }).apply(t) as tf.Tensor), 0);
  }
});

test('batch-norm training gradients (moments + batchNorm, as tf.layers does) match cpu', () => {
  // (tfjs cannot differentiate batchNorm without scale or offset on any backend, so both are given.)
  for (const shape of [[4, 6, 5, 8], [3, 7, 3], [2, 5, 5, 6], [16, 24]]) {
    const c = shape[shape.length - 1];
    const r = rng(sizeOf(shape));
    const x = randomArray(sizeOf(shape), r).map((v) => v * 3 + 1);
    const gamma = randomArray(c, r);
    const beta = randomArray(c, r);
    const dy = randomArray(sizeOf(shape), r);
    const axes = shape.map((_, i) => i).slice(0, -1);
    for (const which of [0, 1, 2]) {
      assertMatchesCpu(`bn ${shape} grad ${which}`, () => {
        const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const { mean, variance } = tf.moments(xx, axes);
          return tf.batchNorm(xx, mean, variance, b, g, 1e-3).mul(tf.tensor(dy, shape)).sum();
        };
        return tf.grads(f)([tf.tensor(x, shape), tf.tensor1d(gamma), tf.tensor1d(beta)])[which];
      });
    }
  }
});

test('batch-norm gradient with fixed statistics (inference-style mean/variance inputs) matches cpu', () => {
  const shape = [3, 4, 4, 12];
  const r = rng(5);
  const beta = randomArray(12, r);
  const [x, dy] = [randomArray(sizeOf(shape), r), randomArray(sizeOf(shape), r)];
  const [mean, variance, gamma] = [randomArray(12, r), randomArray(12, r).map((v) => v * v + 0.5), randomArray(12, r)];
  for (const which of [0, 1, 2, 3]) {
    assertMatchesCpu(`bn fixed stats grad ${which}`, () =>
      tf.grads((xx: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor) => tf.batchNorm(xx, m, v, tf.tensor1d(beta), g, 1e-5).mul(tf.tensor(dy, shape)).sum())([
        tf.tensor(x, shape),
        tf.tensor1d(mean),
        tf.tensor1d(variance),
        tf.tensor1d(gamma),
      ])[which],
    );
  }
});

test('Mean and Sum gradients match cpu for every axis choice', () => {
  const shape = [3, 4, 5, 2];
  const x = randomArray(sizeOf(shape), rng(9));
  const axesList: (number | number[] | undefined)[] = [undefined, 0, [0, 1, 2], [1, 3], -1, [2]];
  for (const axis of axesList) {
    for (const keepDims of [false, true]) {
      const outShape = tf.tidy(() => tf.sum(tf.zeros(shape), axis, keepDims).shape);
      const w = randomArray(Math.max(1, sizeOf(outShape)), rng(10));
      for (const op of [tf.mean, tf.sum]) {
        assertMatchesCpu(`${op.name} ${axis} ${keepDims}`, () =>
          tf.grad((t: tf.Tensor) => op(t, axis, keepDims).mul(tf.tensor(w, outShape)).sum())(tf.tensor(x, shape)),
        );
      }
    }
  }
  // An int32 input: the gradient is still float32, as in tfjs.
  assertMatchesCpu('sum int32', () => tf.grad((t: tf.Tensor) => tf.sum(t.cast('int32')).cast('float32'))(tf.tensor(x, shape)));
});

test('Max gradient matches cpu for every axis choice, ties included', () => {
  const shape = [3, 4, 5, 8];
  // Values on a coarse grid so that several elements share the maximum (each gets dy, as in tfjs).
  const r = rng(12);
  const x = Float32Array.from({ length: sizeOf(shape) }, () => Math.floor(r() * 6));
  for (const axis of [undefined, 0, [1, 2], [1, 3], -1, [2]] as (number | number[] | undefined)[]) {
    for (const keepDims of [false, true]) {
      const outShape = tf.tidy(() => tf.max(tf.zeros(shape), axis, keepDims).shape);
      const w = randomArray(Math.max(1, sizeOf(outShape)), rng(13));
      assertMatchesCpu(`max ${axis} ${keepDims}`, () => tf.grad((t: tf.Tensor) => tf.max(t, axis, keepDims).mul(tf.tensor(w, outShape)).sum())(tf.tensor(x, shape)), 0);
    }
  }
});
