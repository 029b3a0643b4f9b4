/**
 * The strided Conv2DBackpropInput paths (GEMM + col2im, per-phase convolutions, the sub-pixel
 * convolution, 1x1 scatter) against the `cpu` backend, on fixed cases and seeded random
 * geometries, with the path chosen automatically and forced to each one.
 */
import assert from 'node:assert/strict';
import { afterEach, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  gemmCol2imPays,
  stridedInputGradOptions,
  stridedInputGradStats,
  type StridedInputGradPath,
} from '../../src-main/engine/wasm-kernels/conv2d-backprop-input.js';
import { assertMatchesCpu, type ConvCase, explicitPad, type Pad, pick, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

type Path = StridedInputGradPath;

interface Case extends ConvCase {
  k: [number, number];
  s: number;
}

function outShape(c: Case): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [...c.k, c.ci, c.co], c.s, 1, c.pad).outShape;
}

/** Checks dx against cpu; returns the paths taken (counter deltas). */
function checkDx(c: Case, seed: number): Path[] {
  const r = rng(seed);
  const fShape = [...c.k, c.ci, c.co];
  const yShape = outShape(c);
  const w = randomArray(sizeOf(fShape), r);
  const dy = randomArray(sizeOf(yShape), r);
  const startStats = { ...stridedInputGradStats };
  assertMatchesCpu(`dx ${JSON.stringify(c)} path=${stridedInputGradOptions.path}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor(dy, yShape), filter: tf.tensor(w, fShape) },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: [c.n, c.h, c.w, c.ci] },
    ) as tf.Tensor,
  );
  return (Object.keys(stridedInputGradStats) as Path[]).filter((p) => stridedInputGradStats[p] > startStats[p]);
}

function withPath<T>(path: 'auto' | Path, body: () => T): T {
  stridedInputGradOptions.path = path;
  try {
    return body();
  } finally {
    stridedInputGradOptions.path = 'auto';
  }
}

const FIXED: Case[] = [
  // ResNet downsampling 3x3 / s2, even and odd sizes, TF 'same' (pad 0/1) and torchvision (1/1).
  { n: 1, h: 8, w: 8, ci: 16, co: 8, k: [3, 3], s: 2, pad: 'same' },
  { n: 3, h: 9, w: 7, ci: 20, co: 12, k: [3, 3], s: 2, pad: 'same' },
  { n: 3, h: 10, w: 9, ci: 17, co: 6, k: [3, 3], s: 2, pad: explicitPad(1, 1, 1, 1) },
  { n: 1, h: 11, w: 12, ci: 24, co: 5, k: [3, 3], s: 2, pad: 'valid' },
  { n: 1, h: 8, w: 10, ci: 16, co: 3, k: [3, 3], s: 2, pad: 'valid' }, // the last input row is never read
  { n: 3, h: 7, w: 6, ci: 18, co: 7, k: [3, 3], s: 2, pad: explicitPad(0, 2, 2, 0) },
  { n: 1, h: 6, w: 6, ci: 16, co: 4, k: [3, 3], s: 2, pad: explicitPad(4, 0, 0, 4) }, // pad > k - 1: some phases read only padding
  { n: 1, h: 7, w: 6, ci: 20, co: 12, k: [3, 3], s: 2, pad: explicitPad(1, 1, 1, 1) },
  { n: 1, h: 5, w: 3, ci: 8, co: 4, k: [3, 3], s: 2, pad: explicitPad(0, 2, 3, 1) },
  // 7x7 / s2 (ResNet stem) and 5x5, with few and many input channels.
  { n: 1, h: 11, w: 11, ci: 3, co: 8, k: [7, 7], s: 2, pad: explicitPad(3, 3, 3, 3) },
  { n: 3, h: 12, w: 13, ci: 16, co: 5, k: [7, 7], s: 2, pad: 'same' },
  { n: 1, h: 10, w: 9, ci: 19, co: 4, k: [5, 5], s: 2, pad: 'valid' },
  // Kernels smaller than the stride: some phases get no taps at all (zeros).
  { n: 3, h: 9, w: 8, ci: 16, co: 3, k: [2, 2], s: 3, pad: 'valid' },
  { n: 1, h: 10, w: 11, ci: 17, co: 4, k: [2, 3], s: 3, pad: 'same' },
  // 1x1 / s2 (ResNet shortcut).
  { n: 3, h: 10, w: 9, ci: 8, co: 12, k: [1, 1], s: 2, pad: 'valid' },
  { n: 1, h: 7, w: 7, ci: 5, co: 3, k: [1, 1], s: 2, pad: 'same' },
  // Few input channels: the sub-pixel convolution.
  { n: 3, h: 9, w: 10, ci: 3, co: 4, k: [3, 3], s: 2, pad: 'same' },
];

function randomCase(seed: number): Case {
  const r = rng(seed);
  const k = pick(r, [1, 3, 3, 3, 5, 7]);
  const s = pick(r, [2, 2, 2, 3]);
  const h = k + Math.floor(r() * 8);
  const w = k + Math.floor(r() * 8);
  const pad = pick<Pad>(r, ['same', 'valid', explicitPad(Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4))]);
  const ci = pick(r, [3, 4, 8, 13, 16, 20, 23, 32]);
  const co = pick(r, [1, 4, 5, 8, 12]);
  return { n: pick(r, [1, 3]), h, w, ci, co, k: [k, k], s, pad };
}

const RANDOM = Array.from({ length: 40 }, (_, i) => randomCase(5000 + i));

before(useWasmWithTrainingKernels);
afterEach(() => (stridedInputGradOptions.path = 'auto'));

/** A 1x1 kernel always takes the scatter path, which has no counter. */
const strided = (c: Case) => c.k[0] * c.k[1] > 1;

test('the strided input gradient matches cpu on the fixed cases (path chosen automatically)', () => {
  const paths = new Set<Path>();
  FIXED.forEach((c, i) => checkDx(c, 10 + i).forEach((p) => paths.add(p)));
  assert.deepEqual([...paths].sort(), ['gemm', 'perPhase', 'subPixel'], `paths taken: ${[...paths]}`);
});

for (const path of ['gemm', 'perPhase', 'subPixel'] as const) {
  test(`forced to ${path}: the fixed cases and 40 random geometries match cpu`, () => {
    withPath(path, () => {
      [...FIXED, ...RANDOM].forEach((c, i) => {
        const taken = checkDx(c, 600 + i);
        // The GEMM needs channel and pixel counts that are multiples of 4: others go per phase.
        const pixels = outShape(c).slice(0, 3).reduce((a, b) => a * b, 1);
        const expected = path === 'gemm' && (c.ci % 4 !== 0 || pixels % 4 !== 0) ? 'perPhase' : path;
        assert.deepEqual(taken, strided(c) ? [expected] : [], JSON.stringify(c));
      });
    });
  });
}

test('the automatic rule: GEMM + col2im up to 14x14 dy pixels per image, per phase above, sub-pixel for few channels', () => {
  assert.ok(gemmCol2imPays(14, 14) && gemmCol2imPays(4, 4) && !gemmCol2imPays(16, 16) && !gemmCol2imPays(28, 28));
  // dy 4x4 per image (dx 8x8), 128 input channels: GEMM.
  assert.deepEqual(checkDx({ n: 1, h: 8, w: 8, ci: 128, co: 320, k: [3, 3], s: 2, pad: 'same' }, 1), ['gemm']);
  // dy 16x16 per image: per phase; 4 input channels: sub-pixel; 18 (not a multiple of 4): per phase.
  assert.deepEqual(checkDx({ n: 1, h: 32, w: 31, ci: 16, co: 8, k: [3, 3], s: 2, pad: 'same' }, 2), ['perPhase']);
  assert.deepEqual(checkDx({ n: 1, h: 32, w: 32, ci: 4, co: 8, k: [3, 3], s: 2, pad: 'same' }, 3), ['subPixel']);
  assert.deepEqual(checkDx({ n: 2, h: 9, w: 9, ci: 18, co: 8, k: [3, 3], s: 2, pad: 'same' }, 4), ['perPhase']);
  // ResNet's realistic accumulation length (9 * 256 terms) through both paths.
  const deep: Case = { n: 2, h: 8, w: 8, ci: 64, co: 256, k: [3, 3], s: 2, pad: 'same' };
  assert.deepEqual(checkDx(deep, 5), ['gemm']);
  assert.deepEqual(withPath('perPhase', () => checkDx(deep, 5)), ['perPhase']);
});
