/** The wizard's logic without a browser: form -> request, step gating, and folding training events into the view. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TrainEventDto } from '../../src-main/api/contract.js';
import { validateSettings } from '../../src-main/api/validate.js';
import { formatBytes, formatDuration, formatLoss, formatLr, formatPercent } from '../../src-renderer/src/lib/format.js';
import {
  applyTrainEvent,
  datasetSpecFrom,
  DEFAULT_DATA_FORM,
  DEFAULT_MODEL_FORM,
  defaultArchFor,
  labelRuleFrom,
  newTrainView,
  rowsByPhase,
  settingsFrom,
  stepOpen,
  trainFraction,
} from '../../src-renderer/src/lib/wizard.js';

const form = { ...DEFAULT_DATA_FORM, root: '/home/me/pets' };

describe('wizard: forms to requests', () => {
  test("the defaults are fastai lesson 1's, and the request they make passes the host's validation", () => {
    const spec = datasetSpecFrom(form);
    assert.ok(spec.ok);
    assert.deepEqual(spec.value, { root: '/home/me/pets', label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.2, seed: 42 } });
    const settings = settingsFrom(spec.value, DEFAULT_MODEL_FORM, 42);
    assert.ok(settings.ok);
    assert.deepEqual(validateSettings(settings.value), settings.value);
    assert.equal(settings.value.baseLr, 2e-3);
    assert.equal(settings.value.size, 224);
  });

  test('percent in the form, fraction in the request, without float noise', () => {
    const spec = datasetSpecFrom({ ...form, validPercent: 15 });
    assert.ok(spec.ok && spec.value.split.kind === 'random');
    assert.equal(spec.ok && spec.value.split.kind === 'random' && spec.value.split.validPct, 0.15);
  });

  test('mistakes come back with the field and a message saying what to do', () => {
    const cases: [Partial<typeof form>, string, RegExp][] = [
      [{ root: '  ' }, 'root', /Choose the folder/],
      [{ ruleKind: 'regex', pattern: '' }, 'pattern', /one group in parentheses/],
      [{ ruleKind: 'regex', pattern: '([a-z' }, 'pattern', /not valid/],
      [{ ruleKind: 'regex', pattern: '^\\w+_\\d+' }, 'pattern', /needs a group/],
      [{ ruleKind: 'regex', pattern: '^(?:\\w+)_\\d+' }, 'pattern', /needs a group/],
      [{ ruleKind: 'csv', csvPath: '' }, 'csvPath', /CSV file/],
      [{ validPercent: 95 }, 'validPercent', /between 0% and 90%/],
      [{ seed: -1 }, 'seed', /whole number/],
      [{ splitKind: 'folder', trainName: 'x', validName: 'x' }, 'trainName', /two different folders/],
    ];
    for (const [change, field, message] of cases) {
      const r = datasetSpecFrom({ ...form, ...change });
      assert.ok(!r.ok, JSON.stringify(change));
      assert.equal(!r.ok && r.field, field);
      assert.match(!r.ok ? r.error : '', message);
    }
    assert.deepEqual(labelRuleFrom({ ...form, ruleKind: 'regex', pattern: ' ^(.+)_\\d+\\. ' }), { ok: true, value: { kind: 'regex', pattern: '^(.+)_\\d+\\.' } });
    const spec = datasetSpecFrom(form);
    assert.ok(spec.ok);
    for (const [change, field] of [[{ size: 16 }, 'size'], [{ epochs: 0, freezeEpochs: 0 }, 'epochs'], [{ baseLr: 0 }, 'baseLr'], [{ epochs: 1.5 }, 'epochs']] as const) {
      const r = settingsFrom(spec.value, { ...DEFAULT_MODEL_FORM, ...change }, 42);
      assert.equal(!r.ok && r.field, field, JSON.stringify(change));
    }
  });

  test('quick mode: head epochs instead of frozen epochs; whole-network epochs may be 0', () => {
    const spec = datasetSpecFrom(form);
    assert.ok(spec.ok);
    const quick = settingsFrom(spec.value, { ...DEFAULT_MODEL_FORM, mode: 'quick', quickEpochs: 5, epochs: 0 }, 42);
    assert.ok(quick.ok);
    assert.deepEqual([quick.value.mode, quick.value.quickEpochs, quick.value.epochs, quick.value.freezeEpochs], ['quick', 5, 0, 0]);
    const bad = settingsFrom(spec.value, { ...DEFAULT_MODEL_FORM, mode: 'quick', quickEpochs: 0 }, 42);
    assert.equal(!bad.ok && bad.field, 'quickEpochs');
    const exact = settingsFrom(spec.value, DEFAULT_MODEL_FORM, 42);
    assert.ok(exact.ok);
    assert.equal(exact.value.mode, 'fastai');
  });

  test('GPU gets the lesson resnet34; a CPU gets the faster MobileNetV2, with the reason', () => {
    assert.equal(defaultArchFor('node-gpu').arch, 'resnet34');
    for (const b of ['node', 'wasm', 'cpu', undefined] as const) {
      const d = defaultArchFor(b);
      assert.equal(d.arch, 'mobilenet_v2_1.00');
      assert.match(d.why, /CPU/);
    }
  });

  test('steps open in order, and say what is missing', () => {
    const none = { scanOk: false, hasRun: false, training: false };
    assert.equal(stepOpen('data', none).open, true);
    assert.match(stepOpen('preview', none).why ?? '', /Choose a folder/);
    assert.match(stepOpen('test', { ...none, scanOk: true }).why ?? '', /Train a model/);
    assert.equal(stepOpen('test', { ...none, hasRun: true }).open, true);
    assert.equal(stepOpen('train', { ...none, hasRun: true }).open, true, 'a reopened run shows its results');
    const training = { scanOk: true, hasRun: false, training: true };
    assert.equal(stepOpen('train', training).open, true);
    for (const s of ['data', 'preview', 'model', 'test', 'export'] as const) assert.match(stepOpen(s, training).why ?? '', /Training is running/);
  });
});

describe('wizard: the Train step from events', () => {
  const row = (epoch: number, phase: 'frozen' | 'unfrozen') => ({ epoch, phase, trainLoss: 0.5, validLoss: 0.4, errorRate: 0.1, accuracy: 0.9, seconds: 3 });
  const batch = (phase: 'frozen' | 'unfrozen', iter: number, totalIters: number, smoothLoss: number): TrainEventDto => ({
    type: 'batch', phase, epoch: 0, iter, totalIters, loss: smoothLoss, smoothLoss, lrs: [1e-3], mom: 0.9, imagesPerSecond: 20, etaSeconds: 10,
  });

  test('fine_tune(1): losses number on across phases, rows fill in, progress only grows', () => {
    const events: TrainEventDto[] = [
      { type: 'stage', stage: 'prepare', message: 'Decoding' },
      { type: 'prepare', done: 5, total: 10, decoded: 5, fromCache: 0, failed: 0 },
      { type: 'prepare', done: 10, total: 10, decoded: 10, fromCache: 0, failed: 0 },
      { type: 'fit-start', phase: 'frozen', epochs: 1, batchesPerEpoch: 3, frozen: true },
      batch('frozen', 1, 3, 0.9),
      batch('frozen', 2, 3, 0.8),
      batch('frozen', 3, 3, 0.7),
      { type: 'validation', done: 4, total: 8 },
      { type: 'epoch', row: row(0, 'frozen') },
      { type: 'fit-start', phase: 'unfrozen', epochs: 1, batchesPerEpoch: 3, frozen: false },
      batch('unfrozen', 1, 3, 0.6),
      { type: 'note', message: 'hello' },
      batch('unfrozen', 3, 3, 0.5),
      { type: 'epoch', row: row(0, 'unfrozen') },
    ];
    let view = newTrainView([1, 1]);
    let last = -1;
    for (const e of events) {
      view = applyTrainEvent(view, e);
      const f = trainFraction(view);
      assert.ok(f >= last && f <= 1, `${e.type}: ${f} after ${last}`);
      last = f;
    }
    assert.equal(last, 1);
    assert.deepEqual(view.losses.map((p) => p.x), [1, 2, 3, 4, 6]);
    assert.deepEqual(view.notes, ['hello']);
    assert.equal(view.validation, undefined);
    assert.deepEqual(rowsByPhase(view.rows).map((t) => [t.phase, t.rows.length]), [['frozen', 1], ['unfrozen', 1]]);
  });

  test('the overall bar gives each phase its share of the epochs (1 frozen + 3 unfrozen)', () => {
    let view = applyTrainEvent(newTrainView([1, 3]), { type: 'fit-start', phase: 'frozen', epochs: 1, batchesPerEpoch: 2, frozen: true });
    view = applyTrainEvent(view, batch('frozen', 2, 2, 0.5));
    assert.ok(Math.abs(trainFraction(view) - (0.05 + 0.95 / 4)) < 1e-9);
    view = applyTrainEvent(view, { type: 'fit-start', phase: 'unfrozen', epochs: 3, batchesPerEpoch: 2, frozen: false });
    view = applyTrainEvent(view, batch('unfrozen', 3, 6, 0.5));
    assert.ok(Math.abs(trainFraction(view) - (0.05 + 0.95 * (1 + 1.5) / 4)) < 1e-9);
  });

  test('lr_find events collect the curve', () => {
    let view = newTrainView([1]);
    for (let i = 0; i < 3; i++) view = applyTrainEvent(view, { type: 'lr-find', point: { lr: 10 ** (i - 7), loss: 1 - i / 10 }, iter: i, numIt: 100 });
    assert.equal(view.lrPoints.length, 3);
    assert.equal(view.iter, 3);
    assert.equal(view.totalIters, 100);
  });
});

describe('formatting', () => {
  test('durations, sizes, losses, percentages and learning rates as people read them', () => {
    assert.equal(formatDuration(75), '01:15');
    assert.equal(formatDuration(3725), '1:02:05');
    assert.equal(formatDuration(NaN), '--:--');
    assert.equal(formatBytes(811_706_944), '812 MB');
    assert.equal(formatBytes(1_640_832), '1.6 MB');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatLoss(0.6936231), '0.693623');
    assert.equal(formatPercent(0.0512, 2), '5.12%');
    assert.equal(formatLr(0.002), '2.0e-3');
    assert.equal(formatLr(0.00069), '6.9e-4');
  });
});
