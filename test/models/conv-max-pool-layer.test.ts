/**
 * ConvMaxPool2D (conv-max-pool-layer.ts): the layer ResNet's stem becomes in the inference model.
 * The same numbers through the wasm kernel and through the plain ops other backends run (here
 * `cpu`), against conv + bias + relu + max pool written out; its symbolic output shape.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { ConvMaxPool2D } from '../../src-main/engine/models/conv-max-pool-layer.js';
import { CONV_MAX_POOL2D } from '../../src-main/engine/wasm-kernels/index.js';

test('ConvMaxPool2D gives the max pool of conv + bias, relu, on wasm (one kernel) and on cpu (plain ops)', async () => {
  await selectBackend({ force: 'wasm' });
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const x = tf.input({ shape: [30, 27, 3] });
    const anySize = tf.input({ shape: [null, null, 3] });
    const layer = new ConvMaxPool2D({
      name: 'stem',
      filters: 8,
      kernelSize: [7, 7],
      strides: [2, 2],
      pad: 3,
      dilationRate: [1, 1],
      activation: 'relu',
      poolSize: [3, 3],
      poolStrides: [2, 2],
      poolPad: 1,
    });
    const model = tf.model({ inputs: x, outputs: layer.apply(x) as tf.SymbolicTensor });
    // 30x27 -> 15x14 -> 8x7
    assert.deepEqual(model.outputs[0].shape, [null, 8, 7, 8]);
    assert.deepEqual((layer.apply(anySize) as tf.SymbolicTensor).shape, [null, null, null, 8]);
    const kernel = tf.randomNormal([7, 7, 3, 8], 0, 0.3, 'float32', 1);
    const bias = tf.randomNormal([8], 0, 1, 'float32', 2);
    layer.setWeights([kernel, bias]);
    const xs = tf.randomNormal([2, 30, 27, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const profile = await tf.profile(() => model.apply(xs) as tf.Tensor);
    const got = profile.result as tf.Tensor;
    const kernels = profile.kernelNames;
    if (backend === 'wasm') assert.deepEqual(kernels, [CONV_MAX_POOL2D], `wasm: ${kernels.join(', ')}`);
    else assert.ok(kernels.includes('MaxPool'), `cpu: ${kernels.join(', ')}`);
    const want = tf.tidy(() => tf.maxPool(tf.relu(tf.add(tf.conv2d(xs, kernel as tf.Tensor4D, 2, 3), bias)) as tf.Tensor4D, 3, 2, 1));
    assert.deepEqual(got.shape, want.shape);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0] / tf.max(tf.abs(want)).dataSync()[0]);
    assert.ok(diff < 1e-5, `${backend}: relative difference ${diff}`);
    tf.dispose([kernel, bias, xs, got, want]);
    model.layers.forEach((l) => l.dispose());
  }
  await tf.setBackend('wasm');
});
