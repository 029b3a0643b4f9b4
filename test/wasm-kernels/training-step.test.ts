/**
 * End to end: the gradients of a small network built from the layers our models use (ZeroPadding +
 * strided conv, BatchNorm, ReLU, depthwise conv, ReLU6, residual add, 1x1 strided conv, max-pool,
 * concat of global max and average pooling, dense, softmax cross-entropy), taken with
 * `tf.variableGrads` in training mode, are the same on wasm as on cpu; and a training step (with
 * dropout) leaks no tensor or wasm buffer.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../../src-main/engine/wasm-kernels/index.js';
import { randomArray, relativeMaxError, rng, sizeOf, useWasmWithTrainingKernels } from './helpers.js';

const N = 3;
const SIZE = 13;
const CLASSES = 5;

/** `dropout` only where randomness does not matter: its masks differ between backends. */
function buildNet(dropout = false): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
  let x = apply(tf.layers.zeroPadding2d({ padding: 1 }), input);
  x = apply(tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false }), x);
  x = apply(tf.layers.batchNormalization({ epsilon: 1e-5 }), x);
  const stem = apply(tf.layers.reLU(), x);
  let y = apply(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }), stem);
  y = apply(tf.layers.batchNormalization({ epsilon: 1e-3 }), y);
  y = apply(tf.layers.reLU({ maxValue: 6 }), y);
  y = apply(tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false }), y);
  x = apply(tf.layers.add(), [stem, y]);
  x = apply(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]] }), x);
  x = apply(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'valid', depthMultiplier: 2, useBias: false }), x);
  // No conv biases: every path here reaches a BatchNorm, which cancels a per-channel shift, so a
  // bias gradient would be rounding noise (~1e-8), not a comparison. The fused conv's bias
  // gradient is checked in conv-grads.test.ts.
  x = apply(tf.layers.conv2d({ filters: 12, kernelSize: 1, strides: 2, useBias: false }), x);
  x = apply(tf.layers.reLU(), x);
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), x);
  const max = apply(tf.layers.globalMaxPooling2d({}), x);
  const avg = apply(tf.layers.globalAveragePooling2d({}), x);
  x = apply(tf.layers.concatenate(), [max, avg]);
  x = apply(tf.layers.batchNormalization({}), x);
  if (dropout) x = apply(tf.layers.dropout({ rate: 0.5 }), x);
  x = apply(tf.layers.dense({ units: CLASSES }), x);
  return tf.model({ inputs: input, outputs: x });
}

interface Problem {
  weights: Float32Array[];
  x: Float32Array;
  labels: number[];
}

function makeProblem(seed: number): Problem {
  const r = rng(seed);
  const shapes = tf.tidy(() => {
    tf.setBackend('cpu');
    const m = buildNet();
    const s = m.getWeights().map((w) => w.shape);
    m.dispose();
    return s;
  });
  return {
    weights: shapes.map((s) => randomArray(sizeOf(s), r).map((v) => v * 0.5 + 0.2)),
    x: randomArray(N * SIZE * SIZE * 3, r),
    labels: Array.from({ length: N }, () => Math.floor(r() * CLASSES)),
  };
}

/** Loss and every trainable variable's gradient on `backend`, as plain arrays (by weight order). */
function gradients(backend: 'cpu' | 'wasm', p: Problem): { loss: number; grads: Float32Array[] } {
  tf.setBackend(backend);
  const model = buildNet();
  try {
    model.setWeights(model.getWeights().map((w, i) => tf.tensor(p.weights[i], w.shape)));
    const x = tf.tensor4d(p.x, [N, SIZE, SIZE, 3]);
    const y = tf.oneHot(tf.tensor1d(p.labels, 'int32'), CLASSES);
    const { value, grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    );
    const byName = new Map(Object.entries(grads).map(([k, g]) => [k, new Float32Array(g.dataSync())]));
    const out = model.trainableWeights.map((w) => {
      const g = byName.get(w.originalName) ?? byName.get(w.name);
      assert.ok(g, `no gradient for ${w.name}`);
      return g;
    });
    const loss = value.dataSync()[0];
    tf.dispose([x, y, value, ...Object.values(grads)]);
    return { loss, grads: out };
  } finally {
    model.dispose();
  }
}

before(useWasmWithTrainingKernels);

test('a conv-bn-relu-depthwise-pool-dense net has the same loss and gradients on wasm and cpu', () => {
  for (const seed of [1, 2]) {
    const p = makeProblem(seed);
    const cpu = gradients('cpu', p);
    const wasm = gradients('wasm', p);
    assert.ok(Math.abs(cpu.loss - wasm.loss) <= 1e-4 * Math.max(1, Math.abs(cpu.loss)), `loss ${cpu.loss} vs ${wasm.loss}`);
    assert.equal(wasm.grads.length, cpu.grads.length);
    assert.ok(cpu.grads.length >= 13, 'every conv, BN, and dense weight is trained');
    cpu.grads.forEach((g, i) => {
      const err = relativeMaxError(g, wasm.grads[i]);
      assert.ok(err <= 1e-4, `seed ${seed}, gradient ${i} (${g.length} values): relative error ${err.toExponential(2)}`);
    });
  }
  tf.setBackend('wasm');
});

test('training steps on wasm leak neither tensors nor wasm buffers, and registering again is a no-op', () => {
  tf.setBackend('wasm');
  assert.deepEqual(registerWasmTrainingKernels(), { added: [], replaced: [], gradients: [] });
  const model = buildNet(true);
  const optimizer = tf.train.adam(1e-3);
  const x = tf.randomNormal([N, SIZE, SIZE, 3]);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2], 'int32'), CLASSES);
  const step = () => optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar)!;
  const backend = tf.backend() as BackendWasm;
  step();
  const tensors = tf.memory().numTensors;
  const buffers = backend.numDataIds();
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), buffers);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});
