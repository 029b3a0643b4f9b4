import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LrSweep, minimum, slide, steep, suggestLearningRates, valley } from '../../src-main/engine/train/lr-find.js';
import { SmoothedLoss, ValidationTally } from '../../src-main/engine/train/metrics.js';

const relClose = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b));

// A synthetic lr_find curve (falls, wiggles, then explodes). The expected suggestions were computed
// with a transliteration of fastai's valley/slide/minimum/steep in Python + numpy.
const lrs = Array.from({ length: 100 }, (_, i) => 1e-7 * (10 / 1e-7) ** (i / 100));
const losses = lrs.map((lr, i) => {
  const x = Math.log10(lr);
  return 0.7 + 0.3 * Math.tanh(-(x + 3)) + 0.02 * Math.sin(i) + (x < -1 ? 0 : (x + 1) ** 2);
});

describe('lr_find', () => {
  test('suggestions match fastai on the trimmed curve ([numIt/10 : -5])', () => {
    const s = suggestLearningRates(lrs.map((lr, i) => ({ lr, loss: losses[i] })), 100)!;
    assert.ok(relClose(s.valley.lr, 0.0020892961308540407), `valley ${s.valley.lr}`);
    assert.ok(relClose(s.valley.point.loss, 0.5959721426591761));
    assert.ok(relClose(s.slide.lr, 0.005248074602497722), `slide ${s.slide.lr}`);
    assert.ok(relClose(s.slide.point.loss, 0.5276619692796632, 1e-6));
    assert.ok(relClose(s.minimum.lr, 0.008317637711026709), `minimum ${s.minimum.lr}`);
    assert.ok(relClose(s.minimum.point.lr, 0.08317637711026708));
    assert.ok(relClose(s.steep.lr, 0.001737800828749376), `steep ${s.steep.lr}`);
  });

  test('each suggestion function on a plain descending-then-rising curve', () => {
    const x = [1e-4, 1e-3, 1e-2, 1e-1, 1];
    const y = [2, 1.5, 1, 0.9, 3];
    assert.equal(minimum(x, y).lr, 1e-1 / 10);
    assert.equal(steep(x, y).lr, 1e-4);
    // fastai's valley sets max_start = max_end - length, one before the run (here -1): idx 0.
    assert.equal(valley(x, y).lr, 1e-4);
    assert.ok(Number.isFinite(slide(x, y).lr));
  });

  test('too few points give no suggestion; NaN cuts the curve', () => {
    assert.equal(suggestLearningRates([{ lr: 1, loss: 1 }], 100), undefined);
    const pts = lrs.map((lr, i) => ({ lr, loss: i > 50 ? Number.NaN : losses[i] }));
    const s = suggestLearningRates(pts, 100)!;
    assert.ok(s.minimum.point.lr <= lrs[50]);
  });

  test('the sweep: exponential rates, stops at numIt or when the loss passes 4x the best', () => {
    const sweep = new LrSweep();
    assert.ok(relClose(sweep.lrAt(0), 1e-7) && relClose(sweep.lrAt(50), 1e-3, 1e-9));
    assert.equal(sweep.record(0, 1.0), false);
    assert.equal(sweep.record(1, 0.5), false);
    assert.equal(sweep.record(2, 2.1), true, '2.1 > 4 * 0.5');
    const short = new LrSweep({ numIt: 6 });
    const stops = [0, 1, 2, 3, 4, 5].map((i) => short.record(i, 1));
    assert.deepEqual(stops, [false, false, false, false, false, true]);
  });
});

describe('metrics', () => {
  test('smoothed loss: EWMA beta 0.98, debiased (first value is the loss itself)', () => {
    const s = new SmoothedLoss();
    assert.equal(s.add(2), 2);
    const v2 = s.add(1);
    assert.ok(relClose(v2, (0.98 * 0.02 * 2 + 0.02 * 1) / (1 - 0.98 ** 2)));
    s.reset();
    assert.ok(Number.isNaN(s.value));
  });

  test('validation loss and error rate are weighted by batch size; confusion and per-class accuracy', () => {
    const t = new ValidationTally(2);
    t.addBatch(1.0, [0, 0, 1, 1], [0, 1, 1, 1]);
    t.addBatch(4.0, [1], [0]);
    assert.ok(relClose(t.loss, (4 * 1 + 4) / 5));
    assert.ok(relClose(t.errorRate, 2 / 5));
    assert.deepEqual(t.confusion, [[1, 1], [1, 2]]);
    assert.deepEqual(t.perClassAccuracy(), [0.5, 2 / 3]);
  });
});
