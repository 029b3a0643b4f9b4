/**
 * The model card written beside an exported model: `metadata.json` (for programs: the predictor reads
 * labels, input size and layout from it) and `README.md` (for people: what the model is, how it was
 * trained and how well it does, and code that loads it).
 */
import { fastaiHeadLayout } from '../models/fastai-head.js';
import type { SplitSpec } from '../data/split.js';
import type { Normalization } from '../data/normalize.js';
import type { EpochRow, ValidationResult } from '../train/learner.js';
import type { RunFolder } from '../predict/run-model.js';
import { renderReadme } from './readme.js';

export const MODEL_CARD_FILE = 'metadata.json';
export const README_FILE = 'README.md';
export const MODEL_CARD_FORMAT = 'finetune-studio-model';
export const MODEL_CARD_VERSION = 1;

export type ExportFormat = 'tfjs' | 'onnx';

/** The defaults `runTraining` and `fineTunePhases` apply when a run does not set them. */
const DEFAULT_BASE_LR = 2e-3;
const DEFAULT_SEED = 42;

/** Largest |p_exported - p_app| allowed on any class of any verification image. */
export const PARITY_TOLERANCE = 1e-4;

export interface ModelCard {
  format: typeof MODEL_CARD_FORMAT;
  version: typeof MODEL_CARD_VERSION;
  modelFormat: ExportFormat;
  /** Relative to the folder. tfjs: model.json + weight shards; onnx: model.onnx. */
  files: { model: string; weights: string[] };
  /** Class names in the order of the model's output. */
  labels: string[];
  input: {
    name: string;
    layout: 'NHWC';
    /** 'batch' is any number of images. */
    shape: ['batch', number, number, 3];
    dtype: 'float32';
    size: number;
    channels: 'RGB';
    /** Pixel values as decoded (0..255, not divided by 255): normalisation happens inside the model. */
    range: [0, 255];
  };
  output: { name: string; shape: ['batch', number]; meaning: string };
  preprocessing: {
    /** What a consumer does before calling the model. */
    steps: string[];
    /** What the model does itself (documentation only: already inside the exported graph). */
    normalization: Normalization & { formula: string; inModel: true };
  };
  architecture: {
    arch: string;
    title: string;
    family: string;
    body: string;
    head: { features: number; sizes: number[]; dropouts: number[]; batchNorms: boolean[]; pooling: string };
    parameters: number;
    onnx?: { opset: number; irVersion: number; opCounts: Record<string, number>; foldedBatchNorms: number; foldedPads: number; keptBatchNorms: number };
  };
  /** `weights`: the file the run started from; `source`: where the catalogue gets those weights. */
  pretrained: { weights: string; source: string; homepage: string; licence: string };
  dataset: {
    root: string;
    labelRule: string;
    found: number;
    train: number;
    valid: number;
    skipped: number;
    classes: { name: string; count: number; train: number; valid: number }[];
  };
  split: SplitSpec;
  training: {
    status: 'completed' | 'cancelled';
    epochs: number;
    freezeEpochs: number;
    /** fastai's `fine_tune(base_lr)` (its default 2e-3 when the run did not set one). */
    baseLr: number;
    batchSize: number;
    microBatch: number;
    /** The model seed (head initialisation, dropout, batch order); runTraining's default is 42. */
    seed: number;
    backend: string;
    seconds: number;
    startedAt: string;
    finishedAt: string;
    lrFindSuggestions?: Record<string, number>;
  };
  epochTable: EpochRow[];
  validation?: ValidationResult & { images: number };
  verification: {
    runtime: string;
    reference: string;
    images: string[];
    maxAbsDiff: number;
    tolerance: number;
  };
  app: { name: 'finetune-studio'; version: string; trainedWithVersion: string };
  exportedAt: string;
  run: { dir: string };
}

