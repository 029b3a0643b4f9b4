/**
 * Multithreaded wasm in Node (startWasmBackend({ threads })): the pool really has the threads
 * asked for, the heap is shared, and gradients computed through our kernels on the threaded
 * build equal the cpu backend's. Runs in child processes: a backend initialises once per process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { relativeMaxError } from './helpers.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'threaded-child.ts');

interface ChildResult {
  started: { threads: number; simd: boolean; note?: string };
  heap: { threaded: boolean; heapBytes: number };
  grads: number[][];
}

function runChild(threads: number): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, String(threads)], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `child printed no result (status ${r.status}, signal ${r.signal}): ${r.stderr.slice(-500)}`);
  return JSON.parse(line) as ChildResult;
}

function cpuGrads(): number[][] {
  tf.setBackend('cpu');
  return tf.tidy(() => {
    const x = tf.tensor4d(Array.from({ length: 2 * 12 * 12 * 8 }, (_, i) => Math.sin(i * 0.37)), [2, 12, 12, 8]);
    const w = tf.tensor4d(Array.from({ length: 3 * 3 * 8 * 16 }, (_, i) => Math.cos(i * 0.11)), [3, 3, 8, 16]);
    const dw = tf.tensor4d(Array.from({ length: 3 * 3 * 16 }, (_, i) => Math.sin(i * 0.7)), [3, 3, 16, 1]);
    const f = (xx: tf.Tensor, ww: tf.Tensor, dd: tf.Tensor) =>
      tf.depthwiseConv2d(tf.relu(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same')), dd as tf.Tensor4D, 1, 'same').square().sum();
    return tf.grads(f)([x, w, dw]).map((g) => Array.from(g.dataSync()));
  });
}

test('startWasmBackend({ threads: 2 }) runs a 2-thread pool on a shared heap and trains correctly', () => {
  const threaded = runChild(2);
  assert.equal(threaded.started.threads, 2, JSON.stringify(threaded.started));
  assert.ok(threaded.heap.threaded, 'the threaded build uses a SharedArrayBuffer heap');
  const reference = cpuGrads();
  threaded.grads.forEach((g, i) => {
    const err = relativeMaxError(Float32Array.from(reference[i]), Float32Array.from(g));
    assert.ok(err <= 1e-4, `gradient ${i}: relative error ${err.toExponential(2)}`);
  });
});

test('startWasmBackend() without threads keeps the single-threaded build', () => {
  const single = runChild(1);
  assert.equal(single.started.threads, 1);
  assert.equal(single.heap.threaded, false);
});
