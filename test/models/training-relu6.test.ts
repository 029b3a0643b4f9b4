/**
 * ReLU layers capped at 6 train through one Relu6 op (src-main/engine/models/training-relu6.ts):
 * the same values and input gradient as tfjs-layers' relu-then-clip, with half the passes.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src-main/engine/backend.js';
import { useRelu6Training } from '../../src-main/engine/models/training-relu6.js';

/** Kernels run by `f`, by name. */
async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  return (await tf.profile(f)).kernelNames;
}

describe('relu6 layers while training', () => {
  before(async () => {
    await selectBackend();
  });

  test('one Relu6 op with the layer\'s values and input gradient, bounds included; other caps and inference keep the layer\'s call', async () => {
    const capped = tf.layers.reLU({ maxValue: 6 });
    const other = tf.layers.reLU({ maxValue: 4 });
    const plain = tf.layers.reLU();
    const reference = tf.layers.reLU({ maxValue: 6 });
    assert.equal(useRelu6Training([capped, other, plain, tf.layers.dense({ units: 1 })]), 1);
    // Values on both sides of each bound and on the bounds themselves.
    const x = tf.tensor([-3, -0.5, 0, 0.5, 3, 5.99, 6, 6.01, 9, NaN, 2, -1]);
    const dy = tf.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const gradOf = (layer: tf.layers.Layer) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t, { training: true }) as tf.Tensor, dy)))(x);
    assert.deepEqual(Array.from((capped.apply(x, { training: true }) as tf.Tensor).dataSync()), Array.from((reference.apply(x) as tf.Tensor).dataSync()));
    assert.deepEqual(Array.from(gradOf(capped).dataSync()), Array.from(gradOf(reference).dataSync()));
    assert.deepEqual(await kernelNames(() => capped.apply(x, { training: true }) as tf.Tensor), ['Relu6']);
    assert.deepEqual(await kernelNames(() => capped.apply(x) as tf.Tensor), await kernelNames(() => reference.apply(x) as tf.Tensor));
    assert.ok((await kernelNames(() => other.apply(x, { training: true }) as tf.Tensor)).includes('ClipByValue'));
  });
});
