/**
 * One training run end to end, as the lesson does it: label and split the folder, decode once,
 * build `vision_learner(dls, arch)`, optionally `lr_find`, `fine_tune(epochs)`, interpret, and
 * save the model plus a JSON record of the run. A checkpoint after every epoch lets a cancelled or
 * crashed run resume where it stopped (`resume: true`). Used by the worker, the CLI and the UI.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { selectBackend, type BackendChoice } from '../backend.js';
import { DataLoader, DEFAULT_BATCH_SIZE } from '../data/data-loader.js';
import { hasErrors, scanDataset, type ClassSummary, type DatasetOptions, type Problem, type SkippedFile } from '../data/dataset.js';
import { ImageCache } from '../data/image-cache.js';
import { prepareDataset, type PreparedDataset, type PrepareProgress } from '../data/prepare.js';
import { createModel, type FinetuneModel, type WeightsChoice } from '../models/create-model.js';
import type { WeightStoreOptions } from '../models/weight-store.js';
import { loadCheckpoint, readCheckpointMeta, saveCheckpoint } from './checkpoint.js';
import { CancelledError, imageNetwork, Learner, type EpochRow, type LrFindResult, type Prediction, type TrainEvent, type ValidationResult } from './learner.js';
import { trainHeadOnFeatures, type FeatureProgress } from './quick.js';
import { fineTunePhases } from './schedule.js';
import { withSeededMathRandom } from './seeded-random.js';

export interface TrainConfig {
  dataset: DatasetOptions;
  arch: string;
  /** 'imagenet' (catalogue: cache, mirror or download), or a local weights file/folder. */
  weights?: WeightsChoice;
  size?: number;
  epochs?: number;
  freezeEpochs?: number;
  baseLr?: number;
  /** Default: fastai's 64, lowered for tiny datasets (see chooseBatchSize). */
  batchSize?: number;
  /** Images per forward pass; larger batches accumulate gradients. Default: chosen for the backend. */
  microBatch?: number;
  lrFind?: boolean;
  /**
   * `fastai`: fine_tune exactly as fastai (frozen epochs, then unfrozen). `quick`: train the head on
   * cached body features for `quickEpochs` epochs, then `epochs` unfrozen epochs (0: none).
   */
  mode?: 'fastai' | 'quick';
  quickEpochs?: number;
  /** Model seed (head initialisation, dropout). The split has its own seed in `dataset`. */
  seed?: number;
  outDir: string;
  cacheDir: string;
  maxPixels?: number;
  /** Continue from `outDir/checkpoint` if a compatible one is there. */
  resume?: boolean;
  store?: WeightStoreOptions;
}

export type RunEvent =
  | { type: 'stage'; stage: 'backend' | 'scan' | 'prepare' | 'model' | 'features' | 'lr-find' | 'train' | 'interpret' | 'save'; message: string }
  | ({ type: 'prepare' } & PrepareProgress)
  | ({ type: 'features' } & FeatureProgress)
  | { type: 'note'; message: string }
  | TrainEvent;

export interface TopLoss extends Prediction {
  actualLabel: string;
  predictedLabel: string;
}

export interface RunRecord {
  /** `cancelled`: stopped by the user; the model holds the weights after the last completed batch. */
  status: 'completed' | 'cancelled';
  app: { name: 'finetune-studio'; version: string };
  startedAt: string;
  finishedAt: string;
  seconds: number;
  backend: { name: string; label: string };
  config: Omit<TrainConfig, 'store'>;
  dataset: { root: string; rule: string; found: number; train: number; valid: number; classes: ClassSummary[]; skipped: SkippedFile[]; problems: Problem[] };
  vocab: string[];
  model: { arch: string; inputSize: number; weights: string; batchSize: number; microBatch: number };
  lrFind?: LrFindResult;
  epochs: EpochRow[];
  /** Absent when cancelled before interpretation. */
  validation?: ValidationResult;
  topLosses: TopLoss[];
  resumedFrom?: { phase: number; epoch: number };
}

interface CheckpointMeta {
  /** Quick mode: the head has been trained on features (the fine-tune phases follow). */
  quickDone?: boolean;
  arch: string;
  vocab: string[];
  size: number;
  /** Phase index in fine_tune's phases, and epochs completed within it. */
  phase: number;
  epoch: number;
  epochsSeen: number;
  rows: EpochRow[];
  configKey: string;
}

