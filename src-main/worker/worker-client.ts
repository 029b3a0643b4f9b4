/**
 * The parent side of the engine worker: starts the worker process, sends jobs, routes progress
 * events to each job's listener and settles its promise with the one result or error. If the
 * worker dies, every pending job fails with a message saying so (and the next job starts a new
 * worker), so a crash in the engine never takes the UI down with it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FromWorker, Job, JobEvents, JobResults, SerializedError, ToWorker } from './protocol.js';

/** A started worker process, however it was started (Node fork, Electron utilityProcess). */
export interface WorkerHandle {
  send(message: ToWorker): void;
  onMessage(handler: (message: FromWorker) => void): void;
  onExit(handler: (code: number | null) => void): void;
  kill(): void;
}

export type WorkerLauncher = (entry: string, execArgv: string[]) => WorkerHandle;

/** Where the worker's entry file is: the `.ts` source under tsx in development, the built `.js` otherwise. */
export function workerEntry(): { entry: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const dev = here.endsWith('.ts');
  return { entry: path.join(path.dirname(here), dev ? 'worker-main.ts' : 'worker-main.js'), execArgv: dev ? ['--import', 'tsx'] : [] };
}

export const forkLauncher: WorkerLauncher = (entry, execArgv) => {
  // 'advanced' serialization (structured clone) carries typed arrays, e.g. preview pixels.
  const child: ChildProcess = fork(entry, [], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    send: (m) => child.send(m),
    onMessage: (h) => child.on('message', (m) => h(m as FromWorker)),
    onExit: (h) => child.on('exit', (code) => h(code)),
    kill: () => child.kill(),
  };
};

export class JobError extends Error {
  constructor(serialized: SerializedError) {
    super(serialized.message);
    this.name = serialized.name;
    if (serialized.stack) this.stack = serialized.stack;
  }
}

export interface RunningJob<T extends Job['type']> {
  id: number;
  result: Promise<JobResults[T]>;
  cancel(): void;
}

interface Pending {
  onEvent: (event: unknown) => void;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class WorkerClient {
  private worker: WorkerHandle | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly launch: WorkerLauncher = forkLauncher) {}

  private ensureWorker(): WorkerHandle {
    if (this.worker) return this.worker;
    const { entry, execArgv } = workerEntry();
    const worker = this.launch(entry, execArgv);
    worker.onMessage((m) => this.receive(m));
    worker.onExit((code) => {
      if (this.worker === worker) this.worker = undefined;
      const err = new Error(`The engine process stopped unexpectedly (exit code ${code}). Your data is safe; the last checkpoint, if any, can resume the run.`);
      err.name = 'WorkerCrashed';
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    this.worker = worker;
    return worker;
  }

  private receive(m: FromWorker): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.kind === 'event') p.onEvent(m.event);
    else {
      this.pending.delete(m.id);
      if (m.kind === 'result') p.resolve(m.result);
      else p.reject(new JobError(m.error));
    }
  }

  run<T extends Job['type']>(job: Extract<Job, { type: T }>, onEvent: (event: JobEvents[T]) => void = () => {}): RunningJob<T> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    const result = new Promise<JobResults[T]>((resolve, reject) => {
      this.pending.set(id, { onEvent: onEvent as (e: unknown) => void, resolve: resolve as (v: unknown) => void, reject });
    });
    worker.send({ kind: 'run', id, job });
    return { id, result, cancel: () => this.worker?.send({ kind: 'cancel', id }) };
  }

  /** Stops the worker process (pending jobs fail). */
  close(): void {
    const w = this.worker;
    this.worker = undefined;
    w?.kill();
  }
}
