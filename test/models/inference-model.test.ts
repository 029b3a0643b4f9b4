/** The inference form of a model: BatchNorms folded into convolutions, activations fused (inference-model.ts). */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { foldBatchNorms, inferenceModel } from '../../src-main/engine/models/inference-model.js';
import { MOBILENET_V2_035, sharedSkipReason } from '../helpers/shared.js';

before(async () => {
  await selectBackend();
});

/** Gives every BatchNorm of `model` statistics and an affine map far from the identity. */
function randomiseBatchNorms(model: tf.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const channels = layer.getWeights()[0].shape[0];
    const [gamma, beta, mean, variance] = [
      tf.randomUniform([channels], 0.5, 2, 'float32', seed++),
      tf.randomUniform([channels], -1, 1, 'float32', seed++),
      tf.randomUniform([channels], -1, 1, 'float32', seed++),
      tf.randomUniform([channels], 0.2, 3, 'float32', seed++),
    ];
    layer.setWeights([gamma, beta, mean, variance]);
    tf.dispose([gamma, beta, mean, variance]);
  }
}

/** Largest |a - b| relative to the largest |a|. */
function relativeDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(a)).dataSync()[0]);
}

const classes = (m: tf.LayersModel) => m.layers.map((l) => l.getClassName());
const count = (m: tf.LayersModel, className: string) => classes(m).filter((c) => c === className).length;

