/**
 * ResNet built with TF.js layers vs torchvision: structure, checkpoint key coverage, and numerical
 * parity with PyTorch on the shared fixtures (computed by ../shared/fixtures/make_fixtures.py).
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { buildResNet, RESNET_CONFIGS, resnetBody, resnetClassifier, type ResNetConfig } from '../../src-main/engine/models/resnet.js';
import { readSafetensors, type SafetensorsFile } from '../../src-main/engine/models/safetensors.js';
import { loadStateDict, matchStateDict, planStateDict, type CheckpointTensorInfo } from '../../src-main/engine/models/torch-state-dict.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

before(async () => {
  await selectBackend();
});

function classifierModel(config: ResNetConfig): tf.LayersModel {
  const g = buildResNet(config, { seed: 1 });
  return tf.model({ inputs: g.input, outputs: resnetClassifier(g) });
}

function trainableCount(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

function dispose(model: tf.LayersModel): void {
  for (const w of model.weights) w.dispose();
}

describe('ResNet structure', () => {
  // torchvision's sum(p.numel() for p in model.parameters()) for each architecture.
  const TORCHVISION_PARAMS = { resnet18: 11_689_512, resnet34: 21_797_672, resnet50: 25_557_032 } as const;
  for (const arch of ['resnet18', 'resnet34', 'resnet50'] as const) {
    test(`${arch}: torchvision's parameter count, 1/32 resolution, ${arch === 'resnet50' ? 2048 : 512} features`, () => {
      const model = classifierModel(RESNET_CONFIGS[arch]);
      try {
        assert.equal(trainableCount(model), TORCHVISION_PARAMS[arch]);
        const g = buildResNet(RESNET_CONFIGS[arch], { inputSize: 224 });
        assert.deepEqual(g.stem.shape, [null, 56, 56, 64]);
        assert.deepEqual(g.stages.map((s) => s.shape.slice(1, 3)), [[56, 56], [28, 28], [14, 14], [7, 7]]);
        assert.equal(g.numFeatures, arch === 'resnet50' ? 2048 : 512);
        // Odd sizes follow PyTorch's floor((n + 2p - k) / s) + 1 at every stride-2 step.
        const odd = buildResNet(RESNET_CONFIGS[arch], { inputSize: 225 });
        assert.deepEqual(odd.stages[3].shape.slice(1, 3), [8, 8]);
        const body = resnetBody(g);
        dispose(body);
        dispose(resnetBody(odd));
      } finally {
        dispose(model);
      }
    });
  }
});

describe('torchvision/timm state dict coverage', () => {
  for (const arch of ['resnet18', 'resnet34', 'resnet50'] as const) {
    const file = `${arch}.state_dict_shapes.json`;
    test(`every tensor of the real ${arch} checkpoint maps, with its shape`, { skip: sharedSkipReason('fixtures', file) }, async () => {
      const shapes = JSON.parse(await readFile(sharedPath('fixtures', file), 'utf8')) as Record<string, { dtype: string; shape: number[] }>;
      const info = new Map<string, CheckpointTensorInfo>(Object.entries(shapes).map(([k, v]) => [k, { shape: v.shape, float: v.dtype !== 'I64' }]));
      const model = classifierModel(RESNET_CONFIGS[arch]);
      try {
        const plan = planStateDict(model);
        matchStateDict(plan, info, { source: file });
        // Both directions: every checkpoint key is consumed (weights or counters) and every variable is fed.
        assert.equal(plan.assignments.length + plan.counters.length, info.size);
        assert.equal(plan.assignments.length, model.weights.length);
        // Body only (what fine-tuning loads): the classifier is the only thing left over.
        const bodyModel = resnetBody(buildResNet(RESNET_CONFIGS[arch]));
        matchStateDict(planStateDict(bodyModel), info, { source: file, dropPrefixes: ['fc.'] });
        assert.throws(() => matchStateDict(planStateDict(bodyModel), info, { source: file }), /unexpected tensors \(2\): fc\.weight; fc\.bias/);
        dispose(bodyModel);
      } finally {
        dispose(model);
      }
    });
  }

  test('missing, unexpected and mis-shaped tensors are named, all at once', () => {
    const model = classifierModel(RESNET_CONFIGS.resnet18);
    try {
      const plan = planStateDict(model);
      const info = new Map<string, CheckpointTensorInfo>(plan.assignments.map((a) => [a.key, { shape: a.torchShape, float: true }]));
      matchStateDict(plan, info); // complete: passes
      info.delete('layer3.1.bn2.running_var');
      info.set('layer2.0.downsample.0.weight', { shape: [128, 64, 3, 3], float: true });
      info.set('layer1.0.conv3.weight', { shape: [64, 64, 1, 1], float: true });
      info.set('fc.weight', { shape: [1000, 512], float: false });
      assert.throws(
        () => matchStateDict(plan, info, { source: 'ckpt.safetensors', target: 'resnet18' }),
        (err: Error) => {
          assert.match(err.message, /^Cannot load ckpt\.safetensors into resnet18/);
          assert.match(err.message, /missing tensors \(1\): layer3\.1\.bn2\.running_var \[256\]/);
          assert.match(err.message, /layer2\.0\.downsample\.0\.weight has shape \[128,64,3,3\], expected \[128,64,1,1\]/);
          assert.match(err.message, /fc\.weight is an integer tensor/);
          assert.match(err.message, /unexpected tensors \(1\): layer1\.0\.conv3\.weight/);
          return true;
        },
      );
    } finally {
      dispose(model);
    }
  });
});

/** NCHW (PyTorch) -> NHWC (TF.js). */
function fixtureTensor(file: SafetensorsFile, name: string): tf.Tensor {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`${file.source} has no tensor "${name}"`);
  const x = tf.tensor(t.data, t.shape);
  return t.shape.length === 4 ? tf.tidy(() => x.transpose([0, 2, 3, 1])) : x;
}

