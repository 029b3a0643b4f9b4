/**
 * The one API between the wizard (renderer) and whatever hosts it: Electron's main process (over
 * IPC, through the preload) or the browser-mode web host (over a WebSocket). Both hosts dispatch
 * into the same code (dispatch.ts), so the renderer cannot tell them apart except by `AppInfo.mode`.
 *
 * This file is plain data types and constants with no imports: the renderer bundles it, the
 * sandboxed preload copies its two channel names (checked against `IpcChannels` by the compiler),
 * and engine types are mirrored here as DTOs so the UI never depends on engine internals. The
 * dispatcher converts engine values into these types, so drift shows up as a type error there.
 *
 * Long jobs (scan, preview, downloads, lr_find, train, predict, export) take a `jobId` chosen by
 * the renderer; their progress arrives as `JobEvent`s with that id, and `job:cancel` stops them.
 * Every request payload is validated by validate.ts before anything runs.
 */

export const API_VERSION = 1;

/** Electron IPC: one invoke channel carrying `{ channel, payload }`, one event channel. */
export const IPC_CHANNELS = { invoke: 'studio:invoke', event: 'studio:event' } as const;
export type IpcChannels = typeof IPC_CHANNELS;

// ---------------------------------------------------------------------------------------------
// Data

export type LabelRuleDto =
  | { kind: 'is-cat' }
  | { kind: 'regex'; pattern: string }
  | { kind: 'folder' }
  | { kind: 'csv'; csvPath: string };

export type SplitDto = { kind: 'random'; validPct: number; seed: number } | { kind: 'folder'; trainName: string; validName: string };

export interface DatasetSpec {
  /** Absolute folder on the machine that runs the engine. */
  root: string;
  label: LabelRuleDto;
  split: SplitDto;
}

export interface ClassCount {
  name: string;
  count: number;
  train: number;
  valid: number;
  examples: string[];
}

export interface SkippedFileDto {
  relPath: string;
  stage: 'find' | 'label' | 'split' | 'decode';
  reason: string;
}

export interface ProblemDto {
  level: 'error' | 'warning';
  message: string;
}

export interface ScanSummary {
  root: string;
  ruleTitle: string;
  found: number;
  train: number;
  valid: number;
  classes: ClassCount[];
  skipped: SkippedFileDto[];
  problems: ProblemDto[];
}

export interface LabelRuleChoice {
  kind: LabelRuleDto['kind'];
  title: string;
  explain: string;
}

export interface DatasetChoice {
  id: string;
  title: string;
  description: string;
  sizeBytes: number;
  imageCount?: number;
  state: 'ready' | 'downloaded' | 'partial' | 'absent' | 'invalid';
  /** Folder of the photos once it is there. */
  imagesFolder: string;
  labelsFrom: 'filename' | 'folder';
}

export interface PreviewImage {
  relPath: string;
  label: string;
  /** A small JPEG as a data: URL (the CSP allows data: images only). */
  src: string;
}

export interface PreviewResult {
  scan: ScanSummary;
  size: number;
  epoch: number;
  train: PreviewImage[];
  valid: PreviewImage[];
}

export interface PrepareProgressDto {
  done: number;
  total: number;
  decoded: number;
  fromCache: number;
  failed: number;
}

// ---------------------------------------------------------------------------------------------
// Models and compute

export interface BackendInfo {
  name: 'node-gpu' | 'node' | 'wasm' | 'cpu';
  label: string;
  attempts: { name: string; ok: boolean; reason: string }[];
}

export interface ModelChoice {
  arch: string;
  title: string;
  family: 'resnet' | 'mobilenet_v1' | 'mobilenet_v2';
  /** Bytes downloaded for the pretrained weights. */
  approxBytes: number;
  /** Relative training cost, for a "fast / medium / slow" hint. */
  speed: 'fastest' | 'fast' | 'medium' | 'slow';
  cached: boolean;
  /** Where the weights were found when cached (cache folder or FINETUNE_WEIGHTS_DIR). */
  cachedAt?: string;
  licence: string;
}

export interface ByteProgress {
  doneBytes: number;
  totalBytes?: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  phase: string;
  message?: string;
}

// ---------------------------------------------------------------------------------------------
// Training

