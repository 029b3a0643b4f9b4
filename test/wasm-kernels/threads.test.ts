/**
 * Multithreaded wasm in Node (startWasmBackend({ threads })): the pool really has the threads
 * asked for, the heap is shared, our kernels split their work over the kernel pool, and gradients
 * computed on the threaded build equal the cpu backend's. Runs in child processes: a backend
 * initialises once per process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { relativeMaxError } from './helpers.js';
import { downsampleCase, pooledCaseGrads, smallCaseGrads, stemCase } from './fixtures/threaded-cases.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'threaded-child.ts');

interface ChildResult {
  started: { threads: number; kernelThreads: number; simd: boolean; note?: string };
  heap: { threaded: boolean; heapBytes: number };
  /** Tasks the kernel pool ran for the pooled case, by name. */
  pooledTasks: Record<string, number>;
  identicalOnOneThread: boolean;
  residualAsSeparateOps: boolean;
  stemAsSeparateOps: boolean;
  small: number[][];
  pooled: number[][];
  downsample: number[][];
  stem: number[];
}

function runChild(threads: number): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, String(threads)], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `child printed no result (status ${r.status}, signal ${r.signal}): ${r.stderr.slice(-500)}`);
  return JSON.parse(line) as ChildResult;
}

function assertClose(label: string, reference: number[][], actual: number[][]): void {
  assert.equal(actual.length, reference.length);
  reference.forEach((ref, i) => {
    const err = relativeMaxError(Float32Array.from(ref), Float32Array.from(actual[i]));
    assert.ok(err <= 1e-4, `${label} [${i}]: relative error ${err.toExponential(2)}`);
  });
}

test('startWasmBackend({ threads: 2 }) runs 2 XNNPACK and 2 kernel threads on a shared heap, and trains correctly', async () => {
  const threaded = runChild(2);
  assert.equal(threaded.started.threads, 2, JSON.stringify(threaded.started));
  assert.equal(threaded.started.kernelThreads, 2, JSON.stringify(threaded.started));
  assert.ok(threaded.heap.threaded, 'the threaded build uses a SharedArrayBuffer heap');
  // (tableTranspose is not among them: it serves only the filter gradient of layers over 128
  // channels, which winograd.test.ts checks on one thread; the pooled case's layer goes block by block.)
  for (const task of ['filterGrad', 'transformRows', 'tableGemm', 'gemmRows', 'batchNormSums', 'batchNormBackward', 'maxPool', 'maxPoolGrad', 'winogradBlocks', 'winogradFilterGradBlocks']) {
    assert.ok((threaded.pooledTasks[task] ?? 0) > 0, `${task} never reached the kernel pool: ${JSON.stringify(threaded.pooledTasks)}`);
  }
  assert.ok(threaded.identicalOnOneThread, 'the parts run on one thread gave other gradients (or residual, downsampling or stem convolutions, or max pools) than on the pool');
  assert.ok(threaded.residualAsSeparateOps, 'a residual convolution on the pool differs from its conv, add and relu');
  assert.ok(threaded.stemAsSeparateOps, 'a stem pooled block by block on the pool differs from its conv and max pool');
  await tf.setBackend('cpu');
  assertClose('small case', smallCaseGrads(), threaded.small);
  assertClose('pooled case', pooledCaseGrads(), threaded.pooled);
  assertClose('downsample case', downsampleCase(), threaded.downsample);
  assertClose('stem case', [stemCase(false)], [threaded.stem]);
});

test('startWasmBackend() without threads keeps the single-threaded build and no kernel pool', () => {
  const single = runChild(1);
  assert.equal(single.started.threads, 1);
  assert.equal(single.started.kernelThreads, 1);
  assert.equal(single.heap.threaded, false);
  assert.deepEqual(single.pooledTasks, {});
});
