/**
 * Predictions on image files from any model folder the app makes: a training run, or an exported
 * TF.js or ONNX model. Every format sees the same pixels (fastai's validation crop, see images.ts)
 * and returns the same thing, so the UI's Test step and `finetune-studio predict` work with any.
 * A file that cannot be decoded gets an `error` instead of stopping the others.
 */
import { selectBackend } from '../backend.js';
import { decodeForPrediction } from './images.js';
import { inspectModelFolder } from './model-folder.js';
import { loadRunModel } from './run-model.js';
import { inAppScorer, onnxScorer, tfjsScorer, type Scorer } from './scorers.js';

export interface ClassProbability {
  label: string;
  probability: number;
}

export interface ImagePrediction {
  file: string;
  /** Most probable label ('' when the file could not be decoded). */
  label: string;
  probability: number;
  /** Every label, most probable first. */
  probabilities: ClassProbability[];
  /** Why the file could not be used; the other fields are then empty. */
  error?: string;
}

export interface Predictor {
  labels: string[];
  inputSize: number;
  format: 'run' | 'tfjs' | 'onnx';
  /** Absolute path of the folder the model came from. */
  dir: string;
  predict(files: string[]): Promise<ImagePrediction[]>;
  dispose(): void;
}

/** Images per forward pass: large enough to amortise the call, small enough for a 224px ResNet-50. */
const BATCH = 16;

/** Opens the scorer for a folder (see model-folder.ts for what is recognised). */
export async function openScorer(dir: string, options: { signal?: AbortSignal } = {}): Promise<{ scorer: Scorer; dir: string }> {
  const folder = await inspectModelFolder(dir);
  if (folder.kind !== 'run') {
    const scorer = folder.kind === 'tfjs' ? await tfjsScorer(folder.dir, folder.card) : await onnxScorer(folder.dir, folder.card);
    return { scorer, dir: folder.dir };
  }
  await selectBackend();
  const { meta } = folder.run;
  const model = await loadRunModel(folder.run, options);
  const scorer = inAppScorer(model, meta.vocab, meta.size, meta.preprocessing);
  const dispose = () => {
    scorer.dispose();
    model.dispose();
  };
  return { scorer: { ...scorer, dispose }, dir: folder.dir };
}

export function toPrediction(file: string, labels: string[], probs: Float32Array): ImagePrediction {
  const probabilities = labels.map((label, i) => ({ label, probability: probs[i] })).sort((a, b) => b.probability - a.probability);
  return { file, label: probabilities[0].label, probability: probabilities[0].probability, probabilities };
}

/** Wraps a scorer with file decoding and batching. */
export function predictorFor(scorer: Scorer, dir: string): Predictor {
  let disposed = false;
  return {
    labels: scorer.labels,
    inputSize: scorer.inputSize,
    format: scorer.format,
    dir,
    async predict(files) {
      if (disposed) throw new Error('This predictor was disposed; open the model again.');
      const results: ImagePrediction[] = [];
      for (let start = 0; start < files.length; start += BATCH) {
        const chunk = files.slice(start, start + BATCH);
        // Decoding runs on libuv's thread pool: a batch decodes in parallel.
        const decoded = await Promise.all(chunk.map((f) => decodeForPrediction(f, scorer.inputSize)));
        const good = decoded.flatMap((d, i) => (d.ok ? [{ i, pixels: d.pixels }] : []));
        const probs = await scorer.score(good.map((g) => g.pixels));
        const byIndex = new Map(good.map((g, j) => [g.i, probs[j]]));
        chunk.forEach((file, i) => {
          const d = decoded[i];
          results.push(d.ok ? toPrediction(file, scorer.labels, byIndex.get(i)!) : { file, label: '', probability: 0, probabilities: [], error: d.error });
        });
      }
      return results;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      scorer.dispose();
    },
  };
}

/** dir: a training run folder (run.json + model/), or an exported tfjs or onnx folder (recognised by its metadata.json). */
export async function openPredictor(dir: string): Promise<Predictor> {
  const { scorer, dir: resolved } = await openScorer(dir);
  return predictorFor(scorer, resolved);
}
