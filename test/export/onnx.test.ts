/**
 * The ONNX writer and the Keras -> ONNX translation, checked against ONNX Runtime: protobuf wire
 * bytes, a graph that exercises every translated layer (odd sizes for TF's asymmetric 'same'
 * padding, kept and folded BatchNorms, folded and kept paddings, a nested model called twice, NHWC
 * flatten order), and the real app architectures (ResNet basic and bottleneck blocks, MobileNet v1
 * and v2) wrapped as the export wraps them.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { selectBackend } from '../../src-main/engine/backend.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { kerasToOnnx, type NamedWeight } from '../../src-main/engine/export/keras-to-onnx.js';
import { attr, decodeOnnxModel, encodeOnnxModel, ONNX_FLOAT, type OnnxModel } from '../../src-main/engine/export/onnx-proto.js';
import { ProtoWriter, readFields, unpackVarints } from '../../src-main/engine/export/protobuf.js';
import { buildExportModel, captureArtifacts, namedWeights } from '../../src-main/engine/export/tfjs-export.js';
import { MOBILENET_V2_035, sharedPath, sharedSkipReason } from '../helpers/shared.js';

before(async () => {
  await selectBackend();
});

async function runOnnx(bytes: Uint8Array, input: Float32Array, shape: number[], optimize = true): Promise<Float32Array> {
  // Both with ONNX Runtime's graph rewrites (what users get) and without (the model's own semantics).
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: optimize ? 'all' : 'disabled' });
  try {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, shape) });
    return out[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Converts a TF.js model and compares ONNX Runtime's output with TF.js' on `x`. */
async function parity(model: tf.LayersModel, x: tf.Tensor, fold = true): Promise<{ diff: number; bytes: Uint8Array; report: ReturnType<typeof kerasToOnnx>['report'] }> {
  const artifacts = await captureArtifacts(model);
  const { model: onnx, report } = kerasToOnnx(artifacts.modelTopology, namedWeights(artifacts), { fold });
  const bytes = encodeOnnxModel(onnx);
  const expected = (await (model.predict(x) as tf.Tensor).data()) as Float32Array;
  const pixels = (await x.data()) as Float32Array;
  const diff = Math.max(maxAbsDiff(expected, await runOnnx(bytes, pixels, x.shape, true)), maxAbsDiff(expected, await runOnnx(bytes, pixels, x.shape, false)));
  return { diff, bytes, report };
}

