/**
 * The messages between the process that owns the UI (Electron main, the web host, the CLI) and
 * the engine worker process. Every long job is a request with an id; the worker answers with
 * progress events, then exactly one result or error. Cancel names the job's id.
 */
import type { DatasetOptions, DatasetScan } from '../engine/data/dataset.js';
import type { RunEvent, RunRecord, TrainConfig } from '../engine/train/run-training.js';
import type { BackendChoice } from '../engine/backend.js';

export type Job =
  | { type: 'backend' }
  | { type: 'scan'; options: DatasetOptions }
  | { type: 'train'; config: TrainConfig };

export interface JobResults {
  backend: BackendChoice;
  scan: DatasetScan;
  train: RunRecord;
}

export interface JobEvents {
  backend: never;
  scan: never;
  train: RunEvent;
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
