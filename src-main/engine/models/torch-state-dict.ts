/**
 * Loads a PyTorch state dict (torchvision/timm key layout) into a TF.js model whose layer names are the
 * state-dict prefixes (see resnet.ts), strictly: every missing, unexpected or mis-shaped tensor is an
 * error that names it, so a wrong checkpoint can never half-load.
 *
 * Layout conversions:
 * - Conv2d weight OIHW -> Conv2D kernel HWIO (TF.js is channels-last).
 * - Linear weight [out, in] -> Dense kernel [in, out].
 * - BatchNorm weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance;
 *   `num_batches_tracked` is a counter, not a weight: accepted and ignored.
 */
import * as tf from '@tensorflow/tfjs';
import type { SafetensorsFile } from './safetensors.js';

type Transform = 'OIHW->HWIO' | 'OI->IO' | 'none';

export interface TensorAssignment {
  key: string;
  /** Shape the checkpoint must have (PyTorch layout). */
  torchShape: number[];
  variable: tf.LayerVariable;
  transform: Transform;
}

export interface StateDictPlan {
  assignments: TensorAssignment[];
  /** Keys that are accepted but carry nothing to load (BatchNorm's `num_batches_tracked`). */
  counters: string[];
}

/** The role of a weight inside its layer: the part of its name after the last '/'. */
function role(v: tf.LayerVariable): string {
  const name = v.originalName;
  return name.slice(name.lastIndexOf('/') + 1);
}

/** Leaf layers, looking inside nested models (a composite model holds the body as one layer). */
export function leafLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  const visit = (layer: tf.layers.Layer) => {
    const inner = (layer as unknown as { layers?: tf.layers.Layer[] }).layers;
    if (Array.isArray(inner)) inner.forEach(visit);
    else out.push(layer);
  };
  model.layers.forEach(visit);
  return out;
}

/** Which state-dict keys a model expects, with their PyTorch shapes. Throws for layers it cannot map. */
export function planStateDict(model: tf.LayersModel): StateDictPlan {
  const assignments: TensorAssignment[] = [];
  const counters: string[] = [];
  for (const layer of leafLayers(model)) {
    if (layer.weights.length === 0) continue;
    const cls = layer.getClassName();
    for (const v of layer.weights) {
      const r = role(v);
      const s = v.shape as number[];
      const add = (suffix: string, torchShape: number[], transform: Transform) =>
        assignments.push({ key: `${layer.name}.${suffix}`, torchShape, variable: v, transform });
      if (cls === 'Conv2D' && r === 'kernel') add('weight', [s[3], s[2], s[0], s[1]], 'OIHW->HWIO');
      else if ((cls === 'Conv2D' || cls === 'Dense') && r === 'bias') add('bias', s, 'none');
      else if (cls === 'Dense' && r === 'kernel') add('weight', [s[1], s[0]], 'OI->IO');
      else if (cls === 'BatchNormalization' && r === 'gamma') add('weight', s, 'none');
      else if (cls === 'BatchNormalization' && r === 'beta') add('bias', s, 'none');
      else if (cls === 'BatchNormalization' && r === 'moving_mean') add('running_mean', s, 'none');
      else if (cls === 'BatchNormalization' && r === 'moving_variance') add('running_var', s, 'none');
      else throw new Error(`No PyTorch mapping for weight "${v.originalName}" of ${cls} layer "${layer.name}"`);
    }
    if (cls === 'BatchNormalization') counters.push(`${layer.name}.num_batches_tracked`);
  }
  return { assignments, counters };
}

export interface CheckpointTensorInfo {
  shape: number[];
  /** false for integer/bool tensors the reader did not decode. */
  float: boolean;
}

export interface MatchOptions {
  /**
   * Key prefixes present in the checkpoint but deliberately not loaded, e.g. `['fc.']` when the
   * ImageNet classifier is cut off for fine-tuning. Anything else left over is an error.
   */
  dropPrefixes?: string[];
  /** Names the checkpoint in errors (its file path). */
  source?: string;
  /** Names the model in errors. */
  target?: string;
}