describe('protobuf wire format', () => {
  test('varints, negative int64, floats and nesting encode as protobuf specifies and read back', () => {
    assert.deepEqual([...new ProtoWriter().varint(1, 300).finish()], [0x08, 0xac, 0x02]);
    // int64 -1: ten bytes of two's complement.
    assert.deepEqual([...new ProtoWriter().varint(3, -1).finish()], [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert.deepEqual([...new ProtoWriter().float(2, 1).finish()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
    assert.deepEqual([...new ProtoWriter().string(1, 'hi').finish()], [0x0a, 0x02, 0x68, 0x69]);
    const inner = new ProtoWriter().packedVarints(8, [1, -2, 2 ** 40]);
    const outer = new ProtoWriter().message(5, inner).finish();
    const [f] = readFields(outer);
    assert.equal(f.field, 5);
    assert.deepEqual(unpackVarints(readFields(f.bytes!)[0].bytes!), [1, -2, 2 ** 40]);
    assert.throws(() => readFields(Uint8Array.of(0x0a, 0x05, 0x01)), /runs past the end/);
  });

  test('a hand-written model runs in ONNX Runtime and decodes to what was encoded', async () => {
    const model: OnnxModel = {
      irVersion: 7,
      opsetVersion: 13,
      producerName: 'test',
      producerVersion: '1',
      graph: {
        name: 'g',
        nodes: [
          { opType: 'Gemm', name: 'gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attributes: { alpha: attr.float(2) } },
          { opType: 'Softmax', name: 'sm', inputs: ['y'], outputs: ['p'], attributes: { axis: attr.int(-1) } },
        ],
        initializers: [
          { name: 'w', dims: [2, 2], data: { type: 'float32', values: Float32Array.of(1, 0, 0, 1) } },
          { name: 'b', dims: [2], data: { type: 'float32', values: Float32Array.of(0, Math.log(3)) } },
        ],
        inputs: [{ name: 'x', elemType: ONNX_FLOAT, shape: ['n', 2] }],
        outputs: [{ name: 'p', elemType: ONNX_FLOAT, shape: ['n', 2] }],
      },
      metadata: { labels: '["a","b"]' },
    };
    const bytes = encodeOnnxModel(model);
    // softmax(2x + [0, ln 3]) at x = 0: [1/4, 3/4].
    const p = await runOnnx(bytes, Float32Array.of(0, 0), [1, 2]);
    assert.ok(maxAbsDiff(p, [0.25, 0.75]) < 1e-6, `got ${p}`);
    const back = decodeOnnxModel(bytes);
    assert.equal(back.opsetVersion, 13);
    assert.deepEqual(back.metadata, { labels: '["a","b"]' });
    assert.deepEqual(back.graph.nodes.map((n) => n.opType), ['Gemm', 'Softmax']);
    assert.deepEqual(back.graph.nodes[1].attributes.axis, attr.int(-1));
    assert.deepEqual(back.graph.inputs[0].shape, ['n', 2]);
    assert.deepEqual(back.graph.initializers.map((t) => [t.name, t.dims]), [['w', [2, 2]], ['b', [2]]]);
  });
});

/** A small model using every layer the translation handles, with non-trivial BatchNorm statistics. */
function everyLayerModel(): tf.LayersModel {
  const L = tf.layers;
  const input = tf.input({ shape: [9, 9, 3], name: 'img' });
  const scaled = L.rescaling({ scale: 1 / 128, offset: -1, name: 'rescale' }).apply(input) as tf.SymbolicTensor;
  // Stride-2 'same' on 9 pixels: TF pads [0, 1] (odd pixel after); activation blocks the BN fold.
  const a0 = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv_a' }).apply(scaled) as tf.SymbolicTensor;
  const a = L.batchNormalization({ name: 'bn_kept', epsilon: 1e-3 }).apply(a0) as tf.SymbolicTensor; // kept: conv has an activation
  // Asymmetric zero padding folded into a depthwise conv, then a folded BN and ReLU6.
  const bPad = L.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'pad_b' }).apply(a) as tf.SymbolicTensor;
  const bDw = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', useBias: false, name: 'dw_b' }).apply(bPad) as tf.SymbolicTensor;
  const bBn = L.batchNormalization({ name: 'bn_dw', epsilon: 1e-5 }).apply(bDw) as tf.SymbolicTensor;
  const b = L.reLU({ maxValue: 6, name: 'relu6_b' }).apply(bBn) as tf.SymbolicTensor;
  // Zero padding before a max-pool: a's values go negative, so the zeros win some windows.
  const cPad = L.zeroPadding2d({ padding: 1, name: 'pad_c' }).apply(a) as tf.SymbolicTensor;
  const c = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'pool_c' }).apply(cPad) as tf.SymbolicTensor;
  const cSame = L.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool_same' }).apply(a) as tf.SymbolicTensor;
  // Both kinds at once: zeros that count, then 'same' padding that never wins.
  const mixedPad = L.zeroPadding2d({ padding: [[0, 1], [1, 0]], name: 'pad_mixed' }).apply(a) as tf.SymbolicTensor;
  const mixed = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool_mixed' }).apply(mixedPad) as tf.SymbolicTensor;
  const d = L.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'avg_d' }).apply(b) as tf.SymbolicTensor;
  // A nested model called twice (Keras node indices 1 and 2), sharing its weights.
  const subIn = tf.input({ shape: [5, 5, 4], name: 'sub_in' });
  const subConv = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'sub_conv' }).apply(subIn) as tf.SymbolicTensor;
  const sub = tf.model({ inputs: subIn, outputs: subConv, name: 'sub' });
  const e = L.conv2d({ filters: 4, kernelSize: 1, useBias: false, name: 'conv_e' }).apply(a) as tf.SymbolicTensor;
  const f = L.add({ name: 'add_f' }).apply([a, e]) as tf.SymbolicTensor;
  const g = L.multiply({ name: 'mul_g' }).apply([sub.apply(f) as tf.SymbolicTensor, sub.apply(a) as tf.SymbolicTensor]) as tf.SymbolicTensor;
  const h = L.concatenate({ axis: -1, name: 'cat_h' }).apply([f, g]) as tf.SymbolicTensor;
  // Keras flattens NHWC: the Dense weights only line up if the translation does too.
  const flat = L.flatten({ name: 'flat' }).apply(h) as tf.SymbolicTensor;
  const dense1 = L.dense({ units: 6, activation: 'sigmoid', name: 'dense_1' }).apply(flat) as tf.SymbolicTensor;
  const vec = L.concatenate({ name: 'cat_vec' }).apply([
    dense1,
    L.globalAveragePooling2d({ name: 'gap_b' }).apply(b) as tf.SymbolicTensor,
    L.globalMaxPooling2d({ name: 'gmp_d' }).apply(d) as tf.SymbolicTensor,
    L.globalAveragePooling2d({ name: 'gap_c' }).apply(c) as tf.SymbolicTensor,
    L.globalAveragePooling2d({ name: 'gap_same' }).apply(cSame) as tf.SymbolicTensor,
    L.flatten({ name: 'flat_mixed' }).apply(mixed) as tf.SymbolicTensor,
  ]) as tf.SymbolicTensor;
  // fastai head pattern: BN -> Dropout -> Dense (the BN folds into the Dense).
  const bnVec = L.batchNormalization({ name: 'bn_vec', epsilon: 1e-5 }).apply(vec) as tf.SymbolicTensor;
  const drop = L.dropout({ rate: 0.5, name: 'drop' }).apply(bnVec) as tf.SymbolicTensor;
  const logits = L.dense({ units: 5, useBias: false, name: 'dense_out' }).apply(drop) as tf.SymbolicTensor;
  const probs = L.softmax({ name: 'probs' }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probs, name: 'every_layer' });
  // Give every BatchNorm real statistics (defaults are mean 0, variance 1: folding would be trivial).
  let seed = 7;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const n = layer.getWeights()[0].shape[0];
    seed++;
    layer.setWeights([
      tf.randomUniform([n], 0.5, 1.5, 'float32', seed),
      tf.randomUniform([n], -0.5, 0.5, 'float32', seed + 100),
      tf.randomUniform([n], -0.3, 0.3, 'float32', seed + 200),
      tf.randomUniform([n], 0.2, 2, 'float32', seed + 300),
    ]);
  }
  return model;
}

