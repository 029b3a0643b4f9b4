/**
 * `vision_learner(dls, arch)`'s model: a pretrained body with its classifier cut off, and fastai's head.
 *
 * The returned model takes images already normalised with `preprocessing` (channels-last,
 * `[batch, h, w, 3]`, `(x/255 - mean) / std`) and returns unnormalised class scores. Normalisation
 * stays outside the model, as in fastai (a batch transform), so the data pipeline can do it once while
 * packing a batch and the model's graph is exactly the PyTorch one.
 *
 * `paramGroups` are fastai's three groups for discriminative learning rates and freezing: two body
 * groups (see the catalogue for what each holds) and the head. Each lists its layers and its
 * trainable variables as they were at creation (freezing a layer with `layer.trainable = false` later
 * does not change the lists). fastai trains BatchNorm layers even in a frozen body (`train_bn=True`):
 * `isBatchNorm` tells them apart.
 */
import * as tf from '@tensorflow/tfjs';
import type { Normalization } from '../data/normalize.js';
import { catalogueEntry, type ArchId, type CatalogueEntry } from './catalogue.js';
import { createFastaiHead, type FastaiHeadOptions } from './fastai-head.js';
import { loadLayersModelFromDisk } from './layers-model-files.js';
import { cutAtLayer, mobilenetBodyGroup } from './mobilenet.js';
import { buildResNet, RESNET_CONFIGS, resnetBody, resnetBodyGroup, type ResNetArch } from './resnet.js';
import { readSafetensors } from './safetensors.js';
import { useLazyConvGradients } from './lazy-conv-gradients.js';
import { useFastBatchNormTraining } from './training-batch-norm.js';
import { useRelu6Training } from './training-relu6.js';
import { usePaddedPoolsWhileTraining } from './training-padding.js';
import { leafLayers, loadStateDict } from './torch-state-dict.js';
import { resolveLocalWeights, resolveWeights, type ResolvedWeights, type WeightStoreOptions } from './weight-store.js';

export type WeightsChoice =
  /** The catalogue's ImageNet weights: local folder, cache, or a download (see weight-store.ts). */
  | 'imagenet'
  /** Fresh torchvision-style initialisation (ResNets only; MobileNets exist here only as pretrained files). */
  | 'random'
  /** A specific weights file or folder. */
  | { path: string };

export interface CreateModelOptions {
  arch: ArchId | string;
  numClasses: number;
  weights?: WeightsChoice;
  /**
   * Side of the square input. Default: the catalogue's (224). ResNets accept any size at run time
   * (their model input is [null, null, 3]); MobileNets are built for exactly this size.
   */
  inputSize?: number;
  /** Cache, mirror, progress and cancel options for fetching 'imagenet' weights. */
  store?: WeightStoreOptions;
  head?: Pick<FastaiHeadOptions, 'linFeatures' | 'ps' | 'concatPool' | 'firstBn' | 'seed'>;
  /** Seed for a random body (weights: 'random'). */
  seed?: number;
}

export interface ParamGroup {
  name: string;
  layers: tf.layers.Layer[];
  params: tf.LayerVariable[];
}

export interface FinetuneModel {
  arch: ArchId;
  entry: CatalogueEntry;
  /** body then head: normalised images -> class scores. */
  model: tf.LayersModel;
  /** normalised images -> feature map [batch, h, w, numFeatures]. */
  body: tf.LayersModel;
  /** feature map -> class scores. */
  head: tf.LayersModel;
  paramGroups: [ParamGroup, ParamGroup, ParamGroup];
  preprocessing: Normalization;
  inputSize: number;
  numFeatures: number;
  weights: ResolvedWeights | { source: 'random' };
  /** Frees every weight of body and head. */
  dispose(): void;
}

export function isBatchNorm(layer: tf.layers.Layer): boolean {
  return layer.getClassName() === 'BatchNormalization';
}

async function weightsPath(entry: CatalogueEntry, choice: WeightsChoice, store: WeightStoreOptions | undefined): Promise<ResolvedWeights> {
  if (choice === 'imagenet') return resolveWeights(entry, store);
  if (choice === 'random') throw new Error('random weights have no file');
  // An explicit path is the only source: never fall back to downloading something else.
  return resolveLocalWeights(entry, choice.path);
}

interface Body {
  body: tf.LayersModel;
  weights: FinetuneModel['weights'];
}

async function resnetBodyFor(entry: CatalogueEntry, o: CreateModelOptions): Promise<Body> {
  const graph = buildResNet(RESNET_CONFIGS[entry.arch as ResNetArch], { seed: o.seed });
  const body = resnetBody(graph);
  const choice = o.weights ?? 'imagenet';
  if (choice === 'random') return { body, weights: { source: 'random' } };
  try {
    const resolved = await weightsPath(entry, choice, o.store);
    const file = await readSafetensors(resolved.path);
    // The checkpoint's ImageNet classifier (fc.*) is exactly what fine-tuning replaces.
    loadStateDict(body, file, { dropPrefixes: entry.classifierPrefixes, target: `${entry.arch} body` });
    return { body, weights: resolved };
  } catch (err) {
    body.dispose(); // frees the freshly initialised weights of a model that will never be used
    throw err;
  }
}

