/**
 * The messages between the process that owns the UI (Electron main, the web host, the CLI) and
 * the engine worker process. Every long job is a request with an id; the worker answers with
 * progress events, then exactly one result or error. Cancel names the job's id.
 *
 * Results are engine types (the CLI prints them); the app's dispatcher turns them into the API's
 * DTOs. Images travel as small JPEG data: URLs, made in the worker so no host decodes pixels.
 */
import type { BackendChoice } from '../engine/backend.js';
import type { DatasetOptions, DatasetScan } from '../engine/data/dataset.js';
import type { DatasetProgress } from '../engine/download/get-dataset.js';
import type { WeightsProgress } from '../engine/models/weight-store.js';
import type { LrFindResult } from '../engine/train/learner.js';
import type { RunEvent, RunRecord, TrainConfig } from '../engine/train/run-training.js';
import type { PrepareProgress } from '../engine/data/prepare.js';
import type { DatasetChoice, ExportFormat, ModelChoice } from '../api/contract.js';

export interface PreviewJobResult {
  scan: DatasetScan;
  size: number;
  epoch: number;
  train: { relPath: string; label: string; src: string }[];
  valid: { relPath: string; label: string; src: string }[];
}

export interface ThumbnailResult {
  file: string;
  src?: string;
  error?: string;
}

/** What predict/predict.ts's ImagePrediction carries, plus a thumbnail. */
export interface PredictJobItem {
  file: string;
  label?: string;
  probability?: number;
  probabilities: { label: string; probability: number }[];
  src?: string;
  error?: string;
}

export interface ExportJobResult {
  outDir: string;
  format: ExportFormat;
  files: { path: string; bytes: number }[];
}

export type Job =
  | { type: 'backend' }
  | { type: 'scan'; options: DatasetOptions }
  | { type: 'train'; config: TrainConfig }
  | { type: 'datasets-list'; cacheDir: string }
  | { type: 'dataset-get'; id: string; cacheDir: string }
  | { type: 'preview'; options: DatasetOptions; size: number; count: number; epoch: number; cacheDir: string }
  | { type: 'models-list'; cacheDir: string }
  | { type: 'weights-get'; arch: string; cacheDir: string }
  | { type: 'lr-find'; config: TrainConfig }
  | { type: 'thumbnails'; files: string[]; size: number }
  | { type: 'predict'; runDir: string; files: string[] }
  | { type: 'export'; runDir: string; format: ExportFormat; outDir: string };

export interface JobResults {
  backend: BackendChoice;
  scan: DatasetScan;
  train: RunRecord;
  'datasets-list': DatasetChoice[];
  'dataset-get': { folder: string };
  preview: PreviewJobResult;
  'models-list': ModelChoice[];
  'weights-get': { path: string };
  'lr-find': LrFindResult;
  thumbnails: ThumbnailResult[];
  predict: PredictJobItem[];
  export: ExportJobResult;
}

export interface JobEvents {
  backend: never;
  scan: never;
  train: RunEvent;
  'datasets-list': never;
  'dataset-get': DatasetProgress;
  preview: PrepareProgress;
  'models-list': never;
  'weights-get': WeightsProgress;
  'lr-find': RunEvent;
  thumbnails: never;
  predict: { done: number; total: number };
  export: { done: number; total: number; message?: string };
}

export type ToWorker = { kind: 'run'; id: number; job: Job } | { kind: 'cancel'; id: number };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export type FromWorker =
  | { kind: 'event'; id: number; event: unknown }
  | { kind: 'result'; id: number; result: unknown }
  | { kind: 'error'; id: number; error: SerializedError };
