/**
 * The engine worker: a separate process (Node child process, or Electron utilityProcess) that does
 * the heavy work (decoding, training, downloads, prediction) so the process that talks to the UI
 * never blocks. Jobs arrive as messages; each gets an AbortController so cancel stops it within a
 * batch (training) or an image (decoding, prediction).
 */
import path from 'node:path';
import { selectBackend } from '../engine/backend.js';
import { scanDataset } from '../engine/data/dataset.js';
import { runTraining } from '../engine/train/run-training.js';
import { getDatasetFolder, listDatasets } from './jobs/datasets.js';
import { exportModel } from './jobs/export.js';
import { fileThumbnail } from './jobs/images.js';
import { findLearningRate } from './jobs/lr-find.js';
import { getWeights, listModels } from './jobs/models.js';
import { predictImages } from './jobs/predict.js';
import { previewBatch } from './jobs/preview.js';
import type { FromWorker, Job, ToWorker } from './protocol.js';

interface Port {
  onMessage(handler: (message: ToWorker) => void): void;
  post(message: FromWorker): void;
}

/** Electron's utilityProcess exposes `process.parentPort`; a Node child process has `process.send`. */
function connect(): Port {
  const parentPort = (process as unknown as { parentPort?: { on(e: 'message', h: (ev: { data: ToWorker }) => void): void; postMessage(m: FromWorker): void } }).parentPort;
  if (parentPort) return { onMessage: (h) => parentPort.on('message', (ev) => h(ev.data)), post: (m) => parentPort.postMessage(m) };
  if (process.send) {
    const send = process.send.bind(process);
    return { onMessage: (h) => process.on('message', (m) => h(m as ToWorker)), post: (m) => send(m) };
  }
  throw new Error('The engine worker must be started by Finetune Studio (no parent process channel).');
}

async function runJob(job: Job, emit: (event: unknown) => void, signal: AbortSignal): Promise<unknown> {
  switch (job.type) {
    case 'backend':
      return selectBackend();
    case 'scan':
      return scanDataset(job.options);
    case 'train':
      await selectBackend();
      return runTraining(job.config, { onEvent: emit, signal });
    case 'datasets-list':
      return listDatasets(job.cacheDir);
    case 'dataset-get':
      return getDatasetFolder(job.id, job.cacheDir, emit, signal);
    case 'preview':
      return previewBatch(job, emit, signal);
    case 'models-list':
      return listModels(job.cacheDir);
    case 'weights-get':
      return getWeights(job.arch, job.cacheDir, emit, signal);
    case 'lr-find':
      return findLearningRate(job.config, emit, signal);
    case 'thumbnails':
      return Promise.all(job.files.map((file) => fileThumbnail(file, job.size).then((src) => ({ file, src }), (err: Error) => ({ file, error: err.message }))));
    case 'predict':
      return predictImages(path.resolve(job.runDir), job.files, emit, signal);
    case 'export':
      return exportModel(job, emit, signal);
  }
}

const port = connect();
const running = new Map<number, AbortController>();

port.onMessage((message) => {
  if (message.kind === 'cancel') {
    running.get(message.id)?.abort();
    return;
  }
  const { id, job } = message;
  const controller = new AbortController();
  running.set(id, controller);
  runJob(job, (event) => port.post({ kind: 'event', id, event }), controller.signal).then(
    (result) => port.post({ kind: 'result', id, result }),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      port.post({ kind: 'error', id, error: { name: e.name, message: e.message, stack: e.stack } });
    },
  ).finally(() => running.delete(id));
});
