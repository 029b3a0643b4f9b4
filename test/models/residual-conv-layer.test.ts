/**
 * ResidualConv2D (residual-conv-layer.ts): the layer a ResNet block's end becomes in the inference
 * model. The same numbers through the wasm kernel and through the plain ops other backends run
 * (here `cpu`), against conv + bias + residual + activation written out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { ResidualConv2D } from '../../src-main/engine/models/residual-conv-layer.js';
import { RESIDUAL_CONV2D } from '../../src-main/engine/wasm-kernels/index.js';

test('ResidualConv2D gives conv + bias + residual, then its activation, on wasm (one kernel) and on cpu (plain ops)', async () => {
  await selectBackend({ force: 'wasm' });
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const x = tf.input({ shape: [8, 8, 12] });
    const shortcut = tf.input({ shape: [8, 8, 16] });
    const layer = new ResidualConv2D({ name: 'block', filters: 16, kernelSize: [3, 3], strides: [1, 1], pad: 1, dilationRate: [1, 1], activation: 'relu' });
    const model = tf.model({ inputs: [x, shortcut], outputs: layer.apply([x, shortcut]) as tf.SymbolicTensor });
    assert.deepEqual(model.outputs[0].shape, [null, 8, 8, 16]);
    const kernel = tf.randomNormal([3, 3, 12, 16], 0, 0.3, 'float32', 1);
    const bias = tf.randomNormal([16], 0, 1, 'float32', 2);
    layer.setWeights([kernel, bias]);
    const xs = tf.randomNormal([2, 8, 8, 12], 0, 1, 'float32', 3) as tf.Tensor4D;
    const rs = tf.randomNormal([2, 8, 8, 16], 0, 1, 'float32', 4);
    const profile = await tf.profile(() => model.apply([xs, rs]) as tf.Tensor);
    const got = profile.result as tf.Tensor;
    const kernels = profile.kernelNames;
    if (backend === 'wasm') assert.deepEqual(kernels, [RESIDUAL_CONV2D], `wasm: ${kernels.join(', ')}`);
    else assert.ok(kernels.includes('Add') && kernels.includes('Relu'), `cpu: ${kernels.join(', ')}`);
    const want = tf.tidy(() => tf.relu(tf.add(tf.add(tf.conv2d(xs, kernel as tf.Tensor4D, 1, 1), bias), rs)));
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0] / tf.max(tf.abs(want)).dataSync()[0]);
    assert.ok(diff < 1e-5, `${backend}: relative difference ${diff}`);
    assert.ok(tf.tidy(() => tf.min(got).dataSync()[0]) === 0, `${backend}: the relu clamps the sum`);
    tf.dispose([kernel, bias, xs, rs, got, want]);
    model.layers.forEach((l) => l.dispose());
  }
  await tf.setBackend('wasm');
});