async function mobilenetBodyFor(entry: CatalogueEntry, o: CreateModelOptions, inputSize: number): Promise<Body> {
  const choice = o.weights ?? 'imagenet';
  if (choice === 'random') {
    throw new Error(`${entry.arch} is only available with its pretrained weights (its architecture comes from the weights' model.json)`);
  }
  const resolved = await weightsPath(entry, choice, o.store);
  const full = await loadLayersModelFromDisk(resolved.path, { inputSize });
  let body: tf.LayersModel;
  try {
    body = cutAtLayer(full, entry.featureLayer!);
  } catch (err) {
    full.dispose();
    throw err;
  }
  // Free the layers past the cut (v1 files carry their 1000-class classifier).
  const kept = new Set(leafLayers(body));
  for (const layer of leafLayers(full)) if (!kept.has(layer) && layer.weights.length > 0) layer.dispose();
  return { body, weights: resolved };
}

function bodyGroupOf(entry: CatalogueEntry, layerName: string): 0 | 1 {
  const group = entry.family === 'resnet' ? resnetBodyGroup(layerName) : mobilenetBodyGroup(entry.family === 'mobilenet_v1' ? 1 : 2, layerName);
  if (group === undefined) throw new Error(`Layer "${layerName}" of ${entry.arch} fits none of its parameter groups; the model file is not the expected architecture`);
  return group;
}

function paramGroups(entry: CatalogueEntry, body: tf.LayersModel, head: tf.LayersModel): FinetuneModel['paramGroups'] {
  const groups: FinetuneModel['paramGroups'] = [
    { name: entry.layerGroups[0], layers: [], params: [] },
    { name: entry.layerGroups[1], layers: [], params: [] },
    { name: entry.layerGroups[2], layers: [], params: [] },
  ];
  const add = (g: ParamGroup, layer: tf.layers.Layer) => {
    g.layers.push(layer);
    g.params.push(...layer.trainableWeights);
  };
  for (const layer of leafLayers(body)) if (layer.weights.length > 0) add(groups[bodyGroupOf(entry, layer.name)], layer);
  for (const layer of leafLayers(head)) if (layer.weights.length > 0) add(groups[2], layer);
  return groups;
}

export async function createModel(o: CreateModelOptions): Promise<FinetuneModel> {
  const entry = catalogueEntry(o.arch);
  const inputSize = o.inputSize ?? entry.inputSize;
  if (!Number.isInteger(inputSize) || inputSize < 32) throw new Error(`inputSize must be an integer of at least 32, got ${inputSize}`);
  const { body, weights } = entry.family === 'resnet' ? await resnetBodyFor(entry, o) : await mobilenetBodyFor(entry, o, inputSize);
  const numFeatures = (body.outputs[0].shape as number[])[3];
  if (numFeatures !== entry.numFeatures) {
    body.dispose();
    throw new Error(`${entry.arch} body outputs ${numFeatures} channels, the catalogue expects ${entry.numFeatures}: the weights file is a different model`);
  }
  const head = createFastaiHead({ ...o.head, numFeatures, numClasses: o.numClasses });
  // Training-time forms of four layer types (same maths, cheaper passes; see each module).
  useLazyConvGradients(leafLayers(body));
  usePaddedPoolsWhileTraining(leafLayers(body));
  useFastBatchNormTraining([...leafLayers(body), ...leafLayers(head)]);
  useRelu6Training(leafLayers(body));
  const side = entry.family === 'resnet' ? null : inputSize;
  const input = tf.input({ shape: [side, side, 3], name: 'image' });
  const logits = head.apply(body.apply(input)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: `${entry.arch}_fastai` });
  const groups = paramGroups(entry, body, head);
  let disposed = false;
  return {
    arch: entry.arch,
    entry,
    model,
    body,
    head,
    paramGroups: groups,
    preprocessing: entry.preprocessing,
    inputSize,
    numFeatures,
    weights,
    dispose() {
      if (disposed) return;
      disposed = true;
      // Layer ref-counting frees nothing here (body and head are shared by three models), so free the variables.
      for (const v of model.weights) v.dispose();
    },
  };
}

/** Normalises uint8-valued pixels ([batch, h, w, 3], 0..255) the way `model` expects. */
export function normalizePixels(pixels: tf.Tensor4D, p: Normalization): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.tensor1d(p.std.map((s) => 1 / (255 * s)));
    const shift = tf.tensor1d(p.mean.map((m, c) => -m / p.std[c]));
    return pixels.toFloat().mul(scale).add(shift) as tf.Tensor4D;
  });
}
