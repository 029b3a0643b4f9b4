/**
 * The 1-D identities behind the gradient convolutions, checked against the definition by brute
 * force (no backend involved): if a formula in conv-geometry.ts is off by one anywhere, the
 * gradients built from it are wrong for some size/stride/padding, so every small case is tried.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConvAxis,
  filterGradPads,
  inputGradPads,
  phaseAxis,
  phaseTap,
} from '../../src-main/engine/wasm-kernels/conv-geometry.js';

/** Every forward geometry with small sizes; outSize as tfjs computes it for explicit padding. */
function* axes(): Generator<ConvAxis & { padAfter: number }> {
  for (let inSize = 1; inSize <= 9; inSize++)
    for (let k = 1; k <= 5; k++)
      for (let stride = 1; stride <= 3; stride++)
        for (let dilation = 1; dilation <= 2; dilation++)
          for (let padBefore = 0; padBefore <= 3; padBefore++)
            for (let padAfter = 0; padAfter <= 3; padAfter++) {
              const span = (k - 1) * dilation + 1;
              const outSize = Math.floor((inSize + padBefore + padAfter - span) / stride) + 1;
              if (outSize < 1) continue;
              yield { inSize, outSize, k, stride, dilation, padBefore, padAfter };
            }
}

/** dx by definition: dx[y] = sum over (o, a) with o*s + a*d - p == y of dy[o] * w[a]. */
function dxByDefinition(a: ConvAxis, dy: number[], w: number[]): number[] {
  const dx = new Array(a.inSize).fill(0);
  for (let o = 0; o < a.outSize; o++)
    for (let t = 0; t < a.k; t++) {
      const y = o * a.stride + t * a.dilation - a.padBefore;
      if (y >= 0 && y < a.inSize) dx[y] += dy[o] * w[t];
    }
  return dx;
}

/** 1-D correlation with padding (negative = crop), stride and dilation, as convAnyPad runs it. */
function correlate(x: number[], f: number[], before: number, after: number, stride: number, dilation: number): number[] {
  const padded: number[] = [];
  for (let i = -before; i < x.length + after; i++) padded.push(i >= 0 && i < x.length ? x[i] : 0);
  const span = (f.length - 1) * dilation + 1;
  const out: number[] = [];
  for (let o = 0; o * stride + span <= padded.length; o++) {
    let acc = 0;
    for (let t = 0; t < f.length; t++) acc += padded[o * stride + t * dilation] * f[t];
    out.push(acc);
  }
  return out;
}

const values = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13) % 11) - 5);

test('filterGradPads: correlating x with dy (dilation = stride) gives dW exactly', () => {
  let checked = 0;
  for (const a of axes()) {
    const x = values(a.inSize, 1);
    const dy = values(a.outSize, 2);
    const expected = new Array(a.k).fill(0);
    for (let o = 0; o < a.outSize; o++)
      for (let t = 0; t < a.k; t++) {
        const y = o * a.stride + t * a.dilation - a.padBefore;
        if (y >= 0 && y < a.inSize) expected[t] += x[y] * dy[o];
      }
    const p = filterGradPads(a);
    const got = correlate(x, dy, p.before, p.after, a.dilation, a.stride);
    assert.deepEqual(got, expected, JSON.stringify(a));
    checked++;
  }
  assert.ok(checked > 1000);
});

test('inputGradPads: zero-inserted dy correlated with the flipped filter gives dx exactly', () => {
  for (const a of axes()) {
    const dy = values(a.outSize, 3);
    const w = values(a.k, 4);
    const up = new Array(a.outSize * a.stride - a.stride + 1).fill(0);
    dy.forEach((v, o) => (up[o * a.stride] = v));
    const p = inputGradPads(a);
    assert.equal(p.upsampledSize, up.length);
    const got = correlate(up, [...w].reverse(), p.before, p.after, 1, a.dilation);
    assert.deepEqual(got, dxByDefinition(a, dy, w), JSON.stringify(a));
  }
});

test('phaseAxis: the sub-pixel convolution, interleaved and cropped, gives dx exactly', () => {
  for (const a of axes()) {
    if (a.dilation !== 1 || a.stride === 1) continue;
    const dy = values(a.outSize, 5);
    const w = values(a.k, 6);
    const ph = phaseAxis(a);
    const perPhase: number[][] = [];
    for (let r = 0; r < a.stride; r++) {
      const g = Array.from({ length: ph.taps }, (_, t) => {
        const tap = phaseTap(a, ph.taps, r, t);
        return tap < 0 ? 0 : w[tap];
      });
      const out = correlate(dy, g, ph.before, ph.after, 1, 1);
      assert.equal(out.length, ph.blocks, `blocks ${JSON.stringify(a)}`);
      perPhase.push(out);
    }
    const interleaved: number[] = [];
    for (let q = 0; q < ph.blocks; q++) for (let r = 0; r < a.stride; r++) interleaved.push(perPhase[r][q]);
    const got = interleaved.slice(ph.cropBefore, ph.cropBefore + a.inSize);
    assert.deepEqual(got, dxByDefinition(a, dy, w), JSON.stringify(a));
  }
});

test('phaseAxis rejects dilation, which the sub-pixel form does not cover', () => {
  assert.throws(() => phaseAxis({ inSize: 5, outSize: 2, k: 3, stride: 2, dilation: 2, padBefore: 0 }));
});
