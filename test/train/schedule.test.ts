import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { combinedCos, evenMults, fineTunePhases, lrRange, oneCycleSchedule, schedExp } from '../../src-main/engine/train/schedule.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

const relClose = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b), 1e-300);

describe('fastai schedules', () => {
  const skip = sharedSkipReason('fixtures', 'fine_tune_schedule.json');

  test('fine_tune(1) reproduces fastai\'s per-iteration lrs (3 groups) and beta1 to 1e-9 relative', { skip }, () => {
    const fixture = JSON.parse(readFileSync(sharedPath('fixtures', 'fine_tune_schedule.json'), 'utf8'));
    const phases = fineTunePhases({ epochs: 1, nGroups: 3 });
    assert.deepEqual(phases.map((p) => [p.name, p.frozen, p.epochs]), [['frozen', true, 1], ['unfrozen', false, 1]]);
    for (const phase of phases) {
      const expected: { lr: number[]; mom: number }[] = fixture[phase.name];
      const actual = oneCycleSchedule(phase.oneCycle, phase.epochs * fixture.n_iter);
      assert.equal(actual.length, expected.length);
      expected.forEach((row, i) => {
        row.lr.forEach((lr, g) => assert.ok(relClose(actual[i].lrs[g], lr, 1e-9), `${phase.name} iter ${i} group ${g}: ${actual[i].lrs[g]} vs ${lr}`));
        assert.ok(relClose(actual[i].mom, row.mom, 1e-9), `${phase.name} iter ${i} mom`);
      });
    }
  });

  test('learning-rate ranges: number, slice(stop), slice(start, stop)', () => {
    assert.deepEqual(lrRange(0.01, 3), [0.01, 0.01, 0.01]);
    assert.deepEqual(lrRange({ stop: 2e-3 }, 3), [2e-4, 2e-4, 2e-3]);
    const spread = lrRange({ start: 1e-5, stop: 1e-3 }, 3);
    assert.ok(relClose(spread[0], 1e-5, 1e-12) && relClose(spread[1], 1e-4, 1e-12) && relClose(spread[2], 1e-3, 1e-12));
    assert.deepEqual(evenMults(1, 8, 1), [8]);
  });

  test('one cycle: starts at lr/div, peaks at lr at pct_start, ends near lr/div_final; beta1 mirrors it', () => {
    const sched = oneCycleSchedule({ lrMax: [1], pctStart: 0.25 }, 100);
    assert.ok(relClose(sched[0].lrs[0], 1 / 25, 1e-12));
    assert.ok(relClose(sched[25].lrs[0], 1, 1e-12));
    assert.ok(sched[99].lrs[0] < 1e-3);
    assert.equal(sched[0].mom, 0.95);
    assert.ok(relClose(sched[25].mom, 0.85, 1e-12));
    assert.equal(combinedCos(0.5, 0, 1, 0)(0.5), 1);
  });

  test('lr_find sweep is exponential from 1e-7 to 10', () => {
    assert.ok(relClose(schedExp(1e-7, 10, 0), 1e-7, 1e-12));
    assert.ok(relClose(schedExp(1e-7, 10, 0.5), 10 ** -3, 1e-9));
    assert.ok(relClose(schedExp(1e-7, 10, 1), 10, 1e-12));
  });
});
