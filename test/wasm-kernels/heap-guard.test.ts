/**
 * Running out of the 4 GiB wasm heap must be a recoverable error, not an aborted module (single-
 * threaded build) or a hung process (threaded build): the guard refuses the allocation that would
 * grow the heap past its limit, earlier tensors stay intact, releaseFailedStepMemory() frees what a
 * failed training step leaves on tfjs' tape, and training goes on afterwards.
 * Each build in its own child process (the heap only grows, and a backend starts once).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WASM_HEAP_MAX_BYTES } from '../../src-main/engine/wasm-kernels/index.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'heap-child.ts');

for (const threads of [1, 2]) {
  test(`a full heap throws WasmHeapExhaustedError and the backend keeps working (${threads} thread(s))`, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, String(threads)], { encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.signal, null, `the child hung or died (${r.signal}); stderr: ${r.stderr.slice(-300)}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `no result (status ${r.status}): ${r.stderr.slice(-500)}`);
    const out = JSON.parse(line) as {
      fillError: string;
      heldMiB: number;
      intact: boolean;
      stepError: string;
      leaked: number;
      released: number;
      left: number;
      heap: number;
      loss: number;
    };
    assert.equal(out.fillError, 'WasmHeapExhaustedError');
    assert.ok(out.heldMiB >= 3000, `only ${out.heldMiB} MiB fitted before the refusal`);
    assert.ok(out.heap <= WASM_HEAP_MAX_BYTES);
    assert.ok(out.intact, 'tensors allocated before the refusal keep their values');
    assert.equal(out.stepError, 'WasmHeapExhaustedError', 'a training step too big for the heap');
    assert.ok(out.leaked > 0, 'tfjs keeps the saved tensors of a failed step (what releaseFailedStepMemory is for)');
    assert.equal(out.released, out.leaked);
    assert.equal(out.left, 0);
    assert.ok(Number.isFinite(out.loss), 'a training step runs after the refusal');
  });
}
