import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseBatchSize, defaultMicroBatch } from '../../src-main/engine/train/run-training.js';

describe('run settings', () => {
  test("batch size: fastai's 64 unless the training set cannot fill two batches", () => {
    assert.equal(chooseBatchSize(undefined, 5912), 64); // full Pets: 92 steps, as fastai
    assert.equal(chooseBatchSize(undefined, 780), 64); // the shared sample: 12 steps
    assert.equal(chooseBatchSize(undefined, 100), 32);
    assert.equal(chooseBatchSize(undefined, 12), 4, 'never a batch larger than half the set');
    assert.equal(chooseBatchSize(undefined, 1), 1);
  });

  test('an explicit batch size is kept unless it leaves no full batch', () => {
    assert.equal(chooseBatchSize(64, 780), 64);
    assert.equal(chooseBatchSize(32, 20), 8);
  });

  test('micro-batches keep the WebAssembly heap safe; native backends take whole batches', () => {
    assert.equal(defaultMicroBatch('wasm', 224, 64), 16);
    assert.equal(defaultMicroBatch('wasm', 112, 64), 64);
    assert.equal(defaultMicroBatch('node-gpu', 224, 64), 64);
  });
});
