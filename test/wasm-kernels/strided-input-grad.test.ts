/**
 * The strided Conv2DBackpropInput paths (zero insertion + Winograd, per-phase convolutions, the
 * sub-pixel convolution, 1x1 scatter) against the `cpu` backend, on fixed cases that force each
 * path and on seeded random geometries, with Winograd automatic, forced (FINETUNE_WINOGRAD=1: no
 * size floor) and off (=0).
 */
import assert from 'node:assert/strict';
import { afterEach, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { stridedInputGradStats, zeroInsertWinogradPays } from '../../src-main/engine/wasm-kernels/conv2d-backprop-input.js';
import { assertMatchesCpu, pick, randomArray, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Path = keyof typeof stridedInputGradStats;

interface Case {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: [number, number];
  s: number;
  pad: Pad;
}

const explicit = (t: number, b: number, l: number, r: number): Pad => [[0, 0], [t, b], [l, r], [0, 0]];

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
  assertMatchesCpu(`dx ${JSON.stringify(c)} FINETUNE_WINOGRAD=${process.env.FINETUNE_WINOGRAD ?? ''}`, () =>
    tf.engine().runKernel(
      'Conv2DBackpropInput',
      { dy: tf.tensor(dy, yShape), filter: tf.tensor(w, fShape) },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: [c.n, c.h, c.w, c.ci] },
    ) as tf.Tensor,
  );
  return (Object.keys(stridedInputGradStats) as Path[]).filter((p) => stridedInputGradStats[p] > startStats[p]);
}

function withWinograd<T>(mode: '0' | '1' | undefined, body: () => T): T {
  const saved = process.env.FINETUNE_WINOGRAD;
  if (mode === undefined) delete process.env.FINETUNE_WINOGRAD;
  else process.env.FINETUNE_WINOGRAD = mode;
  try {
    return body();
  } finally {
    if (saved === undefined) delete process.env.FINETUNE_WINOGRAD;
    else process.env.FINETUNE_WINOGRAD = saved;
  }
}

const FIXED: Case[] = [
  // ResNet downsampling 3x3 / s2, even and odd sizes, TF 'same' (pad 0/1) and torchvision (1/1).
  { n: 1, h: 8, w: 8, ci: 16, co: 8, k: [3, 3], s: 2, pad: 'same' },
  { n: 3, h: 9, w: 7, ci: 20, co: 12, k: [3, 3], s: 2, pad: 'same' },
  { n: 3, h: 10, w: 9, ci: 17, co: 6, k: [3, 3], s: 2, pad: explicit(1, 1, 1, 1) },
  { n: 1, h: 11, w: 12, ci: 24, co: 5, k: [3, 3], s: 2, pad: 'valid' },
  { n: 1, h: 8, w: 10, ci: 16, co: 3, k: [3, 3], s: 2, pad: 'valid' }, // the last input row is never read
  { n: 3, h: 7, w: 6, ci: 18, co: 7, k: [3, 3], s: 2, pad: explicit(0, 2, 2, 0) },
  { n: 1, h: 6, w: 6, ci: 16, co: 4, k: [3, 3], s: 2, pad: explicit(4, 0, 0, 4) }, // pad > k - 1: some phases read only padding
  { n: 1, h: 7, w: 6, ci: 20, co: 12, k: [3, 3], s: 2, pad: explicit(1, 1, 1, 1) }, // 4 tiles, 20 channels: Winograd
  { n: 1, h: 5, w: 3, ci: 8, co: 4, k: [3, 3], s: 2, pad: explicit(0, 2, 3, 1) },
  // 7x7 / s2 (ResNet stem) and 5x5, with few and many input channels.
  { n: 1, h: 11, w: 11, ci: 3, co: 8, k: [7, 7], s: 2, pad: explicit(3, 3, 3, 3) },
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
  const pad = pick<Pad>(r, ['same', 'valid', explicit(Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4), Math.floor(r() * 4))]);
  const ci = pick(r, [3, 4, 8, 13, 16, 20, 23, 32]);
  const co = pick(r, [1, 4, 5, 8, 12]);
  return { n: pick(r, [1, 3]), h, w, ci, co, k: [k, k], s, pad };
}

