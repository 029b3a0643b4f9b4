/**
 * Shared pieces of the wasm-kernel tests: backend start-up, seeded random data, and running the
 * same computation on the `cpu` backend (the reference) and on `wasm`.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../../src-main/engine/wasm-kernels/index.js';

/** Registers our kernels and makes 'wasm' the active backend. */
export async function useWasmWithTrainingKernels(): Promise<void> {
  registerWasmTrainingKernels();
  const ok = await tf.setBackend('wasm');
  assert.ok(ok, 'the wasm backend did not start');
  await tf.ready();
}

/**
 * For this test file: the wasm backend with our kernels, and FINETUNE_WINOGRAD=1 (every eligible
 * shape takes Winograd, not only the large layers where it pays), restored afterwards, when
 * `summary()` is printed (the worst errors seen).
 */
export function useWasmWithWinogradForced(summary: () => string): void {
  const previous = process.env.FINETUNE_WINOGRAD;
  before(async () => {
    process.env.FINETUNE_WINOGRAD = '1';
    await useWasmWithTrainingKernels();
  });
  after(() => {
    if (previous === undefined) delete process.env.FINETUNE_WINOGRAD;
    else process.env.FINETUNE_WINOGRAD = previous;
    console.log(summary());
  });
}

/** mulberry32: small, fast, seedable; failures print their seed and reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(size: number, rand: () => number): Float32Array {
  const v = new Float32Array(size);
  for (let i = 0; i < size; i++) v[i] = rand() * 2 - 1;
  return v;
}

export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}

/** A convolution's padding as the tfjs conv ops take it. */
export type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

/** A convolution test case: batch, input size, channels in and out, padding. */
export interface ConvCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  pad: Pad;
}

/** NHWC explicit padding: top, bottom, left, right. */
export const explicitPad = (t: number, b: number, l: number, r: number): Pad => [[0, 0], [t, b], [l, r], [0, 0]];

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface Outcome {
  shape: number[];
  values: Float32Array;
}

/**
 * Runs `f` on the named backend and returns its result as plain data. `f` must build its own
 * tensors (from arrays), so nothing crosses backends.
 */
export function runOn(backend: 'cpu' | 'wasm', f: () => tf.Tensor): Outcome {
  const previous = tf.getBackend();
  tf.setBackend(backend);
  try {
    const t = tf.tidy(f);
    const values = new Float32Array(t.dataSync());
    const shape = t.shape.slice();
    t.dispose();
    return { shape, values };
  } finally {
    tf.setBackend(previous);
  }
}

/** Largest |a - b| divided by the reference's largest magnitude. */
export function relativeMaxError(reference: Float32Array, actual: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    if (!Number.isFinite(actual[i])) return Number.POSITIVE_INFINITY;
    err = Math.max(err, Math.abs(reference[i] - actual[i]));
    scale = Math.max(scale, Math.abs(reference[i]));
  }
  return err / Math.max(scale, 1e-12);
}

/** Asserts that wasm reproduces cpu to `tolerance` (relative to the reference's scale). */
export function assertMatchesCpu(label: string, f: () => tf.Tensor, tolerance = 1e-4): number {
  return assertWasmMatches(label, f, f, tolerance);
}

/** Like `assertMatchesCpu`, with a different (equivalent) computation as the cpu reference. */
export function assertWasmMatches(label: string, onCpu: () => tf.Tensor, onWasm: () => tf.Tensor, tolerance = 1e-4): number {
  const reference = runOn('cpu', onCpu);
  const actual = runOn('wasm', onWasm);
  assert.deepEqual(actual.shape, reference.shape, `${label}: shape`);
  const err = relativeMaxError(reference.values, actual.values);
  assert.ok(err <= tolerance, `${label}: relative max error ${err.toExponential(2)} > ${tolerance}`);
  return err;
}
