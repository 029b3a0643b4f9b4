/** `createModel`: body + fastai head, parameter groups, preprocessing, and weights from a local path. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE_NORMALIZATION } from '../../src-main/engine/data/normalize.js';
import { ARCHS, CATALOGUE } from '../../src-main/engine/models/catalogue.js';
import { createModel, isBatchNorm, normalizePixels, type FinetuneModel } from '../../src-main/engine/models/create-model.js';
import { readSafetensors } from '../../src-main/engine/models/safetensors.js';
import { makeTempDir } from '../helpers/images.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

before(async () => {
  await selectBackend();
});

/** Every trainable variable of the model is in exactly one group. */
function assertGroupsPartition(m: FinetuneModel): void {
  const seen = new Map<tf.LayerVariable, string>();
  for (const g of m.paramGroups) {
    for (const p of g.params) {
      assert.ok(!seen.has(p), `${p.name} is in "${seen.get(p)}" and "${g.name}"`);
      seen.set(p, g.name);
    }
  }
  assert.equal(seen.size, m.model.trainableWeights.length);
  for (const w of m.model.trainableWeights) assert.ok(seen.has(w), `${w.name} is in no parameter group`);
}

describe('createModel', () => {
  test('resnet34 (random body): fastai groups stem+layer1+layer2 | layer3+layer4 | head', async () => {
    const m = await createModel({ arch: 'resnet34', numClasses: 37, weights: 'random', seed: 1 });
    try {
      assert.deepEqual(m.model.layers.map((l) => l.name), ['image', 'body', 'head']);
      assert.deepEqual(m.preprocessing, IMAGENET_NORMALIZATION);
      assert.equal(m.numFeatures, 512);
      assertGroupsPartition(m);
      const [g0, g1, g2] = m.paramGroups.map((g) => g.layers.map((l) => l.name));
      assert.ok(g0.every((n) => /^(conv1|bn1|layer[12]\.)/.test(n)) && g0.includes('conv1') && g0.includes('layer2.3.bn2'), g0.join());
      assert.ok(g1.every((n) => /^layer[34]\./.test(n)) && g1.includes('layer3.0.downsample.0') && g1.includes('layer4.2.bn2'), g1.join());
      assert.deepEqual(g2, ['head.bn1', 'head.lin1', 'head.bn2', 'head.lin2']);
      assert.equal(m.paramGroups[2].layers.filter(isBatchNorm).length, 2);
      // ResNets run at any size: the pooling head makes the output independent of it.
      for (const size of [64, 96]) {
        const y = tf.tidy(() => m.model.predict(tf.zeros([2, size, size, 3])) as tf.Tensor);
        assert.deepEqual(y.shape, [2, 37]);
        y.dispose();
      }
    } finally {
      m.dispose();
    }
  });

  test('resnet18 with a local torchvision checkpoint: the body reproduces PyTorch layer4, fc is dropped', { skip: sharedSkipReason('fixtures', 'resnet18.io.safetensors') }, async () => {
    const m = await createModel({ arch: 'resnet18', numClasses: 2, weights: { path: sharedPath('fixtures', 'resnet18.weights.safetensors') } });
    try {
      assert.equal(m.weights.source, 'local');
      const io = await readSafetensors(sharedPath('fixtures', 'resnet18.io.safetensors'));
      const x = io.tensors.get('input_nchw')!;
      const ref = io.tensors.get('layer4_nchw')!;
      const [err, scale] = tf.tidy(() => {
        const input = tf.tensor(x.data, x.shape).transpose([0, 2, 3, 1]);
        const want = tf.tensor(ref.data, ref.shape).transpose([0, 2, 3, 1]);
        const got = m.body.predict(input) as tf.Tensor;
        return [got.sub(want).abs().max().dataSync()[0], want.abs().max().dataSync()[0]];
      });
      assert.ok(err / scale <= 1e-4, `layer4 error ${err} of scale ${scale}`);
    } finally {
      m.dispose();
    }
  });

  test('mobilenet_v2_0.35 from a local weights folder: cut at out_relu, two body groups, x/127.5-1', { skip: sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') }, async () => {
    const m = await createModel({ arch: 'mobilenet_v2_0.35', numClasses: 5, weights: { path: sharedPath('weights') }, inputSize: 128 });
    try {
      assert.equal(m.weights.source, 'local');
      assert.deepEqual(m.model.inputs[0].shape, [null, 128, 128, 3]);
      assert.deepEqual(m.body.outputs[0].shape, [null, 4, 4, 1280]);
      assert.deepEqual(m.preprocessing, MINUS_ONE_TO_ONE_NORMALIZATION);
      assertGroupsPartition(m);
      const names = m.paramGroups.map((g) => g.layers.map((l) => l.name));
      assert.ok(names[0].includes('Conv1') && names[0].includes('block_5_project_BN') && !names[0].some((n) => n.startsWith('block_6')));
      assert.ok(names[1].includes('block_6_expand') && names[1].includes('Conv_1_bn'));
      // The body holds the 410,208 weights of the Keras backbone (trainable + BatchNorm statistics).
      assert.equal(m.body.countParams(), 410_208);
      // normalizePixels: 0 -> -1, 255 -> 1.
      const y = normalizePixels(tf.tensor4d([0, 127.5, 255, 255, 0, 0], [1, 1, 2, 3]), m.preprocessing);
      assert.deepEqual(Array.from(y.dataSync()), [-1, 0, 1, 1, -1, -1]);
      y.dispose();
    } finally {
      m.dispose();
    }
  });

  test('errors say what is wrong and what to do', async () => {
    await assert.rejects(createModel({ arch: 'resnet101', numClasses: 2 }), /Unknown architecture "resnet101". Available: resnet18, resnet34/);
    await assert.rejects(createModel({ arch: 'mobilenet_v2_0.35', numClasses: 2, weights: 'random' }), /only available with its pretrained weights/);
    await assert.rejects(createModel({ arch: 'resnet18', numClasses: 2, weights: 'random', inputSize: 8 }), /inputSize must be an integer of at least 32/);
    const { dir, cleanup } = await makeTempDir('cm-');
    try {
      await assert.rejects(
        createModel({ arch: 'resnet18', numClasses: 2, weights: { path: dir } }),
        (err: Error) => err.message.includes(`looked for ${dir}/model.safetensors and ${dir}/resnet18.tv_in1k/model.safetensors`),
      );
    } finally {
      await cleanup();
    }
  });

  test('catalogue: every architecture has weights, preprocessing, three groups and a licence', () => {
    for (const arch of ARCHS) {
      const e = CATALOGUE[arch];
      assert.equal(e.arch, arch);
      assert.match(e.weights.url, /^https:\/\//);
      assert.ok(e.weights.approxBytes > 1e6 && e.licence.length > 10 && e.layerGroups.length === 3, arch);
      assert.equal(e.preprocessing, e.family === 'resnet' ? IMAGENET_NORMALIZATION : MINUS_ONE_TO_ONE_NORMALIZATION);
      // An unpinned source must say so in its URL's revision, never pretend to be a commit.
      if (!e.weights.pinned) assert.ok(!/^[0-9a-f]{40}$/.test(e.weights.revision), arch);
    }
  });
});