export interface ModelCardInput {
  run: RunFolder;
  format: ExportFormat;
  files: ModelCard['files'];
  parameters: number;
  numFeatures: number;
  onnx?: ModelCard['architecture']['onnx'];
  verification: ModelCard['verification'];
  appVersion: string;
  exportedAt: Date;
  inputName: string;
  outputName: string;
}

export function buildModelCard(o: ModelCardInput): ModelCard {
  const { record, meta, entry } = o.run;
  const size = meta.size;
  const head = fastaiHeadLayout({ numFeatures: o.numFeatures, numClasses: meta.vocab.length });
  const n = meta.preprocessing;
  const suggestions = record.lrFind?.suggestions;
  return {
    format: MODEL_CARD_FORMAT,
    version: MODEL_CARD_VERSION,
    modelFormat: o.format,
    files: o.files,
    labels: meta.vocab,
    input: { name: o.inputName, layout: 'NHWC', shape: ['batch', size, size, 3], dtype: 'float32', size, channels: 'RGB', range: [0, 255] },
    output: { name: o.outputName, shape: ['batch', meta.vocab.length], meaning: 'softmax probabilities, one per label, in the order of "labels"; each row sums to 1' },
    preprocessing: {
      steps: [
        'decode the image to 8-bit sRGB RGB, applying its EXIF orientation and flattening any transparency onto white',
        `crop the centred square: side = int(min(w/${size}, h/${size}) * ${size}), left = int(0.5 * (w - side)), top = int(0.5 * (h - side)) (fastai's validation Resize(${size}))`,
        `resize that square to ${size}x${size} with bilinear interpolation`,
        `pass the pixels as float32 values 0..255, layout [batch, ${size}, ${size}, 3] (NHWC, RGB)`,
      ],
      normalization: { mean: n.mean, std: n.std, formula: '(x / 255 - mean) / std, per channel', inModel: true },
    },
    architecture: {
      arch: entry.arch,
      title: entry.title,
      family: entry.family,
      body: entry.family === 'resnet' ? 'torchvision ResNet, cut before its average pool' : `Keras MobileNet, cut at ${entry.featureLayer}`,
      head: { features: o.numFeatures, ...head, pooling: "fastai's AdaptiveConcatPool2d (max and average, concatenated)" },
      parameters: o.parameters,
      ...(o.onnx ? { onnx: o.onnx } : {}),
    },
    pretrained: { weights: record.model.weights, source: entry.weights.url, homepage: entry.weights.homepage, licence: entry.licence },
    dataset: {
      root: record.dataset.root,
      labelRule: record.dataset.rule,
      found: record.dataset.found,
      train: record.dataset.train,
      valid: record.dataset.valid,
      skipped: record.dataset.skipped.length,
      classes: record.dataset.classes.map((c) => ({ name: c.name, count: c.count, train: c.train, valid: c.valid })),
    },
    split: record.config.dataset.split,
    training: {
      status: record.status,
      epochs: record.config.epochs ?? 1,
      freezeEpochs: record.config.freezeEpochs ?? 1,
      baseLr: record.config.baseLr ?? DEFAULT_BASE_LR,
      batchSize: record.model.batchSize,
      microBatch: record.model.microBatch,
      seed: record.config.seed ?? DEFAULT_SEED,
      backend: record.backend.label,
      seconds: record.seconds,
      startedAt: record.startedAt,
      finishedAt: record.finishedAt,
      ...(suggestions ? { lrFindSuggestions: Object.fromEntries(Object.entries(suggestions).map(([k, s]) => [k, s.lr])) } : {}),
    },
    epochTable: record.epochs,
    ...(record.validation ? { validation: { ...record.validation, images: record.dataset.valid } } : {}),
    verification: o.verification,
    app: { name: 'finetune-studio', version: o.appVersion, trainedWithVersion: record.app.version },
    exportedAt: o.exportedAt.toISOString(),
    run: { dir: o.run.dir },
  };
}

export function modelCardReadme(card: ModelCard): string {
  return renderReadme(card);
}
