import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import os from 'node:os';
import { wasmThreadsSetting } from '../../src-main/engine/backend.js';
import { runCli } from '../helpers/cli.js';

// Each run is a fresh process: TF.js can hold one active backend per process.
describe('compute backend selection', () => {
  test('auto: tries the candidates fastest-first, reports why each faster one was not used', async () => {
    const r = await runCli(['backend'], { FINETUNE_BACKEND: '' });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').slice(1);
    assert.deepEqual(lines.map((l) => l.trim().split(/\s+/)[1]), ['node-gpu', 'node', 'wasm', 'cpu']);
    const chosen = lines.findIndex((l) => l.includes('✔'));
    assert.ok(chosen >= 0, r.stdout);
    for (const l of lines.slice(0, chosen)) assert.match(l, /✘ \S+\s+\S.{10,}/, 'a faster backend that was not used says why');
    for (const l of lines.slice(chosen + 1)) assert.match(l, /not needed: a faster backend works/);
    if (chosen === 2) assert.match(lines[2], /WebAssembly with SIMD (on|off), (1 thread|\d+ threads)/);
  });

  test('FINETUNE_BACKEND and --backend force a backend', async () => {
    const env = await runCli(['backend'], { FINETUNE_BACKEND: 'cpu' });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /^Compute backend: JavaScript CPU/);
    assert.match(env.stdout, /✘ wasm\s+not tried: backend forced to "cpu"/);
    const flag = await runCli(['backend', '--backend', 'wasm'], { FINETUNE_BACKEND: '' });
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /^Compute backend: WebAssembly/);
  });

  test('an unknown backend name is refused, naming the valid ones', async () => {
    const r = await runCli(['backend'], { FINETUNE_BACKEND: 'tpu' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Unknown backend "tpu"\. Use one of: node-gpu, node, wasm, cpu\./);
  });

  test('wasm threads: one per CPU (at most 4) in Node, 1 inside Electron, FINETUNE_WASM_THREADS wins', async () => {
    const node = { node: '20.0.0' } as NodeJS.ProcessVersions;
    const electron = { node: '20.0.0', electron: '33.0.0' } as NodeJS.ProcessVersions;
    assert.equal(wasmThreadsSetting({}, node).threads, Math.min(os.availableParallelism(), 4));
    assert.equal(wasmThreadsSetting({}, electron).threads, 1);
    assert.match(wasmThreadsSetting({}, electron).why, /Electron/);
    assert.equal(wasmThreadsSetting({ FINETUNE_WASM_THREADS: '3' }, electron).threads, 3);
    assert.throws(() => wasmThreadsSetting({ FINETUNE_WASM_THREADS: 'two' }, node), /FINETUNE_WASM_THREADS must be a whole number from 1 to 64; got "two"/);
    const r = await runCli(['backend', '--backend', 'wasm'], { FINETUNE_BACKEND: '', FINETUNE_WASM_THREADS: '' });
    assert.equal(r.code, 0, r.stderr);
    const n = Math.min(os.availableParallelism(), 4);
    assert.match(r.stdout, new RegExp(`WebAssembly with SIMD on, ${n} threads? \\(the default: one per CPU, at most 4\\)`));
  });
});