/** What the wizard chooses; the host adds where the run and the caches go. */
export interface TrainSettings {
  dataset: DatasetSpec;
  arch: string;
  size: number;
  /** Unfrozen epochs (fastai's fine_tune(epochs)). */
  epochs: number;
  freezeEpochs: number;
  baseLr: number;
  seed: number;
  /**
   * 'fastai' (default): fine_tune exactly as the lesson. 'quick': the head trains on body features
   * computed once (much faster on a CPU) for `quickEpochs`, then `epochs` unfrozen epochs.
   */
  mode?: 'fastai' | 'quick';
  quickEpochs?: number;
}

export interface EpochRowDto {
  epoch: number;
  phase: 'frozen' | 'unfrozen' | 'fit' | 'quick';
  trainLoss: number;
  validLoss: number;
  errorRate: number;
  accuracy: number;
  seconds: number;
}

export interface LrPoint {
  lr: number;
  loss: number;
}

export interface LrFindDto {
  points: LrPoint[];
  suggestions?: Record<'valley' | 'slide' | 'minimum' | 'steep', { lr: number; point: LrPoint }>;
}

/** Progress of a training or lr_find job (mirrors the engine's RunEvent). */
export type TrainEventDto =
  | { type: 'stage'; stage: string; message: string }
  | ({ type: 'prepare' } & PrepareProgressDto)
  | { type: 'features'; done: number; total: number; fromCache: number }
  | { type: 'note'; message: string }
  | { type: 'fit-start'; phase: EpochRowDto['phase']; epochs: number; batchesPerEpoch: number; frozen: boolean }
  | {
      type: 'batch';
      phase: EpochRowDto['phase'];
      epoch: number;
      iter: number;
      totalIters: number;
      loss: number;
      smoothLoss: number;
      lrs: number[];
      mom: number;
      imagesPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'validation'; done: number; total: number }
  | { type: 'epoch'; row: EpochRowDto }
  | { type: 'lr-find'; point: LrPoint; iter: number; numIt: number };

export interface TopLossDto {
  relPath: string;
  actualLabel: string;
  predictedLabel: string;
  probability: number;
  loss: number;
}

export interface RunSummary {
  /** Folder name under the runs folder (its start time). */
  id: string;
  dir: string;
  status: 'completed' | 'cancelled';
  startedAt: string;
  seconds: number;
  backend: string;
  datasetRoot: string;
  rule: string;
  arch: string;
  size: number;
  epochs: number;
  freezeEpochs: number;
  baseLr: number;
  vocab: string[];
  train: number;
  valid: number;
  /** Of the last epoch, when one finished. */
  errorRate?: number;
  validLoss?: number;
}

export interface RunDetails extends RunSummary {
  rows: EpochRowDto[];
  confusion?: number[][];
  accuracy?: number;
  topLosses: TopLossDto[];
  lrFind?: LrFindDto;
  skipped: SkippedFileDto[];
}

export interface TopLossImage extends TopLossDto {
  src: string;
}

// ---------------------------------------------------------------------------------------------
// Test and export

/** An image to classify: a path on the engine's machine, or a file uploaded to the web host. */
export type ImageRef = { kind: 'path'; path: string } | { kind: 'upload'; id: string };

export interface PredictionDto {
  /** File name, for display. */
  name: string;
  label?: string;
  probability?: number;
  probabilities: { label: string; probability: number }[];
  /** Thumbnail as a data: URL, when the file could be decoded. */
  src?: string;
  error?: string;
}

export type ExportFormat = 'tfjs' | 'onnx';

export interface ExportResult {
  outDir: string;
  format: ExportFormat;
  files: { path: string; bytes: number }[];
}

// ---------------------------------------------------------------------------------------------
// App

export interface AppInfo {
  apiVersion: number;
  version: string;
  /** 'electron': folder dialogs and "show in folder" exist; 'web': paths are typed and checked on the server. */
  mode: 'electron' | 'web';
  platform: string;
  cacheDir: string;
  runsDir: string;
  /** A sensible place to start typing a path (the user's home folder). */
  homeDir: string;
}

export interface FolderCheck {
  ok: boolean;
  /** Absolute, resolved path. */
  path: string;
  /** Why the folder cannot be used, and what to do. */
  error?: string;
  /** How many entries the folder has (a hint that it is the right one). */
  entries?: number;
}

