import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { FastaiAdam } from '../../src-main/engine/train/fastai-adam.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));

describe("fastai's Adam", () => {
  before(() => selectBackend({ force: 'wasm' }));

  // On wasm the update is one fused kernel per parameter (wasm-kernels/adam-step.ts); on cpu, tf ops.
  for (const backend of ['wasm', 'cpu'] as const) {
    test(`three steps with scheduled beta1 and decoupled weight decay match fastai to 1e-6 (${backend})`, { skip: sharedSkipReason('fixtures', 'fastai_adam.json') }, async () => {
      const chosen = tf.getBackend();
      assert.ok(await tf.setBackend(backend), `the ${backend} backend is not available`);
      const f = JSON.parse(readFileSync(sharedPath('fixtures', 'fastai_adam.json'), 'utf8'));
      const w = tf.variable(tf.tensor(f.params_init[0]), true, 'adam_w');
      const b = tf.variable(tf.tensor(f.params_init[1]), true, 'adam_b');
      const opt = new FastaiAdam(
        [
          { variable: w, group: 0, weightDecay: f.do_wd[0] },
          { variable: b, group: 0, weightDecay: f.do_wd[1] },
        ],
        { sqrMom: f.hyper.sqr_mom, eps: f.hyper.eps, wd: f.hyper.wd },
      );
      for (let step = 0; step < 3; step++) {
        const grads = { adam_w: tf.tensor(f.grads[step][0]), adam_b: tf.tensor(f.grads[step][1]) };
        opt.step(grads, [f.hyper.lrs[step]], f.hyper.moms[step]);
        tf.dispose(Object.values(grads));
        const [ew, eb] = f.params_after_each_step[step];
        assert.ok(maxAbsDiff(await w.data(), ew.flat()) <= 1e-6, `step ${step} w: ${maxAbsDiff(await w.data(), ew.flat())}`);
        assert.ok(maxAbsDiff(await b.data(), eb) <= 1e-6, `step ${step} b: ${maxAbsDiff(await b.data(), eb)}`);
      }
      opt.dispose();
      tf.dispose([w, b]);
      await tf.setBackend(chosen);
    });
  }

  test('per-group learning rates; frozen parameters (no gradient) do not move; no tensor leaks', async () => {
    const a = tf.variable(tf.ones([2]), true, 'grp_a');
    const c = tf.variable(tf.ones([2]), true, 'grp_c');
    const opt = new FastaiAdam([
      { variable: a, group: 0, weightDecay: false },
      { variable: c, group: 1, weightDecay: false },
    ]);
    const before = tf.memory().numTensors;
    const g = { grp_a: tf.ones([2]) };
    opt.step(g, [0.1, 0.5], 0.9);
    // First step: update = lr * g / (|g| + eps) ≈ lr.
    assert.ok(Math.abs((await a.data())[0] - (1 - 0.1 / (1 + 1e-5))) < 1e-6);
    assert.deepEqual(Array.from(await c.data()), [1, 1]);
    opt.step(g, [0.1, 0.5], 0.9);
    tf.dispose(Object.values(g));
    assert.equal(tf.memory().numTensors, before + 2, 'only the moments of `a` are kept');
    const snap = await opt.snapshot();
    assert.deepEqual(Object.keys(snap.params), ['grp_a']);
    assert.equal(snap.params.grp_a.step, 2);
    opt.reset();
    assert.equal(tf.memory().numTensors, before);
    opt.restore(snap);
    assert.equal(tf.memory().numTensors, before + 2);
    opt.dispose();
    tf.dispose([a, c]);
  });

  test('the fused wasm update (SIMD body and scalar tail) equals the tf-ops update on cpu', async () => {
    // 1027 values: 1024 through the SIMD loop, 3 through the scalar tail; large and tiny gradients.
    const init = Float32Array.from({ length: 1027 }, (_, i) => Math.sin(i) * 2);
    const grads = [0, 1, 2].map((step) => Float32Array.from(init, (v, i) => Math.cos(i * (step + 1)) * 10 ** ((i % 7) - 4)));
    const run = async (backend: string) => {
      const chosen = tf.getBackend();
      assert.ok(await tf.setBackend(backend));
      const w = tf.variable(tf.tensor(init), true, `fused_check_${backend}`);
      const opt = new FastaiAdam([{ variable: w, group: 0, weightDecay: true }], { wd: 0.1 });
      for (const [step, g] of grads.entries()) {
        const t = tf.tensor(g);
        opt.step({ [w.name]: t }, [1e-2 * (step + 1)], 0.95 - 0.05 * step);
        t.dispose();
      }
      const out = (await w.data()) as Float32Array;
      opt.dispose();
      w.dispose();
      await tf.setBackend(chosen);
      return out;
    };
    const fused = await run('wasm');
    const ops = await run('cpu');
    const worst = Math.max(...Array.from(fused, (v, i) => Math.abs(v - ops[i]) / Math.max(1, Math.abs(ops[i]))));
    assert.ok(worst <= 1e-6, `max relative difference ${worst}`);
    assert.ok(fused.some((v, i) => v !== init[i]), 'parameters moved');
  });
});