describe('Keras -> ONNX translation', () => {
  test('every translated layer matches TF.js, folded and unfolded', async () => {
    const model = everyLayerModel();
    const x = tf.randomUniform([3, 9, 9, 3], 0, 255, 'float32', 3);
    const folded = await parity(model, x, true);
    assert.ok(folded.diff < 1e-6, `folded: max |TF.js - ONNX Runtime| = ${folded.diff}`);
    assert.deepEqual([folded.report.foldedBatchNorms, folded.report.keptBatchNorms, folded.report.foldedPads], [2, 1, 3]);
    const ops = folded.report.opCounts;
    assert.equal(ops.Pad, undefined, 'both zero paddings fold into the next layer');
    assert.equal(ops.Max, 2, "max-pools after zero padding restore the zeros' effect");
    assert.equal(ops.BatchNormalization, 1);
    assert.equal(ops.Conv, 5, 'conv_a, dw_b, conv_e and sub_conv twice');
    const unfolded = await parity(model, x, false);
    assert.ok(unfolded.diff < 1e-6, `unfolded: ${unfolded.diff}`);
    // Unfolded, the padding before the convolution stays; the one before the pool always folds (see pooling()).
    assert.deepEqual([unfolded.report.foldedBatchNorms, unfolded.report.keptBatchNorms, unfolded.report.opCounts.Pad], [0, 3, 1]);
    // The NHWC input is named and shaped as the export promises.
    const decoded = decodeOnnxModel(folded.bytes);
    assert.deepEqual(decoded.graph.inputs[0].shape, ['batch', 9, 9, 3]);
    assert.deepEqual(decoded.graph.outputs[0].shape, ['batch', 5]);
    model.dispose();
  });

  test('refuses what it cannot translate, naming the layer or weight', async () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const up = tf.layers.conv2dTranspose({ filters: 2, kernelSize: 2, name: 'deconv' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.globalAveragePooling2d({}).apply(up) as tf.SymbolicTensor;
    const bad = tf.model({ inputs: input, outputs: out });
    const art = await captureArtifacts(bad);
    assert.throws(() => kerasToOnnx(art.modelTopology, namedWeights(art)), /"deconv" is a Conv2DTranspose, which the ONNX exporter does not translate/);

    const good = everyLayerModel();
    const artifacts = await captureArtifacts(good);
    const weights = namedWeights(artifacts);
    const missing = new Map(weights);
    missing.delete('dense_1/kernel');
    assert.throws(() => kerasToOnnx(artifacts.modelTopology, missing), /needs the weight "dense_1\/kernel"/);
    const extra = new Map<string, NamedWeight>(weights);
    extra.set('stray/kernel', { shape: [1], values: Float32Array.of(1) });
    assert.throws(() => kerasToOnnx(artifacts.modelTopology, extra), /belong to no layer.*stray\/kernel/);
    assert.throws(() => kerasToOnnx({ class_name: 'Linear' }, weights), /not a Keras model/);
    bad.dispose();
    good.dispose();
  });
});

describe('the app architectures, wrapped as exported (pixels 0..255 -> probabilities)', () => {
  // ResNets are built from code; MobileNets need their pretrained model.json from ../shared.
  const cases: [string, { path: string } | 'random', number, string | false][] = [
    ['mobilenet_v2_0.35', { path: MOBILENET_V2_035 }, 48, sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top')],
    ['mobilenet_v1_0.25', { path: sharedPath('weights', 'mobilenet_v1_0.25_224') }, 40, sharedSkipReason('weights', 'mobilenet_v1_0.25_224')],
    ['resnet18', 'random', 40, false],
    ['resnet50', 'random', 32, false],
  ];
  for (const [arch, weights, size, skip] of cases) {
    test(`${arch} at ${size}px: ONNX Runtime matches TF.js to 1e-5, every BatchNorm folded`, { skip }, async () => {
      const fm = await createModel({ arch, numClasses: 3, weights, inputSize: size, seed: 3, head: { seed: 3 } });
      const wrapped = buildExportModel(fm, size, fm.preprocessing);
      const x = tf.randomUniform([2, size, size, 3], 0, 255, 'float32', 11);
      const { diff, report } = await parity(wrapped.model, x);
      assert.ok(diff < 1e-5, `max |TF.js - ONNX Runtime| = ${diff}`);
      assert.equal(report.keptBatchNorms, 0, 'every BatchNorm folds into a conv or linear layer');
      assert.equal(report.opCounts.BatchNormalization, undefined);
      wrapped.dispose();
      fm.dispose();
      x.dispose();
    });
  }
});