const RANDOM = Array.from({ length: 40 }, (_, i) => randomCase(5000 + i));

before(useWasmWithTrainingKernels);
afterEach(() => delete process.env.FINETUNE_WINOGRAD);

test('the strided input gradient matches cpu on the fixed cases (Winograd automatic)', () => {
  const paths = new Set<Path>();
  withWinograd(undefined, () => FIXED.forEach((c, i) => checkDx(c, 10 + i).forEach((p) => paths.add(p))));
  assert.ok(paths.has('perPhase') && paths.has('subPixel'), `paths taken: ${[...paths]}`);
});

test('FINETUNE_WINOGRAD=1: 3x3 / s2 with channels that are multiples of 4 and few tiles go through zero insertion + Winograd', () => {
  let taken = 0;
  withWinograd('1', () => {
    FIXED.forEach((c, i) => {
      const paths = checkDx(c, 10 + i);
      const eligible = c.k[0] === 3 && c.k[1] === 3 && c.s === 2 && c.ci % 4 === 0 && c.co % 4 === 0 && zeroInsertWinogradPays(c.n, c.h, c.w, c.ci);
      if (eligible) taken++;
      if (eligible) assert.deepEqual(paths, ['winograd'], JSON.stringify(c));
      else assert.ok(!paths.includes('winograd'), JSON.stringify(c));
    });
  });
  assert.ok(taken >= 3, `${taken} fixed cases through Winograd`);
});

test('FINETUNE_WINOGRAD=0: no Winograd, still correct', () => {
  withWinograd('0', () => {
    FIXED.forEach((c, i) => assert.ok(!checkDx(c, 10 + i).includes('winograd'), JSON.stringify(c)));
  });
});

test('the strided input gradient matches cpu on 40 random geometries, Winograd automatic, forced and off', () => {
  for (const mode of [undefined, '1', '0'] as const) {
    withWinograd(mode, () => RANDOM.forEach((c, i) => checkDx(c, 600 + i)));
  }
});

test('the automatic rule takes zero insertion + Winograd for few tiles per input channel, per phase otherwise', () => {
  // dx 8x8 (4 tiles), 128 input channels, 320 output channels: Winograd pays.
  const few: Case = { n: 1, h: 8, w: 8, ci: 128, co: 320, k: [3, 3], s: 2, pad: 'same' };
  assert.ok(zeroInsertWinogradPays(1, 8, 8, 128));
  assert.deepEqual(withWinograd(undefined, () => checkDx(few, 1)), ['winograd']);
  // Odd dx size with a torchvision pad, 3 images: 3 * 9 tiles * 4 > 64 input channels: per phase.
  const many: Case = { n: 3, h: 11, w: 11, ci: 64, co: 96, k: [3, 3], s: 2, pad: explicit(1, 1, 1, 1) };
  assert.ok(!zeroInsertWinogradPays(3, 11, 11, 64));
  assert.deepEqual(withWinograd(undefined, () => checkDx(many, 2)), ['perPhase']);
  // FINETUNE_WINOGRAD=1 does not override the tile rule; =0 turns Winograd off.
  assert.deepEqual(withWinograd('1', () => checkDx(many, 2)), ['perPhase']);
  assert.deepEqual(withWinograd('1', () => checkDx({ ...few, n: 3 }, 3)), ['winograd']);
  assert.deepEqual(withWinograd('0', () => checkDx(few, 1)), ['perPhase']);
  // ResNet's realistic accumulation length (9 * 256 terms) through both paths.
  const deep: Case = { n: 2, h: 8, w: 8, ci: 64, co: 256, k: [3, 3], s: 2, pad: 'same' };
  assert.ok(zeroInsertWinogradPays(2, 8, 8, 64));
  withWinograd('1', () => checkDx(deep, 4));
  withWinograd('0', () => checkDx(deep, 4));
});