export const MODEL_DIR = 'model';
/** Head-only epochs cost milliseconds on cached features, so quick mode can afford several. */
export const DEFAULT_QUICK_EPOCHS = 8;
const CHECKPOINT_DIR = 'checkpoint';
const TOP_LOSSES_KEPT = 25;

/** Micro-batch that keeps the WebAssembly heap (4 GiB, never shrinks) safe; native backends take the whole batch. */
export function defaultMicroBatch(backend: string, size: number, batchSize: number): number {
  if (backend !== 'wasm' && backend !== 'cpu') return batchSize;
  return Math.max(1, Math.min(batchSize, Math.floor(16 * (224 / size) ** 2)));
}

/**
 * The batch size for a run: the request (default fastai's 64), lowered only when the training set
 * cannot fill two batches (the last partial batch is dropped, so a larger one would train on
 * almost nothing), to the largest power of two that gives at least two steps.
 * Lowering it further for small sets was measured to hurt: on the 780-image Pets sample,
 * MobileNetV2-0.35 fine_tune(1) reached 3.1% error at batch 64 and 4.6% at batch 16.
 */
export function chooseBatchSize(requested: number | undefined, trainImages: number): number {
  const bs = requested ?? DEFAULT_BATCH_SIZE;
  if (trainImages >= 2 * bs) return bs;
  return Math.min(bs, 2 ** Math.floor(Math.log2(Math.max(1, Math.floor(trainImages / 2)))));
}

async function appVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await fs.readFile(new URL('../../../package.json', import.meta.url), 'utf8'));
    return String(pkg.version);
  } catch {
    try {
      const pkg = JSON.parse(await fs.readFile(new URL('../../../../package.json', import.meta.url), 'utf8'));
      return String(pkg.version);
    } catch {
      return 'unknown';
    }
  }
}

export interface PreparedLearner {
  backend: BackendChoice;
  prepared: PreparedDataset;
  cache: ImageCache;
  model: FinetuneModel;
  batchSize: number;
  microBatch: number;
  /** `vision_learner(dls, arch)`: frozen, like fastai's, until told otherwise. */
  learner: Learner;
}

/**
 * What every run and a stand-alone lr_find share: backend, label and split, decode once,
 * `vision_learner(dls, arch)`. Data errors (empty folder, one class) are thrown with their message.
 * The caller disposes `learner` and `model`.
 */
export async function prepareLearner(config: TrainConfig, emit: (e: RunEvent) => void, signal?: AbortSignal): Promise<PreparedLearner> {
  const size = config.size ?? 224;
  const seed = config.seed ?? 42;
  const errorsOf = (problems: Problem[]) => problems.filter((p) => p.level === 'error').map((p) => p.message).join(' ');
  emit({ type: 'stage', stage: 'backend', message: 'Starting the compute backend' });
  const backend = await selectBackend();

  emit({ type: 'stage', stage: 'scan', message: `Labelling and splitting ${config.dataset.root}` });
  const scan = await scanDataset(config.dataset);
  if (hasErrors(scan)) throw new Error(errorsOf(scan.problems));

  emit({ type: 'stage', stage: 'prepare', message: `Decoding ${scan.train.length + scan.valid.length} images at ${size}px (once; cached)` });
  const cache = new ImageCache(path.join(config.cacheDir, 'images'));
  const prepared = await prepareDataset(scan, { cache, size, maxPixels: config.maxPixels, signal, onProgress: (p) => emit({ type: 'prepare', ...p }) });
  if (hasErrors(prepared.scan)) throw new Error(errorsOf(prepared.scan.problems));
  for (const s of prepared.scan.skipped) emit({ type: 'note', message: `Skipped ${s.relPath}: ${s.reason}` });

  emit({ type: 'stage', stage: 'model', message: `Building ${config.arch} with fastai's head for ${scan.vocab.length} classes` });
  const model = await createModel({ arch: config.arch, numClasses: scan.vocab.length, weights: config.weights ?? 'imagenet', inputSize: size, store: { ...config.store, signal }, seed, head: { seed } });
  const batchSize = chooseBatchSize(config.batchSize, prepared.train.length);
  if (batchSize !== (config.batchSize ?? DEFAULT_BATCH_SIZE)) {
    emit({ type: 'note', message: `Batch size ${batchSize} (not ${config.batchSize ?? DEFAULT_BATCH_SIZE}): ${prepared.train.length} training images give ${Math.floor(prepared.train.length / batchSize)} steps per epoch.` });
  }
  const microBatch = config.microBatch ?? defaultMicroBatch(backend.name, size, batchSize);
  const dlOptions = { cache, size, normalization: model.preprocessing, batchSize };
  const train = new DataLoader(prepared.train, { ...dlOptions, split: 'train', seed });
  const valid = new DataLoader(prepared.valid, { ...dlOptions, split: 'valid' });
  const learner = new Learner({ network: imageNetwork(model), train, valid, microBatch, onEvent: emit, signal });
  return { backend, prepared, cache, model, batchSize, microBatch, learner };
}

