/**
 * Payload validation for every request channel. Electron main and the web host run these on
 * whatever arrives (from a possibly compromised renderer, or any process that found the port)
 * before anything else happens: unknown channels, unknown keys, wrong types, absurd numbers and
 * over-long strings are refused with a message naming the field. Pure code, no Node imports.
 */
import { CHANNELS, LIMITS, type Api, type Channel, type DatasetSpec, type ImageRef, type LabelRuleDto, type SplitDto, type TrainSettings } from './contract.js';

export class PayloadError extends Error {
  override name = 'PayloadError';
}

type Obj = Record<string, unknown>;

function fail(field: string, what: string): never {
  throw new PayloadError(`Invalid request: ${field} ${what}.`);
}

function obj(v: unknown, field: string, allowed: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'must be an object');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(`${field}.${k}`, 'is not a known field');
  return v as Obj;
}

function str(v: unknown, field: string, { max = 1000, min = 0, pattern }: { max?: number; min?: number; pattern?: RegExp } = {}): string {
  if (typeof v !== 'string') fail(field, 'must be a string');
  if (v.length < min) fail(field, min === 1 ? 'must not be empty' : `must have at least ${min} characters`);
  if (v.length > max) fail(field, `must have at most ${max} characters`);
  if (v.includes('\0')) fail(field, 'must not contain NUL characters');
  if (pattern && !pattern.test(v)) fail(field, `has an unexpected form`);
  return v;
}

function num(v: unknown, field: string, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(field, 'must be a finite number');
  if (integer && !Number.isInteger(v)) fail(field, 'must be a whole number');
  if (v < min || v > max) fail(field, `must be between ${min} and ${max}`);
  return v;
}

