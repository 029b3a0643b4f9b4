/**
 * The host side of the API, shared by Electron main and the browser-mode web host: validated
 * requests in, engine work sent to the worker process, DTOs out, job progress pushed as events.
 * What differs between the hosts (folder dialog, "show in folder", uploaded files) comes in as
 * `HostFeatures`; everything else is here once.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LABEL_RULE_CHOICES } from '../engine/data/label-rules.js';
import type { DatasetScan } from '../engine/data/dataset.js';
import type { RunEvent, RunRecord, TrainConfig } from '../engine/train/run-training.js';
import { expandHome } from '../engine/paths.js';
import type { WorkerClient } from '../worker/worker-client.js';
import type { Job, JobEvents, JobResults } from '../worker/protocol.js';
import {
  API_VERSION,
  type Api,
  type AppEvent,
  type BackendInfo,
  type Channel,
  type FolderCheck,
  type JobEvent,
  type RunDetails,
  type RunSummary,
  type ScanSummary,
  type TrainEventDto,
  type TrainSettings,
} from './contract.js';
import { validateRequest } from './validate.js';

export interface HostPaths {
  /** Decoded images, datasets, weights (shared with the CLI). */
  cacheDir: string;
  /** One folder per training run. */
  runsDir: string;
}

export interface HostFeatures {
  mode: 'electron' | 'web';
  version: string;
  pickFolder?(title?: string): Promise<string | null>;
  showInFolder?(p: string): Promise<boolean>;
  /** Browser mode: the file an upload id stands for. */
  resolveUpload?(id: string): string | undefined;
}

type Handler<C extends Channel> = (payload: Api[C][0]) => Promise<Api[C][1]>;

export class UserError extends Error {
  override name = 'UserError';
}

const RUN_JSON = 'run.json';

/** A run folder name from the start time, sortable and safe on every file system. */
export function runIdFor(date: Date): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

export function toScanSummary(scan: DatasetScan): ScanSummary {
  return {
    root: scan.root,
    ruleTitle: scan.ruleTitle,
    found: scan.found,
    train: scan.train.length,
    valid: scan.valid.length,
    classes: scan.classes,
    skipped: scan.skipped,
    problems: scan.problems,
  };
}

/** The engine's run events are already plain data of the DTO's shape; this narrows and checks it. */
export function toTrainEvent(e: RunEvent): TrainEventDto {
  return e;
}

export function toRunDetails(record: RunRecord, id: string, dir: string): RunDetails {
  const last = record.epochs[record.epochs.length - 1];
  return {
    id,
    dir,
    status: record.status,
    startedAt: record.startedAt,
    seconds: record.seconds,
    backend: record.backend.label,
    datasetRoot: record.dataset.root,
    rule: record.dataset.rule,
    arch: record.model.arch,
    size: record.model.inputSize,
    epochs: record.config.epochs ?? 1,
    freezeEpochs: record.config.freezeEpochs ?? 1,
    baseLr: record.config.baseLr ?? 2e-3,
    vocab: record.vocab,
    train: record.dataset.train,
    valid: record.dataset.valid,
    ...(last ? { errorRate: record.validation?.errorRate ?? last.errorRate, validLoss: record.validation?.loss ?? last.validLoss } : {}),
    rows: record.epochs,
    ...(record.validation ? { confusion: record.validation.confusion, accuracy: record.validation.accuracy } : {}),
    topLosses: record.topLosses.map((t) => ({ relPath: t.relPath, actualLabel: t.actualLabel, predictedLabel: t.predictedLabel, probability: t.probability, loss: t.loss })),
    ...(record.lrFind ? { lrFind: record.lrFind } : {}),
    skipped: record.dataset.skipped,
  };
}

export function toRunSummary(d: RunDetails): RunSummary {
  const { rows: _r, confusion: _c, accuracy: _a, topLosses: _t, lrFind: _l, skipped: _s, ...summary } = d;
  return summary;
}