describe('foldBatchNorms', () => {
  test('folds conv -> BatchNorm (-> relu / relu6) and a pad into the conv after it only where exact, with the same outputs', async () => {
    const x = tf.input({ shape: [8, 8, 4] });
    const convA = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: true, biasInitializer: 'randomNormal', name: 'convA' });
    const a = tf.layers.reLU({ maxValue: 6, name: 'reluA' }).apply(tf.layers.batchNormalization({ name: 'bnA' }).apply(convA.apply(x))) as tf.SymbolicTensor;
    // A depthwise conv with 2 outputs per channel; its BatchNorm feeds two layers, so its relu stays.
    const b = tf.layers.batchNormalization({ name: 'bnB' }).apply(tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false, name: 'dwB' }).apply(a)) as tf.SymbolicTensor;
    const rb = tf.layers.activation({ activation: 'relu', name: 'reluB' }).apply(b) as tf.SymbolicTensor;
    // A conv whose output also feeds the sum cannot take its BatchNorm.
    const c = tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: false, name: 'convC' }).apply(a) as tf.SymbolicTensor;
    const cb = tf.layers.batchNormalization({ name: 'bnC' }).apply(c) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([b, rb, cb, c]) as tf.SymbolicTensor;
    // Stride 2 on 8 pixels: padding [0, 1] is what `same` pads (MobileNet's pads); [1, 1] is not.
    const strided = (pad: [number, number], name: string) =>
      tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', name: `conv${name}` }).apply(tf.layers.zeroPadding2d({ padding: [pad, pad], name: `pad${name}` }).apply(sum)) as tf.SymbolicTensor;
    // PyTorch's [1, 1] before a conv that takes a BatchNorm: explicit padding in its fused call.
    const convF = tf.layers.batchNormalization({ name: 'bnF' }).apply(strided([1, 1], 'F')) as tf.SymbolicTensor;
    // A pad before a max pool: absorbed after a relu (zeros never win), kept after the sum.
    const pool = (input: tf.SymbolicTensor, name: string) =>
      tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: `pool${name}` }).apply(tf.layers.zeroPadding2d({ padding: 1, name: `pad${name}` }).apply(input)) as tf.SymbolicTensor;
    const body = tf.model({ inputs: x, outputs: [sum, strided([0, 1], 'D'), strided([1, 1], 'E'), convF, pool(rb, 'G'), pool(sum, 'H')] });
    randomiseBatchNorms(body, 1);
    const input = tf.randomNormal([3, 8, 8, 4], 0, 2, 'float32', 5);
    const before = tf.memory().numTensors;
    const folded = await foldBatchNorms(body);
    try {
      assert.deepEqual([folded.folds, folded.pads], [3, 3]);
      const kept = folded.model.layers.filter((l) => l.getClassName() !== 'InputLayer').map((l) => l.name);
      assert.deepEqual(kept.sort(), ['bnC', 'convA', 'convC', 'convD', 'convE', 'convF', 'dwB', 'padE', 'padH', 'poolG', 'poolH', 'reluB', 'sum']);
      assert.equal(folded.model.getLayer('convA').getConfig().activation, 'relu6');
      assert.equal(folded.model.getLayer('dwB').getConfig().activation, 'linear');
      assert.equal(folded.model.getLayer('dwB').getConfig().useBias, true);
      assert.equal(folded.model.getLayer('convD').getConfig().padding, 'same');
      const want = body.predict(input) as tf.Tensor[];
      const got = folded.model.predict(input) as tf.Tensor[];
      want.forEach((w, i) => {
        const diff = relativeDiff(w, got[i]);
        assert.ok(diff < 1e-5, `output ${i} differs by ${diff} of its scale`);
      });
      tf.dispose([...want, ...got]);
    } finally {
      folded.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'dispose frees every tensor folding made');
    input.dispose();
    body.dispose();
  });

  test('ResNet-18: all 20 BatchNorms folded, the 9 ReLUs right after them fused, each block ending in one convolution that adds the shortcut, the stem one convolution that max-pools; the model keeps its own weights', async () => {
    const m = await createModel({ arch: 'resnet18', numClasses: 5, weights: 'random', seed: 2 });
    try {
      randomiseBatchNorms(m.body, 10);
      const conv1 = m.body.getLayer('conv1').getWeights()[0].dataSync().slice();
      const net = await inferenceModel(m);
      try {
        assert.equal(count(net.body, 'BatchNormalization'), 0);
        assert.equal(count(net.body, 'Conv2D'), 11);
        assert.equal(count(net.body, 'FinetuneResidualConv2D'), 8, "each block's second convolution, its sum and its ReLU");
        assert.deepEqual([count(net.body, 'FinetuneConvMaxPool2D'), count(net.body, 'MaxPooling2D')], [1, 0], 'the stem and its max pool');
        assert.deepEqual([count(net.body, 'Add'), count(net.body, 'ReLU')], [0, 0]);
        assert.equal(count(net.body, 'ZeroPadding2D'), 0, "the stem's, the max pool's and the stride-2 convolutions' pads are theirs");
        // An odd size: PyTorch's padding and `same` differ there in where they pad, not in how much.
        const x = tf.randomNormal([2, 61, 64, 3], 0, 1, 'float32', 3);
        const want = m.model.predict(x) as tf.Tensor;
        const profile = await tf.profile(() => net.model.predict(x) as tf.Tensor);
        const got = profile.result as tf.Tensor;
        // (The head's ReLU, after its linear layer, still runs.)
        for (const k of ['PadV2', 'Add', 'MaxPool']) assert.ok(!profile.kernelNames.includes(k), `${k} still runs: ${profile.kernelNames.join(', ')}`);
        const diff = relativeDiff(want, got);
        tf.dispose([x, want, got]);
        assert.ok(diff < 1e-4, `class scores differ by ${diff} of their scale`);
      } finally {
        net.dispose();
      }
      assert.deepEqual(m.body.getLayer('conv1').getWeights()[0].dataSync(), conv1, 'the trained model is untouched');
    } finally {
      m.dispose();
    }
  });

  test('MobileNetV2-0.35: every BatchNorm folded, relu6 fused, pad absorbed and shortcut added by the projection, so no BatchNorm, Relu, clip, pad or add kernel runs', { skip: sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') }, async () => {
    const m = await createModel({ arch: 'mobilenet_v2_0.35', numClasses: 2, weights: { path: MOBILENET_V2_035 }, inputSize: 96 });
    try {
      const folded = await foldBatchNorms(m.body);
      try {
        assert.deepEqual([folded.folds, folded.pads, folded.residuals], [52, 5, 10]);
        assert.deepEqual(['BatchNormalization', 'ReLU', 'ZeroPadding2D', 'Add'].map((c) => count(folded.model, c)), [0, 0, 0, 0]);
        const x = tf.randomNormal([2, 96, 96, 3], 0, 1, 'float32', 4);
        const want = m.body.predict(x) as tf.Tensor;
        const profile = await tf.profile(() => folded.model.predict(x) as tf.Tensor);
        const got = profile.result as tf.Tensor;
        const diff = relativeDiff(want, got);
        tf.dispose([x, want, got]);
        assert.ok(diff < 1e-4, `features differ by ${diff} of their scale`);
        const kernels = new Set(profile.kernelNames);
        for (const k of ['FusedBatchNorm', 'Relu', 'Relu6', 'ClipByValue', 'PadV2', 'Add']) assert.ok(!kernels.has(k), `${k} still runs: ${[...kernels].join(', ')}`);
        assert.ok(kernels.has('FusedDepthwiseConv2D'), `depthwise convs run fused: ${[...kernels].join(', ')}`);
      } finally {
        folded.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});
