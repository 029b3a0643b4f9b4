/**
 * The trained model as a self-contained TF.js LayersModel: RGB pixels 0..255 in, class probabilities
 * out, built only from stock Keras layers so plain `@tensorflow/tfjs` (browser or Node) loads it with
 * no custom-layer registration:
 *
 *   pixels [batch, S, S, 3] -> pixel_normalization -> <arch>_fastai (body + fastai head) -> probabilities
 *
 * `pixel_normalization` is a 1x1 DepthwiseConv2D with bias: per channel `x * (1 / (255 std)) +
 * (-mean / std)`, one multiply-add, the same arithmetic as the app's `normalizePixels` (a Rescaling
 * layer only takes one scale for all channels). `probabilities` is a softmax Activation layer. The
 * trained network is embedded as it is, as a nested model.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Normalization } from '../data/normalize.js';
import type { FinetuneModel } from '../models/create-model.js';
import type { NamedWeight } from './keras-to-onnx.js';

export const INPUT_NAME = 'pixels';
export const OUTPUT_NAME = 'probabilities';
export const TFJS_MODEL_FILE = 'model.json';
export const TFJS_WEIGHTS_FILE = 'weights.bin';

/** Wraps a trained model so it takes raw pixels and returns probabilities. Shares its weights (dispose only the wrapper's own). */
export function buildExportModel(fm: FinetuneModel, size: number, normalization: Normalization): { model: tf.LayersModel; dispose: () => void } {
  const input = tf.input({ shape: [size, size, 3], name: INPUT_NAME, dtype: 'float32' });
  const normalize = tf.layers.depthwiseConv2d({ name: 'pixel_normalization', kernelSize: 1, depthMultiplier: 1, useBias: true, trainable: false });
  const normalized = normalize.apply(input) as tf.SymbolicTensor;
  const scores = fm.model.apply(normalized) as tf.SymbolicTensor;
  const probabilities = tf.layers.activation({ activation: 'softmax', name: OUTPUT_NAME }).apply(scores) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probabilities, name: 'finetune_studio_classifier' });
  const scale = normalization.std.map((s) => 1 / (255 * s));
  const shift = normalization.mean.map((m, c) => -m / normalization.std[c]);
  const kernel = tf.tensor4d(scale, [1, 1, 3, 1]);
  const bias = tf.tensor1d(shift);
  normalize.setWeights([kernel, bias]);
  tf.dispose([kernel, bias]);
  return { model, dispose: () => normalize.dispose() };
}

/** model.json + weights exactly as `model.save` would produce them, captured in memory. */
export async function captureArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save({
    save: async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  if (!captured?.weightData || !captured.weightSpecs) throw new Error('TF.js produced no weights when saving the model');
  return captured;
}

function weightBytes(artifacts: tf.io.ModelArtifacts): ArrayBuffer {
  return tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
}

/** The artifacts' weights by name, as float32 arrays. */
export function namedWeights(artifacts: tf.io.ModelArtifacts): Map<string, NamedWeight> {
  const buffer = weightBytes(artifacts);
  const out = new Map<string, NamedWeight>();
  let offset = 0;
  for (const spec of artifacts.weightSpecs!) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype !== 'float32' || spec.quantization) throw new Error(`weight ${spec.name} is ${spec.quantization ? 'quantized' : spec.dtype}; only float32 weights are exported`);
    if (out.has(spec.name)) throw new Error(`two weights are named ${spec.name}; the model's layer names are not unique`);
    out.set(spec.name, { shape: spec.shape, values: new Float32Array(buffer, offset, n) });
    offset += n * 4;
  }
  if (offset !== buffer.byteLength) throw new Error(`the weight specs describe ${offset} bytes but TF.js saved ${buffer.byteLength}`);
  return out;
}

/** Writes model.json and weights.bin into `dir` (which must exist); returns the file names. */
export async function writeTfjsModel(artifacts: tf.io.ModelArtifacts, dir: string, extra: { convertedBy: string; userDefinedMetadata: Record<string, unknown> }): Promise<string[]> {
  const weights = new Uint8Array(weightBytes(artifacts));
  const modelJson = {
    format: 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: extra.convertedBy,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [TFJS_WEIGHTS_FILE], weights: artifacts.weightSpecs }],
    userDefinedMetadata: extra.userDefinedMetadata,
  };
  await fs.writeFile(path.join(dir, TFJS_WEIGHTS_FILE), weights);
  await fs.writeFile(path.join(dir, TFJS_MODEL_FILE), JSON.stringify(modelJson));
  return [TFJS_MODEL_FILE, TFJS_WEIGHTS_FILE];
}
