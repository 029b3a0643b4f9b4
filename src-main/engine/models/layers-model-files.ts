/**
 * TF.js LayersModel files (model.json + binary weight shards, as tfjs-models and Teachable Machine
 * publish them) read from disk. The pure-JS `@tensorflow/tfjs` package only knows browser and HTTP
 * loaders, and tfjs-node's `file://` handler is an optional native dependency, so this is a small
 * `tf.io.IOHandler` over `fs`: it is how cached downloads and user-supplied local folders load.
 */
import * as tf from '@tensorflow/tfjs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export interface ModelJson {
  modelTopology: unknown;
  weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  trainingConfig?: tf.io.TrainingConfig;
  userDefinedMetadata?: Record<string, unknown>;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, float16: 2, uint8: 1, uint16: 2, int8: 1, int16: 2 };

/** Bytes a manifest entry occupies in its shard (quantized weights are stored in their quantized dtype). */
function entryBytes(w: tf.io.WeightsManifestEntry): number {
  const dtype = w.quantization?.dtype ?? w.dtype;
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) throw new Error(`weight "${w.name}" has dtype ${dtype}, which this loader does not handle`);
  return w.shape.reduce((a, b) => a * b, 1) * size;
}

export function parseModelJson(text: string, source: string): ModelJson {
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (err) {
    throw new Error(`${source} is not valid JSON (${(err as Error).message}); it is damaged or not a TF.js model.json`);
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${source} is not a TF.js LayersModel model.json (needs "modelTopology" and "weightsManifest")`);
  }
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      // Shard paths are relative to model.json; refuse ones that would escape its folder.
      if (path.isAbsolute(p) || p.split(/[\\/]/).includes('..') || /^[a-z]+:/i.test(p)) {
        throw new Error(`${source} names the weight shard "${p}", which is not a plain relative path`);
      }
    }
  }
  return json;
}

export interface ShardGroup {
  paths: string[];
  /** Bytes the group's weight entries need; the group's shard files must add up to exactly this. */
  bytes: number;
}

export function shardGroups(json: ModelJson): ShardGroup[] {
  return json.weightsManifest.map((g) => ({ paths: g.paths, bytes: g.weights.reduce((n, w) => n + entryBytes(w), 0) }));
}

/**
 * Checks that every shard exists and each group's shards hold exactly the bytes its manifest
 * describes: catches truncated or missing downloads before TF.js reads garbage.
 */
export async function verifyLayersModelFolder(modelJsonPath: string): Promise<{ json: ModelJson; weightBytes: number }> {
  const json = parseModelJson(await readFile(modelJsonPath, 'utf8'), modelJsonPath);
  const dir = path.dirname(modelJsonPath);
  let weightBytes = 0;
  for (const group of shardGroups(json)) {
    let have = 0;
    for (const p of group.paths) {
      const file = path.join(dir, p);
      const s = await stat(file).catch(() => undefined);
      if (!s?.isFile()) throw new Error(`weight shard ${file} (listed in ${modelJsonPath}) is missing`);
      have += s.size;
    }
    if (have !== group.bytes) {
      throw new Error(`weight shards ${group.paths.map((p) => path.join(dir, p)).join(', ')} hold ${have} bytes but ${modelJsonPath} describes ${group.bytes}; the download is incomplete or the files do not belong together`);
    }
    weightBytes += have;
  }
  return { json, weightBytes };
}

export interface ReadArtifactsOptions {
  /** Replace the square input size recorded in the topology (e.g. run a 224 model at 128). */
  inputSize?: number;
}

/**
 * Rewrites every 4-D `batch_input_shape` ([null, H, W, C]) in a Keras topology to a new square size.
 * MobileNets are fully convolutional up to their global pooling, so their weights fit any size.
 */
export function withInputSize(topology: unknown, size: number): unknown {
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (!node || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      out[k] = k === 'batch_input_shape' && Array.isArray(v) && v.length === 4 ? [v[0], size, size, v[3]] : visit(v);
    }
    return out;
  };
  return visit(topology);
}

/** Reads model.json and its shards into the artifacts `tf.loadLayersModel` takes. */
export async function readLayersModelArtifacts(modelJsonPath: string, options: ReadArtifactsOptions = {}): Promise<tf.io.ModelArtifacts> {
  const { json } = await verifyLayersModelFolder(modelJsonPath);
  const dir = path.dirname(modelJsonPath);
  const buffers: Uint8Array[] = [];
  for (const group of json.weightsManifest) for (const p of group.paths) buffers.push(await readFile(path.join(dir, p)));
  // One contiguous buffer in manifest order, which is the order of `weightSpecs`.
  const total = buffers.reduce((n, b) => n + b.length, 0);
  const weightData = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    weightData.set(b, offset);
    offset += b.length;
  }
  const topology = options.inputSize ? withInputSize(json.modelTopology, options.inputSize) : json.modelTopology;
  return {
    modelTopology: topology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: weightData.buffer,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy ?? undefined,
    trainingConfig: json.trainingConfig,
    userDefinedMetadata: json.userDefinedMetadata as tf.io.ModelArtifacts['userDefinedMetadata'],
  };
}

/** An IOHandler for `tf.loadLayersModel(fileSystemLayersModel('…/model.json'))`. */
export function fileSystemLayersModel(modelJsonPath: string, options: ReadArtifactsOptions = {}): tf.io.IOHandler {
  return { load: () => readLayersModelArtifacts(modelJsonPath, options) };
}

/** Loads a LayersModel from a model.json path (or the folder holding one). */
export async function loadLayersModelFromDisk(location: string, options: ReadArtifactsOptions = {}): Promise<tf.LayersModel> {
  const s = await stat(location).catch(() => undefined);
  if (!s) throw new Error(`TF.js model not found at ${location}`);
  const modelJson = s.isDirectory() ? path.join(location, 'model.json') : location;
  return tf.loadLayersModel(fileSystemLayersModel(modelJson, options));
}