export async function runTraining(config: TrainConfig, options: { onEvent?: (e: RunEvent) => void; signal?: AbortSignal } = {}): Promise<RunRecord> {
  const emit = options.onEvent ?? (() => {});
  const started = new Date();
  const size = config.size ?? 224;
  const epochs = config.epochs ?? 1;
  const quick = config.mode === 'quick';
  // Quick mode's head training replaces fine_tune's frozen epochs.
  const freezeEpochs = quick ? 0 : (config.freezeEpochs ?? 1);
  const quickEpochs = quick ? (config.quickEpochs ?? DEFAULT_QUICK_EPOCHS) : 0;
  const counts = [epochs, freezeEpochs, quickEpochs];
  if (counts.some((n) => !Number.isInteger(n) || n < 0) || epochs + freezeEpochs + quickEpochs === 0) {
    throw new Error(`Epochs must be whole numbers (got ${epochs} unfrozen, ${freezeEpochs} frozen, ${quickEpochs} quick) and at least one epoch must run.`);
  }

  const { backend, prepared, cache, model, batchSize, microBatch, learner } = await prepareLearner(config, emit, options.signal);
  const scan = prepared.scan;

  const checkpointDir = path.join(config.outDir, CHECKPOINT_DIR);
  const configKey = JSON.stringify({ d: config.dataset, a: config.arch, s: size, e: epochs, f: freezeEpochs, q: quickEpochs, lr: config.baseLr, bs: batchSize, seed: config.seed });
  try {
    await fs.mkdir(config.outDir, { recursive: true });
    const phases = fineTunePhases({ epochs, freezeEpochs, baseLr: config.baseLr, nGroups: model.paramGroups.length });
    let rows: EpochRow[] = [];
    let resumeAt = { phase: 0, epoch: 0 };
    let resumedFrom: RunRecord['resumedFrom'];
    let quickDone = false;
    if (config.resume) {
      const meta = (await readCheckpointMeta<CheckpointMeta>(checkpointDir))?.meta;
      if (meta && meta.configKey === configKey) {
        const { optimizer } = await loadCheckpoint<CheckpointMeta>(checkpointDir, model.model.weights);
        learner.setFrozen(phases[meta.phase]?.frozen ?? false);
        learner.restoreOptimizerState(optimizer);
        learner.epochsSeen = meta.epochsSeen;
        rows = meta.rows;
        quickDone = meta.quickDone ?? false;
        resumeAt = { phase: meta.phase, epoch: meta.epoch };
        resumedFrom = resumeAt;
        emit({ type: 'note', message: `Resuming from the checkpoint after ${rows.length} epoch(s).` });
      } else if (meta) {
        emit({ type: 'note', message: 'The checkpoint in the output folder is from different settings; starting afresh.' });
      }
    }

    return await withSeededMathRandom(config.seed ?? 42, async () => {
    let lrFind: LrFindResult | undefined;
    if (config.lrFind && !resumedFrom) {
      emit({ type: 'stage', stage: 'lr-find', message: 'Finding a learning rate (lr_find)' });
      lrFind = await learner.lrFind();
    }

    let validation: ValidationResult | undefined;
    let topLosses: TopLoss[] = [];
    let status: RunRecord['status'] = 'completed';
    // Who interprets at the end: the image learner, or the feature learner when only the head trained.
    let interpreter: Learner = learner;
    const checkpoint = (meta: Omit<CheckpointMeta, 'arch' | 'vocab' | 'size' | 'rows' | 'configKey'>, opt: Learner) =>
      opt.optimizerState().then((state) => saveCheckpoint(checkpointDir, model.model.weights, { arch: config.arch, vocab: scan.vocab, size, rows, configKey, ...meta }, state));
    try {
      if (quick && !quickDone) {
        const headLearner = await trainHeadOnFeatures({
          model, prepared, cache, batchSize, microBatch, quickEpochs, config, emit, signal: options.signal,
          afterEpoch: async (row) => void rows.push(row),
        });
        interpreter = headLearner;
        await checkpoint({ quickDone: true, phase: 0, epoch: 0, epochsSeen: 0 }, learner);
      }
      if (phases.length > 0) {
        emit({ type: 'stage', stage: 'train', message: `fine_tune(${epochs}) with ${freezeEpochs} frozen epoch(s) on ${backend.label}` });
        if (interpreter !== learner) interpreter.dispose();
        interpreter = learner;
      }
      for (let p = resumeAt.phase; p < phases.length; p++) {
        const phase = phases[p];
        const startEpoch = p === resumeAt.phase ? resumeAt.epoch : 0;
        if (startEpoch >= phase.epochs) continue;
        if (!(p === resumeAt.phase && resumedFrom)) learner.setFrozen(phase.frozen);
        await learner.fitOneCycle(phase.epochs, phase.oneCycle, phase.name, {
          startEpoch,
          afterEpoch: async (row) => {
            rows.push(row);
            const done = row.epoch + 1;
            const next = done >= phase.epochs ? { phase: p + 1, epoch: 0 } : { phase: p, epoch: done };
            await checkpoint({ ...next, quickDone: quick, epochsSeen: learner.epochsSeen }, learner);
          },
        });
      }
      emit({ type: 'stage', stage: 'interpret', message: 'Interpreting the validation set' });
      const interpreted = await interpreter.topLosses();
      validation = interpreted.validation;
      topLosses = interpreted.predictions.slice(0, TOP_LOSSES_KEPT).map((p) => ({ ...p, actualLabel: scan.vocab[p.actual], predictedLabel: scan.vocab[p.predicted] }));
    } catch (err) {
      if (!(err instanceof CancelledError)) throw err;
      // Cancel keeps what was learned: the weights after the last completed batch are saved below.
      status = 'cancelled';
      emit({ type: 'note', message: `Cancelled. The model so far is saved; ${rows.length ? 'the checkpoint can resume the run (--resume)' : 'no epoch had finished, so there is nothing to resume'}.` });
    }

    emit({ type: 'stage', stage: 'save', message: `Saving the model to ${config.outDir}` });
    await saveCheckpoint(path.join(config.outDir, MODEL_DIR), model.model.weights, { arch: config.arch, vocab: scan.vocab, size, preprocessing: model.preprocessing });
    const { store: _store, ...recordedConfig } = config;
    const finished = new Date();
    const record: RunRecord = {
      status,
      app: { name: 'finetune-studio', version: await appVersion() },
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      seconds: (finished.getTime() - started.getTime()) / 1000,
      backend: { name: backend.name, label: backend.label },
      config: recordedConfig,
      dataset: {
        root: prepared.scan.root,
        rule: prepared.scan.ruleTitle,
        found: prepared.scan.found,
        train: prepared.train.length,
        valid: prepared.valid.length,
        classes: prepared.scan.classes,
        skipped: prepared.scan.skipped,
        problems: prepared.scan.problems,
      },
      vocab: scan.vocab,
      model: { arch: config.arch, inputSize: size, weights: 'path' in model.weights ? String(model.weights.path) : model.weights.source, batchSize, microBatch },
      ...(lrFind ? { lrFind } : {}),
      epochs: rows,
      ...(validation ? { validation } : {}),
      topLosses,
      ...(resumedFrom ? { resumedFrom } : {}),
    };
    await fs.writeFile(path.join(config.outDir, 'run.json'), JSON.stringify(record, null, 2));
    if (status === 'completed') await fs.rm(checkpointDir, { recursive: true, force: true });
    return record;
    });
  } finally {
    learner.dispose();
    model.dispose();
  }
}
