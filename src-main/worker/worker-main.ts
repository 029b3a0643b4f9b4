/**
 * The engine worker: a separate process (Node child process, or Electron utilityProcess) that does
 * the heavy work (decoding, training) so the process that talks to the UI never blocks. Jobs arrive
 * as messages; each gets an AbortController so cancel stops it within a batch.
 */
import { selectBackend } from '../engine/backend.js';
import { scanDataset } from '../engine/data/dataset.js';
import { runTraining } from '../engine/train/run-training.js';
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