const MAX_LISTED = 12;

function listProblems(title: string, items: string[]): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, MAX_LISTED).join('; ');
  const more = items.length > MAX_LISTED ? `; … and ${items.length - MAX_LISTED} more` : '';
  return `\n  ${title} (${items.length}): ${shown}${more}`;
}

/**
 * Checks a checkpoint's tensor names and shapes against a plan without touching any data.
 * Used by the loader and, from `*.state_dict_shapes.json`, by tests of real checkpoints.
 */
export function matchStateDict(plan: StateDictPlan, checkpoint: Map<string, CheckpointTensorInfo>, options: MatchOptions = {}): void {
  const source = options.source ?? 'checkpoint';
  const target = options.target ?? 'model';
  const drop = options.dropPrefixes ?? [];
  const missing: string[] = [];
  const misShaped: string[] = [];
  const wanted = new Set<string>();
  for (const a of plan.assignments) {
    wanted.add(a.key);
    const t = checkpoint.get(a.key);
    if (!t) missing.push(`${a.key} [${a.torchShape}]`);
    else if (!t.float) misShaped.push(`${a.key} is an integer tensor, expected float [${a.torchShape}]`);
    else if (t.shape.length !== a.torchShape.length || t.shape.some((d, i) => d !== a.torchShape[i])) {
      misShaped.push(`${a.key} has shape [${t.shape}], expected [${a.torchShape}]`);
    }
  }
  for (const c of plan.counters) wanted.add(c);
  const unexpected = [...checkpoint.keys()].filter((k) => !wanted.has(k) && !drop.some((p) => k.startsWith(p)));
  if (missing.length + misShaped.length + unexpected.length === 0) return;
  throw new Error(
    `Cannot load ${source} into ${target}: the checkpoint does not match the architecture.` +
      listProblems('missing tensors', missing) +
      listProblems('wrong shape', misShaped) +
      listProblems('unexpected tensors', unexpected) +
      `\n  Use a torchvision/timm state dict of the same architecture (keys like "layer1.0.conv1.weight").`,
  );
}

export function checkpointInfo(file: SafetensorsFile): Map<string, CheckpointTensorInfo> {
  const info = new Map<string, CheckpointTensorInfo>();
  for (const [name, t] of file.tensors) info.set(name, { shape: t.shape, float: true });
  for (const s of file.skipped) info.set(s.name, { shape: s.shape, float: false });
  return info;
}

export interface LoadReport {
  loaded: number;
  /** Checkpoint keys intentionally not loaded (matched `dropPrefixes`). */
  dropped: string[];
  parameters: number;
}

/** Validates the whole checkpoint first, then writes every tensor into the model. */
export function loadStateDict(model: tf.LayersModel, file: SafetensorsFile, options: Omit<MatchOptions, 'source'> = {}): LoadReport {
  const plan = planStateDict(model);
  const info = checkpointInfo(file);
  matchStateDict(plan, info, { ...options, source: file.source, target: options.target ?? model.name });
  let parameters = 0;
  for (const a of plan.assignments) {
    const t = file.tensors.get(a.key)!;
    tf.tidy(() => {
      const value = tf.tensor(t.data, t.shape, 'float32');
      // HWIO from OIHW: kernel[h][w][i][o] = weight[o][i][h][w].
      const converted = a.transform === 'OIHW->HWIO' ? value.transpose([2, 3, 1, 0]) : a.transform === 'OI->IO' ? value.transpose([1, 0]) : value;
      a.variable.write(converted);
    });
    parameters += t.data.length;
  }
  const drop = options.dropPrefixes ?? [];
  const dropped = [...info.keys()].filter((k) => drop.some((p) => k.startsWith(p)));
  return { loaded: plan.assignments.length, dropped, parameters };
}
