/**
 * Scorers: decoded images (interleaved 8-bit RGB, size x size) in, class probabilities out, one per
 * model format. The in-app scorer runs the trained model the way validation does (the model's
 * normalisation, then softmax over the head's scores) and is the reference the exported formats are
 * held to; the TF.js and ONNX scorers run the exported files with their own runtimes.
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../backend.js';
import type { Normalization } from '../data/normalize.js';
import { normalizePixels, type FinetuneModel } from '../models/create-model.js';
import { inferenceModel, type InferenceModel } from '../models/inference-model.js';
import { loadLayersModelFromDisk } from '../models/layers-model-files.js';
import type { ModelCard } from '../export/model-card.js';

export type ModelFormat = 'run' | 'tfjs' | 'onnx';

export interface Scorer {
  format: ModelFormat;
  labels: string[];
  inputSize: number;
  /** One probability vector (in label order) per image. */
  score(images: Uint8Array[]): Promise<Float32Array[]>;
  dispose(): void;
}

/** Packs images into one [n, size, size, 3] float32 buffer (values 0..255). */
function packFloat(images: Uint8Array[], size: number): Float32Array {
  const per = size * size * 3;
  const out = new Float32Array(images.length * per);
  images.forEach((img, i) => {
    if (img.length !== per) throw new Error(`image ${i} has ${img.length} values, expected ${per} (${size}x${size} RGB)`);
    out.set(img, i * per);
  });
  return out;
}

function rows(flat: Float32Array, n: number): Float32Array[] {
  const k = flat.length / n;
  return Array.from({ length: n }, (_, i) => flat.slice(i * k, (i + 1) * k));
}

/**
 * The trained model in memory, with its BatchNorms folded for speed (inference-model.ts; the same
 * numbers as validation up to float rounding). Folds on first use; does not take ownership of
 * `model`, whose weights must not change while this scorer is in use.
 */
export function inAppScorer(model: FinetuneModel, labels: string[], size: number, normalization: Normalization): Scorer {
  let inference: Promise<InferenceModel> | undefined;
  let disposed = false;
  return {
    format: 'run',
    labels,
    inputSize: size,
    async score(images) {
      if (disposed) throw new Error('This scorer was disposed.');
      if (!images.length) return [];
      const net = await (inference ??= inferenceModel(model));
      const probs = tf.tidy(() => {
        const pixels = tf.tensor4d(packFloat(images, size), [images.length, size, size, 3]);
        const logits = net.model.predict(normalizePixels(pixels, normalization)) as tf.Tensor2D;
        return tf.softmax(logits);
      });
      const flat = (await probs.data()) as Float32Array;
      probs.dispose();
      return rows(flat, images.length);
    },
    dispose() {
      disposed = true;
      // A fold still running is freed when it finishes; one that failed has nothing to free.
      inference?.then((net) => net.dispose()).catch(() => undefined);
    },
  };
}

function mismatch(dir: string, what: string): Error {
  return new Error(`${path.join(dir, 'metadata.json')} does not match the model file: ${what}. The folder mixes files from different exports; export the run again.`);
}

export async function tfjsScorer(dir: string, card: ModelCard): Promise<Scorer> {
  await selectBackend();
  let model: tf.LayersModel;
  try {
    model = await loadLayersModelFromDisk(path.join(dir, card.files.model));
  } catch (err) {
    throw new Error(`The TF.js model in ${dir} does not load: ${(err as Error).message}. Export the run again.`);
  }
  const inShape = model.inputs[0].shape;
  const outShape = model.outputs[0].shape;
  const size = card.input.size;
  if (inShape.length !== 4 || inShape[1] !== size || inShape[2] !== size || inShape[3] !== 3) {
    model.dispose();
    throw mismatch(dir, `the model takes [${inShape.map(String)}], the card says ${size}x${size}x3`);
  }
  if (outShape.length !== 2 || outShape[1] !== card.labels.length) {
    model.dispose();
    throw mismatch(dir, `the model outputs [${outShape.map(String)}] for ${card.labels.length} labels`);
  }
  return {
    format: 'tfjs',
    labels: card.labels,
    inputSize: size,
    async score(images) {
      if (!images.length) return [];
      const probs = tf.tidy(() => model.predict(tf.tensor4d(packFloat(images, size), [images.length, size, size, 3])) as tf.Tensor);
      const flat = (await probs.data()) as Float32Array;
      probs.dispose();
      return rows(flat, images.length);
    },
    dispose() {
      model.dispose();
    },
  };
}

export async function onnxScorer(dir: string, card: ModelCard): Promise<Scorer> {
  // Loaded on demand: the native runtime is only needed for ONNX folders.
  const ort = await import('onnxruntime-node');
  const file = path.join(dir, card.files.model);
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>>;
  try {
    session = await ort.InferenceSession.create(file);
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new Error(`ONNX Runtime could not load ${file} (${msg}); the file is missing, damaged or not an ONNX model. Export the run again.`);
  }
  const size = card.input.size;
  const input = session.inputMetadata.find((m) => m.name === card.input.name);
  const output = session.outputMetadata.find((m) => m.name === card.output.name);
  const fail = (what: string) => {
    void session.release();
    return mismatch(dir, what);
  };
  if (!input || !output) throw fail(`the ONNX model's input/output are ${session.inputNames.join(', ')} / ${session.outputNames.join(', ')}, the card names ${card.input.name} / ${card.output.name}`);
  if (input.isTensor) {
    const s = input.shape;
    if (s.length !== 4 || s[1] !== size || s[2] !== size || s[3] !== 3) throw fail(`the ONNX input is [${s.map(String)}], the card says [batch, ${size}, ${size}, 3]`);
  }
  if (output.isTensor && output.shape[1] !== card.labels.length) throw fail(`the ONNX output is [${output.shape.map(String)}] for ${card.labels.length} labels`);
  return {
    format: 'onnx',
    labels: card.labels,
    inputSize: size,
    async score(images) {
      if (!images.length) return [];
      const feed = new ort.Tensor('float32', packFloat(images, size), [images.length, size, size, 3]);
      const result = await session.run({ [card.input.name]: feed });
      return rows(result[card.output.name].data as Float32Array, images.length);
    },
    dispose() {
      void session.release();
    },
  };
}