const path = (v: unknown, field: string) => str(v, field, { min: 1, max: LIMITS.pathLength });
const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const jobId = (v: unknown, field = 'jobId') => str(v, field, { pattern: JOB_ID, max: 64 });
/** Run ids are folder names the host created: no separators, no dots at the start. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const runId = (v: unknown) => str(v, 'runId', { pattern: RUN_ID, max: 100 });
const ARCH = /^[a-z0-9_.]{1,40}$/;

export function validateLabelRule(v: unknown, field = 'label'): LabelRuleDto {
  const o = obj(v, field, ['kind', 'pattern', 'csvPath']);
  switch (o.kind) {
    case 'is-cat':
    case 'folder':
      obj(v, field, ['kind']);
      return { kind: o.kind };
    case 'regex':
      obj(v, field, ['kind', 'pattern']);
      return { kind: 'regex', pattern: str(o.pattern, `${field}.pattern`, { min: 1, max: 500 }) };
    case 'csv':
      obj(v, field, ['kind', 'csvPath']);
      return { kind: 'csv', csvPath: path(o.csvPath, `${field}.csvPath`) };
    default:
      fail(`${field}.kind`, 'must be one of is-cat, folder, regex, csv');
  }
}

export function validateSplit(v: unknown, field = 'split'): SplitDto {
  const o = obj(v, field, ['kind', 'validPct', 'seed', 'trainName', 'validName']);
  if (o.kind === 'random') {
    obj(v, field, ['kind', 'validPct', 'seed']);
    return { kind: 'random', validPct: num(o.validPct, `${field}.validPct`, 0, 0.95), seed: num(o.seed, `${field}.seed`, 0, 0xffffffff, true) };
  }
  if (o.kind === 'folder') {
    obj(v, field, ['kind', 'trainName', 'validName']);
    const name = /^[^/\\]+$/;
    return { kind: 'folder', trainName: str(o.trainName, `${field}.trainName`, { min: 1, max: 200, pattern: name }), validName: str(o.validName, `${field}.validName`, { min: 1, max: 200, pattern: name }) };
  }
  fail(`${field}.kind`, 'must be random or folder');
}

export function validateDataset(v: unknown, field = 'dataset'): DatasetSpec {
  const o = obj(v, field, ['root', 'label', 'split']);
  return { root: path(o.root, `${field}.root`), label: validateLabelRule(o.label, `${field}.label`), split: validateSplit(o.split, `${field}.split`) };
}

export function validateSettings(v: unknown, field = 'settings'): TrainSettings {
  const o = obj(v, field, ['dataset', 'arch', 'size', 'epochs', 'freezeEpochs', 'baseLr', 'seed', 'mode', 'quickEpochs']);
  const settings: TrainSettings = {
    dataset: validateDataset(o.dataset, `${field}.dataset`),
    arch: str(o.arch, `${field}.arch`, { pattern: ARCH, max: 40 }),
    size: num(o.size, `${field}.size`, 32, 1024, true),
    epochs: num(o.epochs, `${field}.epochs`, 0, 1000, true),
    freezeEpochs: num(o.freezeEpochs, `${field}.freezeEpochs`, 0, 1000, true),
    baseLr: num(o.baseLr, `${field}.baseLr`, 1e-8, 10),
    seed: num(o.seed, `${field}.seed`, 0, 0xffffffff, true),
  };
  if (o.mode !== undefined) {
    if (o.mode !== 'fastai' && o.mode !== 'quick') fail(`${field}.mode`, 'must be fastai or quick');
    settings.mode = o.mode;
  }
  if (o.quickEpochs !== undefined) settings.quickEpochs = num(o.quickEpochs, `${field}.quickEpochs`, 1, 1000, true);
  if (settings.mode === 'quick') return settings;
  if (settings.epochs + settings.freezeEpochs === 0) fail(`${field}.epochs`, 'and freezeEpochs must add up to at least 1');
  return settings;
}

function imageRef(v: unknown, field: string): ImageRef {
  const o = obj(v, field, ['kind', 'path', 'id']);
  if (o.kind === 'path') {
    obj(v, field, ['kind', 'path']);
    return { kind: 'path', path: path(o.path, `${field}.path`) };
  }
  if (o.kind === 'upload') {
    obj(v, field, ['kind', 'id']);
    return { kind: 'upload', id: str(o.id, `${field}.id`, { pattern: /^[a-f0-9-]{36}$/ }) };
  }
  fail(`${field}.kind`, 'must be path or upload');
}

const empty = (v: unknown, field = 'payload') => (obj(v ?? {}, field, []), {} as Record<string, never>);

type Validators = { [C in Channel]: (payload: unknown) => Api[C][0] };

const VALIDATORS: Validators = {
  'app:info': (p) => empty(p),
  'backend:get': (p) => empty(p),
  'label-rules:list': (p) => empty(p),
  'datasets:list': (p) => empty(p),
  'datasets:get': (p) => {
    const o = obj(p, 'payload', ['jobId', 'id']);
    return { jobId: jobId(o.jobId), id: str(o.id, 'id', { pattern: /^[a-z0-9-]{1,40}$/ }) };
  },
  'folder:pick': (p) => {
    const o = obj(p ?? {}, 'payload', ['title']);
    return o.title === undefined ? {} : { title: str(o.title, 'title', { max: 200 }) };
  },
  'folder:check': (p) => ({ path: path(obj(p, 'payload', ['path']).path, 'path') }),
  'dataset:scan': (p) => {
    const o = obj(p, 'payload', ['jobId', 'dataset']);
    return { jobId: jobId(o.jobId), dataset: validateDataset(o.dataset) };
  },
  'dataset:preview': (p) => {
    const o = obj(p, 'payload', ['jobId', 'dataset', 'size', 'count', 'epoch']);
    return {
      jobId: jobId(o.jobId),
      dataset: validateDataset(o.dataset),
      size: num(o.size, 'size', 32, 1024, true),
      count: num(o.count, 'count', 1, 64, true),
      epoch: num(o.epoch, 'epoch', 0, 1_000_000, true),
    };
  },
  'models:list': (p) => empty(p),
  'weights:get': (p) => {
    const o = obj(p, 'payload', ['jobId', 'arch']);
    return { jobId: jobId(o.jobId), arch: str(o.arch, 'arch', { pattern: ARCH, max: 40 }) };
  },
  'lr:find': (p) => {
    const o = obj(p, 'payload', ['jobId', 'settings']);
    return { jobId: jobId(o.jobId), settings: validateSettings(o.settings) };
  },
  'train:start': (p) => {
    const o = obj(p, 'payload', ['jobId', 'settings']);
    return { jobId: jobId(o.jobId), settings: validateSettings(o.settings) };
  },
  'job:cancel': (p) => ({ jobId: jobId(obj(p, 'payload', ['jobId']).jobId) }),
  'runs:list': (p) => empty(p),
  'runs:get': (p) => ({ runId: runId(obj(p, 'payload', ['runId']).runId) }),
  'runs:top-losses': (p) => {
    const o = obj(p, 'payload', ['jobId', 'runId', 'count']);
    return { jobId: jobId(o.jobId), runId: runId(o.runId), count: num(o.count, 'count', 1, 64, true) };
  },
  'predict:images': (p) => {
    const o = obj(p, 'payload', ['jobId', 'runId', 'images']);
    if (!Array.isArray(o.images)) fail('images', 'must be a list');
    if (o.images.length < 1 || o.images.length > LIMITS.predictImages) fail('images', `must hold 1 to ${LIMITS.predictImages} images`);
    return { jobId: jobId(o.jobId), runId: runId(o.runId), images: o.images.map((v, i) => imageRef(v, `images[${i}]`)) };
  },
  'export:run': (p) => {
    const o = obj(p, 'payload', ['jobId', 'runId', 'format', 'outDir']);
    if (o.format !== 'tfjs' && o.format !== 'onnx') fail('format', 'must be tfjs or onnx');
    return { jobId: jobId(o.jobId), runId: runId(o.runId), format: o.format, ...(o.outDir === undefined ? {} : { outDir: path(o.outDir, 'outDir') }) };
  },
  'shell:show': (p) => ({ path: path(obj(p, 'payload', ['path']).path, 'path') }),
};

export function isChannel(v: unknown): v is Channel {
  return typeof v === 'string' && (CHANNELS as readonly string[]).includes(v);
}

/** Checks a channel name and its payload; returns the payload with only known fields. */
export function validateRequest<C extends Channel>(channel: unknown, payload: unknown): { channel: C; payload: Api[C][0] } {
  if (!isChannel(channel)) throw new PayloadError(`Invalid request: unknown channel ${JSON.stringify(String(channel)).slice(0, 80)}.`);
  return { channel: channel as C, payload: VALIDATORS[channel](payload) as Api[C][0] };
}
