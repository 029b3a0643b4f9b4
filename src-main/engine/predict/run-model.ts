/**
 * A training run folder (what `runTraining` writes: `run.json` + `model/`) read back as a usable
 * model: the architecture rebuilt with `createModel`, then the trained weights loaded over it.
 *
 * The saved checkpoint's own metadata (arch, vocab, size, preprocessing) is the authority on what the
 * weights are; run.json supplies the rest (dataset, training settings, metrics) and is cross-checked.
 * MobileNets exist here only as pretrained Keras files, so rebuilding one needs the model.json it was
 * trained from (run.json records its path); ResNets are built from code and need no file.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Normalization } from '../data/normalize.js';
import { catalogueEntry, type CatalogueEntry } from '../models/catalogue.js';
import { createModel, type FinetuneModel, type WeightsChoice } from '../models/create-model.js';
import { WEIGHTS_DIR_ENV } from '../models/weight-store.js';
import { loadCheckpoint, readCheckpointMeta } from '../train/checkpoint.js';
import { MODEL_DIR, type RunRecord } from '../train/run-training.js';

export const RUN_RECORD = 'run.json';

/** What `runTraining` stores beside the weights in `model/checkpoint.json`. */
export interface SavedModelMeta {
  arch: string;
  vocab: string[];
  size: number;
  preprocessing: Normalization;
}

export interface RunFolder {
  dir: string;
  record: RunRecord;
  meta: SavedModelMeta;
  entry: CatalogueEntry;
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** Reads and checks run.json and the saved model's metadata; throws messages that say what to do. */
export async function readRunFolder(dir: string): Promise<RunFolder> {
  const abs = path.resolve(dir);
  const recordPath = path.join(abs, RUN_RECORD);
  let text: string;
  try {
    text = await fs.readFile(recordPath, 'utf8');
  } catch {
    throw new Error(`${abs} is not a training run folder: it has no ${RUN_RECORD}. Pick the folder that \`finetune-studio train --out\` (or the app) wrote.`);
  }
  let record: RunRecord;
  try {
    record = JSON.parse(text) as RunRecord;
  } catch (err) {
    throw new Error(`${recordPath} is not valid JSON (${(err as Error).message}); the run record is damaged. Train again, or restore the file.`);
  }
  if (!record || record.app?.name !== 'finetune-studio' || !Array.isArray(record.vocab) || typeof record.model?.arch !== 'string') {
    throw new Error(`${recordPath} is not a Finetune Studio run record (no app name, vocab or model architecture).`);
  }
  const modelDir = path.join(abs, MODEL_DIR);
  const manifest = await readCheckpointMeta<SavedModelMeta>(modelDir);
  if (!manifest) {
    throw new Error(`${abs} has a run record but no saved model in ${modelDir} (missing or damaged checkpoint.json); the run did not finish saving. Train again, or resume it with --resume.`);
  }
  const meta = manifest.meta;
  if (!meta || typeof meta.arch !== 'string' || !Array.isArray(meta.vocab) || typeof meta.size !== 'number' || !meta.preprocessing) {
    throw new Error(`${path.join(modelDir, 'checkpoint.json')} lacks the model's architecture, labels, size or preprocessing; it was not written by a training run.`);
  }
  if (meta.arch !== record.model.arch || meta.vocab.join('\n') !== record.vocab.join('\n')) {
    throw new Error(`${recordPath} and ${modelDir} disagree (architecture ${record.model.arch} vs ${meta.arch}, or the labels); the folder mixes two runs. Train again into an empty folder.`);
  }
  return { dir: abs, record, meta, entry: catalogueEntry(meta.arch) };
}

/** The weights to rebuild the architecture from, in the order they are tried. */
async function rebuildChoices(run: RunFolder): Promise<WeightsChoice[]> {
  // The checkpoint overwrites every weight, so a ResNet needs no pretrained file at all.
  if (run.entry.family === 'resnet') return ['random'];
  const choices: WeightsChoice[] = [];
  const recorded = run.record.model.weights;
  if (recorded && path.isAbsolute(recorded) && (await exists(recorded))) choices.push({ path: recorded });
  const configured = run.record.config?.weights;
  if (configured && typeof configured === 'object' && (await exists(configured.path))) choices.push({ path: configured.path });
  choices.push('imagenet');
  return choices;
}

/** Rebuilds the run's model and loads its trained weights. The caller disposes it. */
export async function loadRunModel(run: RunFolder, options: { signal?: AbortSignal } = {}): Promise<FinetuneModel> {
  const choices = await rebuildChoices(run);
  let model: FinetuneModel | undefined;
  let lastError: Error | undefined;
  for (const weights of choices) {
    try {
      model = await createModel({ arch: run.meta.arch, numClasses: run.meta.vocab.length, weights, inputSize: run.meta.size, store: { signal: options.signal } });
      break;
    } catch (err) {
      lastError = err as Error;
    }
  }
  if (!model) {
    throw new Error(
      `Could not rebuild ${run.meta.arch}: its architecture comes from the pretrained model.json, which was at ${run.record.model.weights} when the run trained. ` +
        `Put that folder back, or point ${WEIGHTS_DIR_ENV} at a folder holding ${run.entry.weights.id}/model.json. (${lastError?.message})`,
    );
  }
  try {
    await loadCheckpoint(path.join(run.dir, MODEL_DIR), model.model.weights);
  } catch (err) {
    model.dispose();
    throw new Error(`The saved model in ${path.join(run.dir, MODEL_DIR)} does not load: ${(err as Error).message}`);
  }
  return model;
}