const PARITY_TOLERANCE = 1e-4;

async function checkParity(name: string, config: ResNetConfig, t: { diagnostic: (m: string) => void }): Promise<void> {
  const g = buildResNet(config, { seed: 3 });
  const model = tf.model({ inputs: g.input, outputs: [g.stem, g.stages[0], g.stages[3], resnetClassifier(g)] });
  try {
    const weights = await readSafetensors(sharedPath('fixtures', `${name}.weights.safetensors`));
    const report = loadStateDict(model, weights);
    assert.equal(report.loaded, model.weights.length);
    const io = await readSafetensors(sharedPath('fixtures', `${name}.io.safetensors`));
    const input = fixtureTensor(io, 'input_nchw');
    const outputs = model.predict(input) as tf.Tensor[];
    const names = ['stem_nchw', 'layer1_nchw', 'layer4_nchw', 'logits'];
    const lines: string[] = [];
    for (const [i, key] of names.entries()) {
      const ref = fixtureTensor(io, key);
      assert.deepEqual(outputs[i].shape, ref.shape, `${key} shape`);
      const [err, scale] = tf.tidy(() => [outputs[i].sub(ref).abs().max().dataSync()[0], ref.abs().max().dataSync()[0]]);
      const rel = err / scale;
      lines.push(`${key}: max|err| ${err.toExponential(2)} / max|ref| ${scale.toFixed(3)} = ${rel.toExponential(2)}`);
      assert.ok(rel <= PARITY_TOLERANCE, `${name} ${key}: max abs error ${err} is ${rel} of the output scale ${scale} (limit ${PARITY_TOLERANCE})`);
      ref.dispose();
    }
    t.diagnostic(`${name}: ${lines.join('; ')}`);
    tf.dispose([input, ...outputs]);
  } finally {
    dispose(model);
  }
}

describe('parity with PyTorch (eval mode)', () => {
  test('resnet18 at 224: stem, layer1, layer4 and logits', { skip: sharedSkipReason('fixtures', 'resnet18.io.safetensors') }, async (t) => {
    await checkParity('resnet18', RESNET_CONFIGS.resnet18, t);
  });

  test('bottleneck ResNet [1,1,1,1] (the resnet50 block) at 160', { skip: sharedSkipReason('fixtures', 'resnet_bottleneck_1111.io.safetensors') }, async (t) => {
    await checkParity('resnet_bottleneck_1111', { block: 'bottleneck', layers: [1, 1, 1, 1] }, t);
  });

  test('a wrong checkpoint is refused before any weight is written', { skip: sharedSkipReason('fixtures', 'resnet18.weights.safetensors') }, async () => {
    const model = classifierModel({ block: 'bottleneck', layers: [1, 1, 1, 1] });
    try {
      const before = (model.getLayer('conv1').getWeights()[0].dataSync() as Float32Array).slice();
      const weights = await readSafetensors(sharedPath('fixtures', 'resnet18.weights.safetensors'));
      assert.throws(() => loadStateDict(model, weights), /resnet18\.weights\.safetensors.*\n.*missing tensors \(\d+\): layer1\.0\.conv3\.weight \[256,64,1,1\]/);
      assert.deepEqual(model.getLayer('conv1').getWeights()[0].dataSync(), before);
    } finally {
      dispose(model);
    }
  });
});
