/**
 * The wizard's logic without the DOM: which steps are open, turning form fields into API requests
 * (with messages for mistakes), and folding a training job's events into what the Train step
 * shows. Pure functions, tested in test/renderer without a browser.
 */
import type { BackendInfo, DatasetSpec, EpochRowDto, LabelRuleDto, LrPoint, ScanSummary, TrainEventDto, TrainSettings } from '../../../src-main/api/contract.js';

export type StepId = 'data' | 'preview' | 'model' | 'train' | 'test' | 'export';

export const STEPS: { id: StepId; title: string; hint: string }[] = [
  { id: 'data', title: 'Data', hint: 'Choose the photos and how they are labelled' },
  { id: 'preview', title: 'Preview', hint: 'See a batch as the model will' },
  { id: 'model', title: 'Model', hint: 'Architecture, image size, epochs, learning rate' },
  { id: 'train', title: 'Train', hint: 'Fine-tune and watch it learn' },
  { id: 'test', title: 'Test', hint: 'Try the model on new photos' },
  { id: 'export', title: 'Export', hint: 'Save the model for other programs' },
];

export interface DataForm {
  root: string;
  ruleKind: LabelRuleDto['kind'];
  pattern: string;
  csvPath: string;
  splitKind: 'random' | 'folder';
  /** Percent, as the form shows it (20 = 20%). */
  validPercent: number;
  seed: number;
  trainName: string;
  validName: string;
}

export const DEFAULT_DATA_FORM: DataForm = {
  root: '',
  ruleKind: 'is-cat',
  pattern: '^(.+)_\\d+\\.',
  csvPath: '',
  splitKind: 'random',
  validPercent: 20,
  seed: 42,
  trainName: 'train',
  validName: 'valid',
};

export interface ModelForm {
  arch: string;
  size: number;
  /** 'fastai': fine_tune exactly. 'quick': the head trains on features the body computes once per photo. */
  mode: 'fastai' | 'quick';
  epochs: number;
  freezeEpochs: number;
  /** Quick mode's head-only epochs (cheap: seconds each). */
  quickEpochs: number;
  baseLr: number;
}

/** fastai lesson 1: resnet34 at 224, fine_tune(1), base_lr 2e-3. */
export const DEFAULT_MODEL_FORM: ModelForm = { arch: 'resnet34', size: 224, mode: 'fastai', epochs: 1, freezeEpochs: 1, quickEpochs: 8, baseLr: 2e-3 };

/** What each training mode costs and gives, for the Model step. */
export const TRAINING_MODES: { mode: ModelForm['mode']; title: string; explain: string }[] = [
  {
    mode: 'fastai',
    title: "fastai's fine_tune (exact)",
    explain: 'Every batch goes forward and backward through the whole network, as in the lesson: the best accuracy, but without a GPU an epoch can take many minutes.',
  },
  {
    mode: 'quick',
    title: 'Quick (head only, on cached features)',
    explain: 'The network looks at each photo once; then only the new head trains, in seconds per epoch (like Teachable Machine). Usually a little less accurate; add whole-network epochs to close the gap.',
  },
];

/**
 * The lesson's resnet34 where there is a GPU; on a CPU, a MobileNetV2 trains about twice as fast
 * (WebAssembly, 224 px, 2 threads, test/bench/wasm-kernels.bench.ts --train: 9.5 against 4.8
 * images/s) for a small loss of accuracy, which matters more to someone waiting for a first result.
 */
export function defaultArchFor(backend: BackendInfo['name'] | undefined): { arch: string; why: string } {
  if (backend === 'node-gpu') return { arch: 'resnet34', why: "fastai's lesson-1 model; your GPU trains it quickly." };
  return { arch: 'mobilenet_v2_1.00', why: 'Training runs on the CPU here: MobileNetV2 trains about twice as fast as ResNet-34, for a small loss of accuracy.' };
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: string; field: string };

