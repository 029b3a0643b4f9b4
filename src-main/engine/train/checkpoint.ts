/**
 * Model weights (and optionally optimizer state) on disk: a JSON manifest plus one float32 blob,
 * written to a temporary folder and renamed into place, so a crash mid-write never leaves a
 * checkpoint that looks whole. Weights are matched by position and checked by shape (TF.js
 * renames variables that repeat within a process, so names are informative only).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';

export interface TensorRecord {
  name: string;
  shape: number[];
  /** Offset in floats into the blob. */
  offset: number;
}

export interface CheckpointManifest<Meta> {
  format: 'finetune-studio-checkpoint';
  version: 1;
  weights: TensorRecord[];
  /** Optimizer moments, by parameter position; absent for a plain model save. */
  optimizer?: { param: number; step: number; avg: TensorRecord; sqr: TensorRecord }[];
  meta: Meta;
}

export interface OptimizerTensors {
  param: number;
  step: number;
  avg: Float32Array;
  sqr: Float32Array;
  shape: number[];
}

const MANIFEST = 'checkpoint.json';
const BLOB = 'checkpoint.bin';

export async function saveCheckpoint<Meta>(dir: string, weights: tf.LayerVariable[], meta: Meta, optimizer?: OptimizerTensors[]): Promise<void> {
  const chunks: Float32Array[] = [];
  let offset = 0;
  const record = (name: string, shape: number[], data: Float32Array): TensorRecord => {
    chunks.push(data);
    const r = { name, shape, offset };
    offset += data.length;
    return r;
  };
  const weightRecords: TensorRecord[] = [];
  for (const w of weights) weightRecords.push(record(w.name, w.shape as number[], (await w.read().data()) as Float32Array));
  const optRecords = optimizer?.map((o) => ({
    param: o.param,
    step: o.step,
    avg: record(`${o.param}/avg`, o.shape, o.avg),
    sqr: record(`${o.param}/sqr`, o.shape, o.sqr),
  }));
  const manifest: CheckpointManifest<Meta> = { format: 'finetune-studio-checkpoint', version: 1, weights: weightRecords, ...(optRecords ? { optimizer: optRecords } : {}), meta };

  const blob = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) {
    blob.set(c, at);
    at += c.length;
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await fs.writeFile(path.join(tmp, BLOB), new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength));
  await fs.writeFile(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 1));
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
}

export interface LoadedCheckpoint<Meta> {
  manifest: CheckpointManifest<Meta>;
  optimizer: OptimizerTensors[];
}

export async function readCheckpointMeta<Meta>(dir: string): Promise<CheckpointManifest<Meta> | undefined> {
  try {
    const manifest = JSON.parse(await fs.readFile(path.join(dir, MANIFEST), 'utf8')) as CheckpointManifest<Meta>;
    return manifest.format === 'finetune-studio-checkpoint' ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the saved weights into `weights` (same architecture, same order); returns meta and optimizer state. */
export async function loadCheckpoint<Meta>(dir: string, weights: tf.LayerVariable[]): Promise<LoadedCheckpoint<Meta>> {
  const manifest = await readCheckpointMeta<Meta>(dir);
  if (!manifest) throw new Error(`${dir} holds no Finetune Studio checkpoint (missing or unreadable ${MANIFEST}).`);
  const bytes = await fs.readFile(path.join(dir, BLOB));
  const blob = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const slice = (r: TensorRecord) => {
    const n = r.shape.reduce((a, b) => a * b, 1);
    if (r.offset + n > blob.length) throw new Error(`Checkpoint ${dir} is truncated (tensor ${r.name}).`);
    return blob.subarray(r.offset, r.offset + n);
  };
  if (manifest.weights.length !== weights.length) {
    throw new Error(`Checkpoint ${dir} has ${manifest.weights.length} tensors but the model has ${weights.length}: it was saved from a different architecture.`);
  }
  const tfjs = await import('@tensorflow/tfjs');
  manifest.weights.forEach((r, i) => {
    const target = weights[i];
    if (r.shape.join('x') !== (target.shape as number[]).join('x')) {
      throw new Error(`Checkpoint tensor ${r.name} has shape [${r.shape}] but the model's ${target.name} is [${target.shape}]: different architecture or class count.`);
    }
    const t = tfjs.tensor(slice(r), r.shape);
    target.write(t);
    t.dispose();
  });
  const optimizer = (manifest.optimizer ?? []).map((o) => ({ param: o.param, step: o.step, shape: o.avg.shape, avg: slice(o.avg).slice(), sqr: slice(o.sqr).slice() }));
  return { manifest, optimizer };
}