/** Every request: channel -> [payload, response]. */
export interface Api {
  'app:info': [Record<string, never>, AppInfo];
  'backend:get': [Record<string, never>, BackendInfo];
  'label-rules:list': [Record<string, never>, LabelRuleChoice[]];
  'datasets:list': [Record<string, never>, DatasetChoice[]];
  'datasets:get': [{ jobId: string; id: string }, { folder: string }];
  'folder:pick': [{ title?: string }, { path: string | null }];
  'folder:check': [{ path: string }, FolderCheck];
  'dataset:scan': [{ jobId: string; dataset: DatasetSpec }, ScanSummary];
  'dataset:preview': [{ jobId: string; dataset: DatasetSpec; size: number; count: number; epoch: number }, PreviewResult];
  'models:list': [Record<string, never>, ModelChoice[]];
  'weights:get': [{ jobId: string; arch: string }, { path: string }];
  'lr:find': [{ jobId: string; settings: TrainSettings }, LrFindDto];
  'train:start': [{ jobId: string; settings: TrainSettings }, RunDetails];
  'job:cancel': [{ jobId: string }, { cancelled: boolean }];
  'runs:list': [Record<string, never>, RunSummary[]];
  'runs:get': [{ runId: string }, RunDetails];
  'runs:top-losses': [{ jobId: string; runId: string; count: number }, TopLossImage[]];
  'predict:images': [{ jobId: string; runId: string; images: ImageRef[] }, PredictionDto[]];
  'export:run': [{ jobId: string; runId: string; format: ExportFormat; outDir?: string }, ExportResult];
  'shell:show': [{ path: string }, { shown: boolean }];
}

export type Channel = keyof Api;
export type Request<C extends Channel> = Api[C][0];
export type Response<C extends Channel> = Api[C][1];

export const CHANNELS = [
  'app:info',
  'backend:get',
  'label-rules:list',
  'datasets:list',
  'datasets:get',
  'folder:pick',
  'folder:check',
  'dataset:scan',
  'dataset:preview',
  'models:list',
  'weights:get',
  'lr:find',
  'train:start',
  'job:cancel',
  'runs:list',
  'runs:get',
  'runs:top-losses',
  'predict:images',
  'export:run',
  'shell:show',
] as const satisfies readonly Channel[];

// Compile-time check that CHANNELS lists every channel of Api.
type Missing = Exclude<Channel, (typeof CHANNELS)[number]>;
const _allChannelsListed: Missing extends never ? true : Missing = true;
void _allChannelsListed;

/** Progress of a job, pushed to the renderer as it happens. */
export type JobEvent =
  | { jobId: string; kind: 'prepare'; progress: PrepareProgressDto }
  | { jobId: string; kind: 'bytes'; progress: ByteProgress }
  | { jobId: string; kind: 'train'; event: TrainEventDto }
  | { jobId: string; kind: 'count'; done: number; total: number; message?: string };

/** Everything the host pushes without being asked. */
export type AppEvent = { type: 'job'; event: JobEvent } | { type: 'worker-restarted'; message: string };

/** An error as it crosses the boundary: a message for people, a name for code (AbortError = cancelled). */
export interface ApiErrorDto {
  name: string;
  message: string;
}

/** What the renderer sees, whichever host it runs under. */
export interface StudioApi {
  invoke<C extends Channel>(channel: C, payload: Request<C>): Promise<Response<C>>;
  /** Returns an unsubscribe function. */
  onEvent(listener: (event: AppEvent) => void): () => void;
  /** Electron only: the path of a dropped or picked File. Browser mode uploads instead. */
  pathForFile?(file: File): string;
  /** Browser mode only: sends a file to the host and returns a reference for `predict:images`. */
  upload?(file: File): Promise<ImageRef>;
}

/** What the preload puts on `window.studio` (Electron). */
export interface PreloadApi {
  invoke(channel: string, payload: unknown): Promise<unknown>;
  onEvent(listener: (event: AppEvent) => void): () => void;
  pathForFile(file: File): string;
}

// ---------------------------------------------------------------------------------------------
// Browser mode (WebSocket frames)

export type WsClientFrame = { id: number; channel: string; payload: unknown };
export type WsServerFrame =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: ApiErrorDto }
  | { event: AppEvent };

/** Limits shared by host and renderer so the UI can refuse early with the same numbers. */
export const LIMITS = {
  /** Largest uploaded test image (bytes). */
  uploadBytes: 50 * 1024 * 1024,
  /** Images per predict request. */
  predictImages: 200,
  /** Largest WebSocket frame (bytes). */
  wsFrameBytes: 1024 * 1024,
  pathLength: 4096,
} as const;

/** Strict Content-Security-Policy for the renderer (HTTP header in browser mode, protocol handler in Electron). */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');
