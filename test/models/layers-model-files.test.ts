/** Loading TF.js LayersModel files from disk (model.json + shards) without tfjs-node. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { selectBackend } from '../../src-main/engine/backend.js';
import { loadLayersModelFromDisk, verifyLayersModelFolder, withInputSize } from '../../src-main/engine/models/layers-model-files.js';
import { makeTempDir } from '../helpers/images.js';

before(async () => {
  await selectBackend();
});

/** Saves a small conv model the way the TF.js converter lays files out, with its weights split over two shards. */
async function writeModel(dir: string): Promise<{ model: tf.LayersModel; shardBytes: number[] }> {
  const input = tf.input({ shape: [8, 8, 3] });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'bn' }).apply(conv) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(bn) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2, name: 'fc' }).apply(pooled) as tf.SymbolicTensor });
  let artifacts!: tf.io.ModelArtifacts;
  await model.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  const data = new Uint8Array(artifacts.weightData as ArrayBuffer);
  const cut = 200;
  await writeFile(path.join(dir, 'group1-shard1of2.bin'), data.subarray(0, cut));
  await writeFile(path.join(dir, 'group1-shard2of2.bin'), data.subarray(cut));
  const json = {
    modelTopology: artifacts.modelTopology,
    format: 'layers-model',
    weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: artifacts.weightSpecs }],
  };
  await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
  return { model, shardBytes: [cut, data.length - cut] };
}

describe('LayersModel files on disk', () => {
  test('model.json + shards load into the same model (same outputs)', async () => {
    const { dir, cleanup } = await makeTempDir('lm-');
    try {
      const { model } = await writeModel(dir);
      const loaded = await loadLayersModelFromDisk(dir);
      const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 4);
      const [a, b] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
      assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
      tf.dispose([x, a, b]);
      model.dispose();
      loaded.dispose();
    } finally {
      await cleanup();
    }
  });

  test('missing or short shards, bad JSON and escaping paths are refused with the file named', async () => {
    const { dir, cleanup } = await makeTempDir('lm-');
    try {
      const { model, shardBytes } = await writeModel(dir);
      model.dispose();
      const modelJson = path.join(dir, 'model.json');
      const shard2 = path.join(dir, 'group1-shard2of2.bin');
      await writeFile(shard2, new Uint8Array(shardBytes[1] - 4));
      await assert.rejects(
        verifyLayersModelFolder(modelJson),
        new RegExp(`hold ${shardBytes[0] + shardBytes[1] - 4} bytes but .*model\\.json describes ${shardBytes[0] + shardBytes[1]}`),
      );
      await rm(shard2);
      await assert.rejects(loadLayersModelFromDisk(dir), new RegExp(`weight shard ${shard2.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(listed in .*model\\.json\\) is missing`));
      await writeFile(modelJson, JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['../secret.bin'], weights: [] }] }));
      await assert.rejects(verifyLayersModelFolder(modelJson), /names the weight shard "\.\.\/secret\.bin", which is not a plain relative path/);
      await writeFile(modelJson, '{"modelTopology": ');
      await assert.rejects(verifyLayersModelFolder(modelJson), /model\.json is not valid JSON/);
      await writeFile(modelJson, '{"hello": 1}');
      await assert.rejects(verifyLayersModelFolder(modelJson), /is not a TF\.js LayersModel model\.json/);
    } finally {
      await cleanup();
    }
  });

  test('withInputSize rewrites every 4-D batch_input_shape and nothing else', () => {
    const topology = {
      config: { layers: [{ class_name: 'InputLayer', config: { batch_input_shape: [null, 224, 224, 3] } }, { config: { target_shape: [1, 1, 256], batch_input_shape: [null, 10] } }] },
    };
    assert.deepEqual(withInputSize(topology, 128), {
      config: { layers: [{ class_name: 'InputLayer', config: { batch_input_shape: [null, 128, 128, 3] } }, { config: { target_shape: [1, 1, 256], batch_input_shape: [null, 10] } }] },
    });
  });
});