/** Checks a folder typed by a person (browser mode) or picked (Electron): exists, is a folder, is readable. */
export async function checkFolder(input: string): Promise<FolderCheck> {
  const trimmed = input.trim();
  const resolved = path.resolve(expandHome(trimmed));
  if (!trimmed) return { ok: false, path: resolved, error: 'Type the path of the folder that holds your photos.' };
  if (!path.isAbsolute(expandHome(trimmed))) {
    return { ok: false, path: resolved, error: `Use a full path starting with ${path.sep === '/' ? '/ or ~/' : 'a drive letter'} (relative paths depend on where the server was started).` };
  }
  let stat;
  try {
    stat = await fs.stat(resolved);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, path: resolved, error: code === 'ENOENT' ? `${resolved} does not exist on this machine. Check the spelling, or the machine the server runs on.` : `${resolved} cannot be read (${code}).` };
  }
  if (!stat.isDirectory()) return { ok: false, path: resolved, error: `${resolved} is a file, not a folder. Choose the folder that contains it.` };
  try {
    const entries = await fs.readdir(resolved);
    return { ok: true, path: resolved, entries: entries.length };
  } catch (err) {
    return { ok: false, path: resolved, error: `${resolved} cannot be opened (${(err as NodeJS.ErrnoException).code}); check its permissions.` };
  }
}

export class ApiDispatcher {
  private readonly jobs = new Map<string, { cancel(): void; result: Promise<unknown> }>();
  private readonly listeners = new Set<(e: AppEvent) => void>();
  private readonly handlers: { [C in Channel]: Handler<C> };

  constructor(
    private readonly worker: WorkerClient,
    private readonly paths: HostPaths,
    private readonly host: HostFeatures,
  ) {
    this.handlers = this.createHandlers();
  }

