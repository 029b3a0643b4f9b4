/**
 * Classifies images with a finished run's model, through the engine's predictor
 * (engine/predict/predict.ts: `openPredictor(dir)`), and adds a thumbnail of each image. The last
 * predictor stays open, so dropping image after image on the Test step does not reload the model.
 */
import { openPredictor, type Predictor } from '../../engine/predict/predict.js';
import type { PredictJobItem } from '../protocol.js';
import { fileThumbnail } from './images.js';

let open: { dir: string; predictor: Promise<Predictor> } | undefined;

async function predictorFor(dir: string): Promise<Predictor> {
  if (open?.dir === dir) return open.predictor;
  if (open) (await open.predictor.catch(() => undefined))?.dispose();
  const predictor = openPredictor(dir);
  open = { dir, predictor };
  predictor.catch(() => {
    if (open?.predictor === predictor) open = undefined;
  });
  return predictor;
}

const THUMB = 192;
/** Images per predictor call: keeps progress moving and cancel responsive for big drops. */
const CHUNK = 8;

export async function predictImages(runDir: string, files: string[], emit: (p: { done: number; total: number }) => void, signal: AbortSignal): Promise<PredictJobItem[]> {
  const predictor = await predictorFor(runDir);
  const out: PredictJobItem[] = [];
  emit({ done: 0, total: files.length });
  for (let i = 0; i < files.length; i += CHUNK) {
    if (signal.aborted) {
      const err = new Error('Testing the images was cancelled.');
      err.name = 'AbortError';
      throw err;
    }
    const chunk = files.slice(i, i + CHUNK);
    const predictions = await predictor.predict(chunk);
    for (const [k, p] of predictions.entries()) {
      const file = chunk[k];
      const src = await fileThumbnail(file, THUMB).catch(() => undefined);
      if (p.error) out.push({ file, probabilities: [], error: p.error, ...(src ? { src } : {}) });
      else out.push({ file, label: p.label, probability: p.probability, probabilities: p.probabilities, ...(src ? { src } : {}) });
    }
    emit({ done: Math.min(files.length, i + CHUNK), total: files.length });
  }
  return out;
}