export function labelRuleFrom(form: DataForm): Result<LabelRuleDto> {
  switch (form.ruleKind) {
    case 'is-cat':
    case 'folder':
      return { ok: true, value: { kind: form.ruleKind } };
    case 'regex': {
      const pattern = form.pattern.trim();
      if (!pattern) return { ok: false, field: 'pattern', error: 'Type a pattern with one group in parentheses, e.g. ^(.+)_\\d+\\.' };
      try {
        new RegExp(pattern, 'u');
      } catch (err) {
        return { ok: false, field: 'pattern', error: `The pattern is not valid: ${(err as Error).message}` };
      }
      if (!/\((?!\?[:=!<])/.test(pattern.replace(/\\./g, ''))) return { ok: false, field: 'pattern', error: 'The pattern needs a group in parentheses around the part that is the label.' };
      return { ok: true, value: { kind: 'regex', pattern } };
    }
    case 'csv': {
      const csvPath = form.csvPath.trim();
      if (!csvPath) return { ok: false, field: 'csvPath', error: 'Give the path of the CSV file (columns: name, label).' };
      return { ok: true, value: { kind: 'csv', csvPath } };
    }
  }
}

export function datasetSpecFrom(form: DataForm): Result<DatasetSpec> {
  const root = form.root.trim();
  if (!root) return { ok: false, field: 'root', error: 'Choose the folder that holds your photos.' };
  const label = labelRuleFrom(form);
  if (!label.ok) return label;
  if (form.splitKind === 'folder') {
    if (!form.trainName.trim() || !form.validName.trim() || form.trainName.trim() === form.validName.trim()) {
      return { ok: false, field: 'trainName', error: 'Name two different folders for training and validation (e.g. train and valid).' };
    }
    return { ok: true, value: { root, label: label.value, split: { kind: 'folder', trainName: form.trainName.trim(), validName: form.validName.trim() } } };
  }
  if (!(Number.isFinite(form.validPercent) && form.validPercent >= 0 && form.validPercent <= 90)) {
    return { ok: false, field: 'validPercent', error: 'The validation share must be between 0% and 90% (20% is usual).' };
  }
  if (!(Number.isInteger(form.seed) && form.seed >= 0 && form.seed <= 0xffffffff)) {
    return { ok: false, field: 'seed', error: 'The seed must be a whole number from 0 to 4294967295.' };
  }
  return { ok: true, value: { root, label: label.value, split: { kind: 'random', validPct: Math.round(form.validPercent * 100) / 10000, seed: form.seed } } };
}

export function settingsFrom(dataset: DatasetSpec, model: ModelForm, seed: number): Result<TrainSettings> {
  if (!(Number.isInteger(model.size) && model.size >= 32 && model.size <= 1024)) return { ok: false, field: 'size', error: 'Image size must be a whole number of pixels from 32 to 1024 (224 is usual).' };
  if (!(Number.isInteger(model.epochs) && model.epochs >= 0 && model.epochs <= 1000)) return { ok: false, field: 'epochs', error: 'Epochs must be a whole number from 0 to 1000.' };
  if (!(Number.isInteger(model.freezeEpochs) && model.freezeEpochs >= 0 && model.freezeEpochs <= 1000)) return { ok: false, field: 'freezeEpochs', error: 'Frozen epochs must be a whole number from 0 to 1000.' };
  if (!(model.baseLr > 0 && model.baseLr < 10)) return { ok: false, field: 'baseLr', error: 'The learning rate must be a positive number such as 0.002.' };
  if (model.mode === 'quick') {
    if (!(Number.isInteger(model.quickEpochs) && model.quickEpochs >= 1 && model.quickEpochs <= 1000)) return { ok: false, field: 'quickEpochs', error: 'Head epochs must be a whole number from 1 to 1000.' };
    return { ok: true, value: { dataset, arch: model.arch, size: model.size, mode: 'quick', quickEpochs: model.quickEpochs, epochs: model.epochs, freezeEpochs: 0, baseLr: model.baseLr, seed } };
  }
  if (model.epochs + model.freezeEpochs === 0) return { ok: false, field: 'epochs', error: 'At least one epoch must run.' };
  return { ok: true, value: { dataset, arch: model.arch, size: model.size, mode: 'fastai', epochs: model.epochs, freezeEpochs: model.freezeEpochs, baseLr: model.baseLr, seed } };
}

export function scanUsable(scan: ScanSummary | null | undefined): boolean {
  return !!scan && !scan.problems.some((p) => p.level === 'error');
}

export interface WizardFacts {
  scanOk: boolean;
  hasRun: boolean;
  training: boolean;
}

/** Steps a person may go to now; the others say what is missing first. */
export function stepOpen(step: StepId, facts: WizardFacts): { open: boolean; why?: string } {
  if (facts.training && step !== 'train') return { open: false, why: 'Training is running; cancel it or wait for it to finish.' };
  switch (step) {
    case 'data':
      return { open: true };
    case 'preview':
    case 'model':
    case 'train':
      return facts.scanOk || (step === 'train' && facts.hasRun) ? { open: true } : { open: false, why: 'Choose a folder and a label rule that gives at least two classes first.' };
    case 'test':
    case 'export':
      return facts.hasRun ? { open: true } : { open: false, why: 'Train a model, or open one from Recent runs, first.' };
  }
}

// ---------------------------------------------------------------------------------------------
// Training progress

export interface TrainView {
  stage: string;
  message: string;
  notes: string[];
  prepare?: { done: number; total: number };
  /** Quick mode: body features computed once per image. */
  features?: { done: number; total: number };
  /** Current fit (frozen / unfrozen phase). */
  phase?: EpochRowDto['phase'];
  phaseIndex: number;
  phaseCount: number;
  /** Epochs in each phase: the overall bar gives each phase its share of the epochs. */
  phaseEpochs: number[];
  iter: number;
  totalIters: number;
  batchesPerEpoch: number;
  imagesPerSecond: number;
  etaSeconds: number;
  /** Smoothed loss per batch, numbered over the whole run. */
  losses: { x: number; y: number }[];
  rows: EpochRowDto[];
  validation?: { done: number; total: number };
  lrPoints: LrPoint[];
  lrNumIt: number;
  /** Batches finished in earlier phases (so `losses` x keeps growing across phases). */
  itersBefore: number;
}

export function newTrainView(phaseEpochs: number[]): TrainView {
  return { stage: '', message: 'Starting…', notes: [], phaseIndex: -1, phaseCount: phaseEpochs.length, phaseEpochs, iter: 0, totalIters: 0, batchesPerEpoch: 0, imagesPerSecond: 0, etaSeconds: NaN, losses: [], rows: [], lrPoints: [], lrNumIt: 100, itersBefore: 0 };
}

/** Folds one event into the view (returns a new object, so Svelte sees the change). */
export function applyTrainEvent(view: TrainView, e: TrainEventDto): TrainView {
  switch (e.type) {
    case 'stage':
      return { ...view, stage: e.stage, message: e.message, validation: undefined };
    case 'note':
      return { ...view, notes: [...view.notes, e.message].slice(-50) };
    case 'prepare':
      return { ...view, prepare: { done: e.done, total: e.total } };
    case 'features':
      return { ...view, features: { done: e.done, total: e.total } };
    case 'fit-start':
      return {
        ...view,
        phase: e.phase,
        phaseIndex: view.phaseIndex + 1,
        itersBefore: view.itersBefore + view.totalIters,
        iter: 0,
        totalIters: e.epochs * e.batchesPerEpoch,
        batchesPerEpoch: e.batchesPerEpoch,
        etaSeconds: NaN,
        message: e.phase === 'frozen' ? 'Training the new head (body frozen)' : e.phase === 'unfrozen' ? 'Fine-tuning the whole network' : e.phase === 'quick' ? 'Training the new head on cached features' : 'Training',
      };
    case 'batch':
      return {
        ...view,
        iter: e.iter,
        totalIters: e.totalIters,
        imagesPerSecond: e.imagesPerSecond,
        etaSeconds: e.etaSeconds,
        validation: undefined,
        losses: [...view.losses, { x: view.itersBefore + e.iter, y: e.smoothLoss }],
      };
    case 'validation':
      return { ...view, validation: { done: e.done, total: e.total } };
    case 'epoch':
      return { ...view, rows: [...view.rows, e.row], validation: undefined };
    case 'lr-find':
      return { ...view, lrPoints: [...view.lrPoints, e.point], lrNumIt: e.numIt, iter: e.iter + 1, totalIters: e.numIt };
  }
}

/** 0..1 over the whole run: decoding counts a little, each phase its share of the batches. */
export function trainFraction(view: TrainView): number {
  if (view.phaseIndex < 0) return view.prepare && view.prepare.total > 0 ? 0.05 * (view.prepare.done / view.prepare.total) : 0;
  const total = view.phaseEpochs.reduce((a, b) => a + b, 0) || 1;
  const before = view.phaseEpochs.slice(0, view.phaseIndex).reduce((a, b) => a + b, 0);
  const current = view.phaseEpochs[view.phaseIndex] ?? 0;
  const within = view.totalIters > 0 ? view.iter / view.totalIters : 0;
  return Math.min(1, 0.05 + (0.95 * (before + current * within)) / total);
}

/** The rows of one phase, as fastai prints one table per fit. */
export function rowsByPhase(rows: EpochRowDto[]): { phase: EpochRowDto['phase']; rows: EpochRowDto[] }[] {
  const out: { phase: EpochRowDto['phase']; rows: EpochRowDto[] }[] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last && last.phase === r.phase) last.rows.push(r);
    else out.push({ phase: r.phase, rows: [r] });
  }
  return out;
}

/** A fresh id for a job (the host keys progress events and cancel by it). */
export function newJobId(prefix: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `${prefix}-${Date.now().toString(36)}-${rand}`;
}