  onEvent(listener: (e: AppEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: JobEvent): void {
    for (const l of this.listeners) l({ type: 'job', event });
  }

  /** Validates and runs one request. Throws PayloadError / UserError / engine errors with their messages. */
  async handle(channel: unknown, payload: unknown): Promise<unknown> {
    const request = validateRequest(channel, payload);
    const handler = this.handlers[request.channel] as (p: unknown) => Promise<unknown>;
    return handler(request.payload);
  }

  /**
   * Cancels every running job (window closing, server stopping) and waits, up to `timeoutMs`, for
   * them to finish: a cancelled training run saves its model before it settles.
   */
  async cancelAll(timeoutMs = 30_000): Promise<void> {
    const pending = [...this.jobs.values()];
    for (const job of pending) job.cancel();
    const settled = Promise.allSettled(pending.map((j) => j.result));
    await Promise.race([settled, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** Runs a worker job under the renderer's job id, forwarding its events. */
  private async job<T extends Job['type']>(jobId: string, job: Extract<Job, { type: T }>, onEvent?: (e: JobEvents[T]) => JobEvent | undefined): Promise<JobResults[T]> {
    if (this.jobs.has(jobId)) throw new UserError(`A job with id ${jobId} is already running.`);
    const running = this.worker.run<T>(job, (e) => {
      const out = onEvent?.(e);
      if (out) this.emit(out);
    });
    this.jobs.set(jobId, running);
    try {
      return await running.result;
    } finally {
      this.jobs.delete(jobId);
    }
  }

  private trainConfig(settings: TrainSettings, outDir: string): TrainConfig {
    return {
      dataset: settings.dataset,
      arch: settings.arch,
      weights: 'imagenet',
      size: settings.size,
      epochs: settings.epochs,
      freezeEpochs: settings.freezeEpochs,
      baseLr: settings.baseLr,
      seed: settings.seed,
      ...(settings.mode ? { mode: settings.mode } : {}),
      ...(settings.quickEpochs ? { quickEpochs: settings.quickEpochs } : {}),
      outDir,
      cacheDir: this.paths.cacheDir,
      store: { cacheDir: path.join(this.paths.cacheDir, 'weights') },
    };
  }

  private runDir(runId: string): string {
    // runId passed validation (no separators); resolve anyway and insist it stays inside.
    const dir = path.resolve(this.paths.runsDir, runId);
    if (path.dirname(dir) !== path.resolve(this.paths.runsDir)) throw new UserError(`Unknown run ${runId}.`);
    return dir;
  }

  private async readRun(runId: string): Promise<RunDetails> {
    const dir = this.runDir(runId);
    let text: string;
    try {
      text = await fs.readFile(path.join(dir, RUN_JSON), 'utf8');
    } catch {
      throw new UserError(`The run ${runId} has no ${RUN_JSON} in ${dir} (it was deleted, or is still training).`);
    }
    return toRunDetails(JSON.parse(text) as RunRecord, runId, dir);
  }

  private async resolveImage(ref: Api['predict:images'][0]['images'][number]): Promise<string> {
    if (ref.kind === 'upload') {
      const file = this.host.resolveUpload?.(ref.id);
      if (!file) throw new UserError('An uploaded image is no longer on the server (it restarted); add the image again.');
      return file;
    }
    const file = path.resolve(expandHome(ref.path));
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat?.isFile()) throw new UserError(`${file} is not a file on this machine; pick image files.`);
    return file;
  }

  private createHandlers(): { [C in Channel]: Handler<C> } {
    const trainEvents = (jobId: string) => (e: RunEvent): JobEvent => ({ jobId, kind: 'train', event: toTrainEvent(e) });
    return {
      'app:info': async () => ({
        apiVersion: API_VERSION,
        version: this.host.version,
        mode: this.host.mode,
        platform: process.platform,
        cacheDir: this.paths.cacheDir,
        runsDir: this.paths.runsDir,
        homeDir: os.homedir(),
      }),
      'backend:get': async () => {
        const b = await this.worker.run({ type: 'backend' }).result;
        const info: BackendInfo = { name: b.name, label: b.label, attempts: b.attempts };
        return info;
      },
      'label-rules:list': async () => LABEL_RULE_CHOICES.map((c) => ({ ...c })),
      'datasets:list': async () => this.worker.run({ type: 'datasets-list', cacheDir: this.paths.cacheDir }).result,
      'datasets:get': async ({ jobId, id }) =>
        this.job(jobId, { type: 'dataset-get', id, cacheDir: this.paths.cacheDir }, (p) => ({
          jobId,
          kind: 'bytes',
          progress: { doneBytes: p.doneBytes, totalBytes: p.totalBytes, bytesPerSecond: p.bytesPerSecond, etaSeconds: p.etaSeconds, phase: p.phase, message: p.message },
        })),
      'folder:pick': async ({ title }) => {
        if (!this.host.pickFolder) throw new UserError('Folder dialogs exist only in the desktop app; type the path instead.');
        return { path: await this.host.pickFolder(title) };
      },
      'folder:check': async ({ path: p }) => checkFolder(p),
      'dataset:scan': async ({ jobId, dataset }) => {
        const check = await checkFolder(dataset.root);
        if (!check.ok) throw new UserError(check.error!);
        const scan = await this.job(jobId, { type: 'scan', options: { ...dataset, root: check.path } });
        return toScanSummary(scan);
      },
      'dataset:preview': async ({ jobId, dataset, size, count, epoch }) => {
        const check = await checkFolder(dataset.root);
        if (!check.ok) throw new UserError(check.error!);
        const r = await this.job(jobId, { type: 'preview', options: { ...dataset, root: check.path }, size, count, epoch, cacheDir: this.paths.cacheDir }, (p) => ({ jobId, kind: 'prepare', progress: p }));
        return { scan: toScanSummary(r.scan), size: r.size, epoch: r.epoch, train: r.train, valid: r.valid };
      },
      'models:list': async () => this.worker.run({ type: 'models-list', cacheDir: this.paths.cacheDir }).result,
      'weights:get': async ({ jobId, arch }) =>
        this.job(jobId, { type: 'weights-get', arch, cacheDir: this.paths.cacheDir }, (p) => ({
          jobId,
          kind: 'bytes',
          progress: {
            doneBytes: p.receivedBytes,
            totalBytes: p.totalBytes,
            bytesPerSecond: p.bytesPerSecond,
            etaSeconds: p.etaSeconds,
            phase: p.phase ?? 'downloading',
            message: `${p.file}${p.fileCount ? ` (file ${p.fileIndex} of ${p.fileCount})` : ''}${p.message ? `: ${p.message}` : ''}`,
          },
        })),
      'lr:find': async ({ jobId, settings }) => {
        const config = this.trainConfig(settings, path.join(os.tmpdir(), 'finetune-studio-lr-find'));
        const r = await this.job(jobId, { type: 'lr-find', config }, trainEvents(jobId));
        return r;
      },
      'train:start': async ({ jobId, settings }) => {
        const check = await checkFolder(settings.dataset.root);
        if (!check.ok) throw new UserError(check.error!);
        const id = runIdFor(new Date());
        const dir = this.runDir(id);
        await fs.mkdir(dir, { recursive: true });
        const config = this.trainConfig({ ...settings, dataset: { ...settings.dataset, root: check.path } }, dir);
        const record = await this.job(jobId, { type: 'train', config }, trainEvents(jobId));
        return toRunDetails(record, id, dir);
      },
      'job:cancel': async ({ jobId }) => {
        const job = this.jobs.get(jobId);
        job?.cancel();
        return { cancelled: job !== undefined };
      },
      'runs:list': async () => {
        const names = await fs.readdir(this.paths.runsDir).catch(() => [] as string[]);
        const runs = await Promise.all(
          names.map(async (name) => {
            try {
              return toRunSummary(await this.readRun(name));
            } catch {
              return undefined; // a run still training, or a folder that is not a run
            }
          }),
        );
        return runs.filter((r): r is RunSummary => r !== undefined).sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
      },
      'runs:get': async ({ runId }) => this.readRun(runId),
      'runs:top-losses': async ({ jobId, runId, count }) => {
        const run = await this.readRun(runId);
        const top = run.topLosses.slice(0, count);
        const thumbs = await this.job(jobId, { type: 'thumbnails', files: top.map((t) => path.join(run.datasetRoot, t.relPath)), size: 160 });
        return top.map((t, i) => ({ ...t, src: thumbs[i]?.src ?? '' }));
      },
      'predict:images': async ({ jobId, runId, images }) => {
        const dir = this.runDir(runId);
        const files = await Promise.all(images.map((ref) => this.resolveImage(ref)));
        const names = images.map((ref, i) => (ref.kind === 'upload' ? path.basename(files[i]).replace(/^[a-f0-9-]{36}-/, '') : path.basename(files[i])));
        const items = await this.job(jobId, { type: 'predict', runDir: dir, files }, (p) => ({ jobId, kind: 'count', done: p.done, total: p.total }));
        return items.map((p, i) => ({
          name: names[i],
          ...(p.label !== undefined ? { label: p.label, probability: p.probability } : {}),
          probabilities: p.probabilities,
          ...(p.src ? { src: p.src } : {}),
          ...(p.error ? { error: p.error } : {}),
        }));
      },
      'export:run': async ({ jobId, runId, format, outDir }) => {
        const dir = this.runDir(runId);
        let target = path.join(dir, `export-${format}`);
        if (outDir !== undefined) {
          const expanded = expandHome(outDir.trim());
          if (!path.isAbsolute(expanded)) throw new UserError(`Choose an absolute folder to export to (got ${outDir}).`);
          target = path.resolve(expanded);
        }
        return this.job(jobId, { type: 'export', runDir: dir, format, outDir: target }, (p) => ({ jobId, kind: 'count', done: p.done, total: p.total, ...(p.message ? { message: p.message } : {}) }));
      },
      'shell:show': async ({ path: p }) => ({ shown: (await this.host.showInFolder?.(path.resolve(p))) ?? false }),
    };
  }
}
