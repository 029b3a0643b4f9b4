import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { centreCropBox, fastaiCropBox, randomCropOffset, shortSideSize } from '../../src-main/engine/data/crop.js';
import { IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE_NORMALIZATION, normalizeInto } from '../../src-main/engine/data/normalize.js';

describe("fastai Resize(size) crop geometry", () => {
  test('centre crops match values computed by fastai\'s formula in Python', () => {
    // (w, h, size) -> (side, left, top), from fastai's Resize.encodes with pcts (0.5, 0.5).
    const cases: [number, number, number, number, number, number][] = [
      [500, 375, 224, 375, 62, 0],
      [375, 500, 224, 375, 0, 62],
      [300, 269, 224, 269, 15, 0],
      [250, 202, 224, 202, 24, 0],
      [1000, 3, 224, 3, 498, 0],
      [640, 480, 128, 480, 80, 0],
      [333, 333, 224, 333, 0, 0],
      [4032, 3024, 224, 3024, 504, 0],
      // int(m * size) truncates float error: fastai crops 60 px, not 61, from a 61x68 image.
      [61, 68, 224, 60, 0, 4],
      [115, 122, 224, 114, 0, 4],
    ];
    for (const [w, h, size, side, left, top] of cases) {
      assert.deepEqual(centreCropBox(w, h, size), { left, top, width: side, height: side }, `${w}x${h}@${size}`);
    }
  });

  test('training crops slide along the long side only, staying inside the image', () => {
    assert.deepEqual(fastaiCropBox(500, 375, 224, 0, 0.7), { left: 0, top: 0, width: 375, height: 375 });
    assert.deepEqual(fastaiCropBox(500, 375, 224, 0.999, 0.3), { left: 124, top: 0, width: 375, height: 375 });
  });

  test('cached training images keep the aspect ratio with the short side at size', () => {
    assert.deepEqual(shortSideSize(500, 375, 224), { width: 299, height: 224 });
    assert.deepEqual(shortSideSize(375, 500, 224), { width: 224, height: 299 });
    assert.deepEqual(shortSideSize(100, 100, 224), { width: 224, height: 224 });
    assert.deepEqual(randomCropOffset(299, 224, 224, 0.5), { left: 37, top: 0 });
    assert.deepEqual(randomCropOffset(299, 224, 224, 0.99999), { left: 74, top: 0 });
  });
});

describe('normalisation', () => {
  test('ImageNet statistics: (x/255 - mean) / std per channel', () => {
    const rgb = new Uint8Array([0, 128, 255, 255, 0, 10]);
    const out = new Float32Array(8).fill(99);
    normalizeInto(rgb, out, 1, IMAGENET_NORMALIZATION);
    const { mean, std } = IMAGENET_NORMALIZATION;
    const expected = Array.from(rgb, (v, i) => (v / 255 - mean[i % 3]) / std[i % 3]);
    assert.equal(out[0], 99);
    assert.equal(out[7], 99);
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(out[1 + i] - expected[i]) < 1e-6, `${out[1 + i]} vs ${expected[i]}`);
    assert.ok(Math.abs(out[1] - -2.1179039) < 1e-6);
  });

  test('MobileNet preprocessing x/127.5 - 1', () => {
    const out = new Float32Array(3);
    normalizeInto(new Uint8Array([0, 127.5, 255]), out, 0, MINUS_ONE_TO_ONE_NORMALIZATION);
    // Uint8Array truncates 127.5 to 127.
    assert.ok(Math.abs(out[0] + 1) < 1e-6 && Math.abs(out[1] - (127 / 127.5 - 1)) < 1e-6 && Math.abs(out[2] - 1) < 1e-6);
  });
});
