/**
 * The model as inference runs it (prediction, quick mode's features, `bench:models`): the body with
 * each BatchNorm folded into the convolution before it and the ReLU / ReLU6 after that computed in
 * the same kernel, as TF Lite and ONNX Runtime do to a trained CNN.
 *
 * In inference mode a BatchNorm is a per-channel affine map, y = (x - mean) * s + beta with
 * s = gamma / sqrt(var + eps), so conv-then-BatchNorm is one convolution with kernel K * s and
 * bias (b - mean) * s + beta. Each fold removes one pass over the activations, and the fused
 * activation another: on the wasm backend those passes were 5% of a ResNet-18 forward pass at
 * 128 px and 27% of a MobileNetV2-0.35 one (relu6 is two kernels there, Relu then ClipByValue).
 * MobileNet's ZeroPadding2D layers, which pad exactly as the next convolution's `same` would,
 * become that padding (one more pass each). ResNet's pad by half the kernel on every side, as
 * PyTorch does, which `same` does not at stride 2 (it pads the bottom and right only); a folded
 * convolution's kernel takes them as explicit padding instead, and the max pool's (after a relu, so
 * its zeros are never the maximum of a window with real values) as the pool's. The layer config
 * says `same`, whose output size is the same (see `isHalfPadding`), for the symbolic shapes.
 * A residual block's end (folded convolution -> add shortcut -> relu; MobileNetV2's projection ->
 * add) becomes one ResidualConv2D (residual-conv-layer.ts), whose wasm kernel adds the shortcut in
 * Winograd's output transform: ResNet-34 at 128 px, batch 16, 1 thread, 107 -> 59 kernels a pass
 * and ~2-4 ms less of ~230 in alternating runs (the Add and Relu passes, 3.4-3.9 ms, are gone).
 * ResNet's stem (folded convolution -> max pool) becomes one ConvMaxPool2D (conv-max-pool-layer.ts),
 * whose wasm kernel pools each row of tiles as it computes them: its 16 MB output (128 px, batch
 * 16) is never written.
 *
 * The folded body is a new LayersModel built from the body's Keras topology (stock layers,
 * ResidualConv2D and ConvMaxPool2D: it is not the model that trains or exports), its weights computed from the
 * body's as they are now. Training later does not change it: fold again after training. Results
 * differ from the unfolded body by float rounding only. */
import * as tf from '@tensorflow/tfjs';
import { samePads } from '../export/padding.js';
import { batchNormAffine } from './batch-norm-affine.js';
import type { FinetuneModel } from './create-model.js';
import { ConvMaxPool2D } from './conv-max-pool-layer.js';
import { ResidualConv2D } from './residual-conv-layer.js';

type InboundRef = [string, number, number, Record<string, unknown>?];

interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: InboundRef[][];
}

interface ModelJson {
  class_name: string;
  config: { name: string; layers: LayerJson[]; input_layers: InboundRef[]; output_layers: InboundRef[] };
}

type FusedActivation = 'linear' | 'relu' | 'relu6';

/** One convolution and what folds into it. */
interface Fold {
  conv: string;
  bn: string;
  activation: FusedActivation;
}

export interface FoldedBody {
  model: tf.LayersModel;
  /** The convolutions that took a BatchNorm. */
  folds: number;
  /** The ZeroPadding2D layers that the padding of the convolution or pool after them replaced. */
  pads: number;
  /** The block ends (convolution, add, relu) that became one ResidualConv2D. */
  residuals: number;
  /** The convolutions whose max pool became part of them (ConvMaxPool2D). */
  convPools: number;
  /** Frees the folded model's weights (the body's own are untouched). */
  dispose(): void;
}

const CONVS = new Set(['Conv2D', 'DepthwiseConv2D']);

/** The activation a layer applies, when it is nothing but relu or relu6. */
function activationOf(layer: LayerJson): FusedActivation | undefined {
  if (layer.class_name === 'ReLU') {
    const max = layer.config.max_value;
    if (max === null || max === undefined) return 'relu';
    if (max === 6) return 'relu6';
    return undefined;
  }
  if (layer.class_name === 'Activation') {
    const a = layer.config.activation;
    return a === 'relu' || a === 'relu6' ? a : undefined;
  }
  return undefined;
}

/**
 * Whether ZeroPadding2D `pad` followed by `conv` with `valid` padding is `conv` with `same`
 * padding: MobileNet's stride-2 layers pad [[0, 1], [0, 1]], which is `same` for even sizes.
 * Needs the pad's input size, which size-agnostic models (ResNet) do not have.
 */
function isSamePadding(pad: LayerJson, conv: LayerJson, inputShape: tf.Shape): boolean {
  const [, h, w] = inputShape;
  const padding = pad.config.padding as number[][];
  const kernel = conv.config.kernel_size as number[];
  const strides = conv.config.strides as number[];
  const dilation = conv.config.dilation_rate as number[] | number;
  if (typeof h !== 'number' || typeof w !== 'number' || conv.config.padding !== 'valid') return false;
  if (pad.config.data_format !== 'channels_last' || [dilation].flat().some((d) => d !== 1)) return false;
  const same = [samePads(h, kernel[0], strides[0], 1), samePads(w, kernel[1], strides[1], 1)];
  return JSON.stringify(same) === JSON.stringify(padding);
}

/** [[top, bottom], [left, right]]: a ZeroPadding2D's padding, as its config holds it. */
type Pads = [[number, number], [number, number]];

/**
 * Whether `pad` pads by half the kernel of `layer` (a convolution or pool, `valid`) on every side,
 * (k - 1) / 2 for an odd k: then the output has ceil(size / stride) pixels for any input size, as
 * with `same` (floor((size - 1) / s) + 1 = ceil(size / s)), though `same` pads differently.
 */
function isHalfPadding(pad: LayerJson, layer: LayerJson): boolean {
  const padding = pad.config.padding as Pads;
  const kernel = (layer.config.kernel_size ?? layer.config.pool_size) as number[];
  const dilation = [layer.config.dilation_rate ?? 1].flat() as number[];
  if (layer.config.padding !== 'valid' || pad.config.data_format !== 'channels_last' || dilation.some((d) => d !== 1)) return false;
  // One number for all four sides: what tf.fused.depthwiseConv2d takes (it has no explicit form).
  return padding.flat().every((p) => p === padding[0][0]) && padding.every(([before], axis) => 2 * before === kernel[axis] - 1);
}

/**
 * The folds in `model` (the body's topology): a channels-last convolution without activation whose
 * only consumer is a channels-last BatchNorm, plus the relu / relu6 that is the BatchNorm's only
 * consumer, if any; and a ZeroPadding2D whose only consumer is a convolution that can pad the same
 * by itself (`same`; or explicitly, when it takes a BatchNorm and so runs our fused call), or a max
 * pool after a relu; then residual block ends (planResiduals) and, once rewired, a convolution's
 * max pool (planConvPools). Rewrites the topology in place (those layers removed, their consumers
 * rewired).
 */
function planFolds(
  model: ModelJson,
  body: tf.LayersModel,
): { folds: Fold[]; pads: number; explicitPads: Map<string, number>; residuals: Map<string, Fold>; convPools: Map<string, Fold> } {
  const { layers } = model.config;
  const refsTo = (name: string) => [
    ...layers.flatMap((l) => l.inbound_nodes.flat().filter((r) => r[0] === name).map(() => l)),
    ...model.config.output_layers.filter((r) => r[0] === name).map(() => undefined),
  ];
  const onlyConsumer = (name: string): LayerJson | undefined => {
    const refs = refsTo(name);
    return refs.length === 1 ? refs[0] : undefined;
  };
  const folds: Fold[] = [];
  const replaced = new Map<string, InboundRef>();
  for (const conv of layers) {
    if (!CONVS.has(conv.class_name) || conv.config.data_format !== 'channels_last' || conv.config.activation !== 'linear') continue;
    if (conv.inbound_nodes.length !== 1) continue;
    const bn = onlyConsumer(conv.name);
    if (!bn || bn.class_name !== 'BatchNormalization' || bn.inbound_nodes.length !== 1) continue;
    if (bn.config.axis !== -1 && bn.config.axis !== 3) continue;
    const convRef = bn.inbound_nodes[0][0];
    let last = bn;
    let activation: FusedActivation = 'linear';
    const next = onlyConsumer(bn.name);
    const nextActivation = next && next.inbound_nodes.length === 1 ? activationOf(next) : undefined;
    if (next && nextActivation) {
      activation = nextActivation;
      last = next;
    }
    folds.push({ conv: conv.name, bn: bn.name, activation });
    replaced.set(bn.name, convRef);
    if (last !== bn) replaced.set(last.name, convRef);
    conv.config.use_bias = true;
    conv.config.activation = activation;
  }
  // Pads, once the folds are known (explicit padding needs a folded convolution's call).
  const folded = new Set(folds.map((f) => f.conv));
  const explicitPads = new Map<string, number>();
  let pads = 0;
  const layerNamed = new Map(layers.map((l) => [l.name, l]));
  for (const pad of layers) {
    if (pad.class_name !== 'ZeroPadding2D' || pad.inbound_nodes.length !== 1) continue;
    const next = onlyConsumer(pad.name);
    if (!next || next.inbound_nodes.length !== 1 || next.config.data_format !== 'channels_last') continue;
    const source = layerNamed.get(pad.inbound_nodes[0][0][0]);
    const nonNegative = source !== undefined && (activationOf(source) !== undefined || ['relu', 'relu6'].includes(source.config.activation as string));
    if (CONVS.has(next.class_name) && isSamePadding(pad, next, (body.getLayer(pad.name).input as tf.SymbolicTensor).shape)) {
      next.config.padding = 'same';
    } else if ((CONVS.has(next.class_name) && folded.has(next.name)) || (next.class_name === 'MaxPooling2D' && nonNegative)) {
      if (!isHalfPadding(pad, next)) continue;
      explicitPads.set(next.name, (pad.config.padding as Pads)[0][0]);
      next.config.padding = 'same';
    } else {
      continue;
    }
    replaced.set(pad.name, pad.inbound_nodes[0][0]);
    pads++;
  }
  const residuals = planResiduals(layers, folds, explicitPads, replaced, onlyConsumer);
  // A removed pad's input may itself be a removed activation: follow the chain to a kept layer.
  const rewire = (r: InboundRef): InboundRef => {
    let to = replaced.get(r[0]);
    while (to && replaced.has(to[0])) to = replaced.get(to[0]);
    return to ? ([to[0], to[1], to[2], ...r.slice(3)] as InboundRef) : r;
  };
  model.config.layers = layers.filter((l) => !replaced.has(l.name));
  for (const l of model.config.layers) l.inbound_nodes = l.inbound_nodes.map((node) => node.map(rewire));
  model.config.output_layers = model.config.output_layers.map(rewire);
  const convPools = planConvPools(model, folds, explicitPads);
  // tfjs-layers waits forever for a node whose input layer is missing: fail loudly instead.
  const kept = new Set(model.config.layers.map((l) => l.name));
  const dangling = [...model.config.layers.flatMap((l) => l.inbound_nodes.flat()), ...model.config.output_layers].find((r) => !kept.has(r[0]));
  if (dangling) throw new Error(`folding BatchNorms left a reference to the removed layer ${dangling[0]}`);
  // Every weight is overwritten below: skip the random initialisation.
  for (const l of model.config.layers) {
    for (const key of Object.keys(l.config)) if (key.endsWith('_initializer')) l.config[key] = { class_name: 'Zeros', config: {} };
  }
  return { folds, pads, explicitPads, residuals, convPools };
}

/**
 * The convolution's part of the config of the layer `name` that takes it over (ResidualConv2D,
 * ConvMaxPool2D): its geometry, and its padding in pixels where a pad was folded into it.
 */
function mergedConvConfig(name: string, conv: LayerJson, explicitPads: Map<string, number>): Record<string, unknown> {
  const { filters, kernel_size, strides, dilation_rate, padding } = conv.config;
  return { name, filters, kernel_size, strides, dilation_rate, pad: explicitPads.get(conv.name) ?? padding };
}

/**
 * ResNet's stem in the rewired topology: a folded Conv2D whose only consumer is a MaxPooling2D
 * becomes one ConvMaxPool2D in the pool's place. Returns the new layers' names -> the folds of
 * their convolutions.
 */
function planConvPools(model: ModelJson, folds: Fold[], explicitPads: Map<string, number>): Map<string, Fold> {
  const { layers } = model.config;
  const foldOf = new Map(folds.map((f) => [f.conv, f]));
  const layerNamed = new Map(layers.map((l) => [l.name, l]));
  const consumers = (name: string) => layers.filter((l) => l.inbound_nodes.flat().some((r) => r[0] === name)).length + model.config.output_layers.filter((r) => r[0] === name).length;
  const convPools = new Map<string, Fold>();
  for (const pool of layers) {
    if (pool.class_name !== 'MaxPooling2D' || pool.inbound_nodes.length !== 1 || pool.inbound_nodes[0].length !== 1) continue;
    const conv = layerNamed.get(pool.inbound_nodes[0][0][0]);
    const fold = conv && foldOf.get(conv.name);
    if (!conv || !fold || conv.class_name !== 'Conv2D' || conv.inbound_nodes.length !== 1 || consumers(conv.name) !== 1) continue;
    pool.class_name = ConvMaxPool2D.className;
    pool.config = {
      ...mergedConvConfig(pool.name, conv, explicitPads),
      activation: fold.activation,
      pool_size: pool.config.pool_size,
      pool_strides: pool.config.strides,
      pool_pad: explicitPads.get(pool.name) ?? pool.config.padding,
    };
    pool.inbound_nodes = conv.inbound_nodes;
    convPools.set(pool.name, fold);
  }
  const merged = new Set([...convPools.values()].map((f) => f.conv));
  model.config.layers = layers.filter((l) => !merged.has(l.name));
  return convPools;
}

/**
 * ResNet's block ends: a folded Conv2D without activation whose only consumer is an Add of it and
 * one other tensor (the shortcut), and the relu / relu6 that is the Add's only consumer, if any,
 * become one ResidualConv2D in the Add's place, inputs [the convolution's input, the shortcut].
 * Returns the new layers' names -> the folds of their convolutions; marks the convolutions and
 * activations removed in `replaced`.
 */
function planResiduals(
  layers: LayerJson[],
  folds: Fold[],
  explicitPads: Map<string, number>,
  replaced: Map<string, InboundRef>,
  onlyConsumer: (name: string) => LayerJson | undefined,
): Map<string, Fold> {
  // The Add still reads the folded BatchNorm (the topology is rewired at the end).
  const foldOfBn = new Map(folds.map((f) => [f.bn, f]));
  const layerNamed = new Map(layers.map((l) => [l.name, l]));
  const residuals = new Map<string, Fold>();
  const isBlockEnd = (ref: InboundRef, add: LayerJson) => {
    const fold = foldOfBn.get(ref[0]);
    const conv = fold && layerNamed.get(fold.conv);
    return fold?.activation === 'linear' && conv?.class_name === 'Conv2D' && conv.inbound_nodes.length === 1 && onlyConsumer(fold.bn) === add;
  };
  for (const add of layers) {
    const [node] = add.inbound_nodes;
    if (add.class_name !== 'Add' || add.inbound_nodes.length !== 1 || node.length !== 2) continue;
    const convAt = node.findIndex((ref) => isBlockEnd(ref, add));
    if (convAt < 0) continue;
    const fold = foldOfBn.get(node[convAt][0])!;
    const conv = layerNamed.get(fold.conv)!;
    const next = onlyConsumer(add.name);
    const activation = next && next.inbound_nodes.length === 1 ? activationOf(next) : undefined;
    add.class_name = ResidualConv2D.className;
    add.config = { ...mergedConvConfig(add.name, conv, explicitPads), activation: activation ?? 'linear' };
    add.inbound_nodes = [[conv.inbound_nodes[0][0], node[1 - convAt]]];
    replaced.set(conv.name, conv.inbound_nodes[0][0]);
    if (next && activation) replaced.set(next.name, [add.name, 0, 0, {}]);
    residuals.set(add.name, fold);
  }
  return residuals;
}

/** The named weight of a layer (`gamma`, `moving_mean`, ...) as float32 values, or undefined. */
function weightOf(layer: tf.layers.Layer, name: string): Float32Array | undefined {
  const v = layer.weights.find((w) => w.originalName.endsWith(`/${name}`));
  return v ? (v.read().dataSync() as Float32Array) : undefined;
}

/** [kernel, bias] of `conv` with `bn` folded in (computed in float64, see batch-norm-affine.ts). */
function foldedWeights(conv: tf.layers.Layer, bn: tf.layers.Layer): [tf.Tensor, tf.Tensor] {
  const { scale, shift } = batchNormAffine({
    mean: weightOf(bn, 'moving_mean')!,
    variance: weightOf(bn, 'moving_variance')!,
    gamma: weightOf(bn, 'gamma'),
    beta: weightOf(bn, 'beta'),
    epsilon: Number(bn.getConfig().epsilon ?? 1e-3),
  });
  const [kernel, convBias] = conv.getWeights();
  const k = kernel.dataSync();
  const b = convBias?.dataSync();
  // Output channel = flat index mod channels, for Conv2D [kh, kw, in, out] and for a depthwise
  // [kh, kw, C, multiplier], whose output channel c * multiplier + m is its last two axes.
  const channels = scale.length;
  const folded = k.map((v, j) => v * scale[j % channels]);
  const bias = Float32Array.from(scale, (s, o) => (b ? b[o] : 0) * s + shift[o]);
  return [tf.tensor(folded, kernel.shape), tf.tensor1d(bias)];
}

/** The fields of tfjs-layers' Conv2D / DepthwiseConv2D that the fused call reads (protected in its typings). */
interface ConvInternals {
  kernel?: tf.LayerVariable;
  depthwiseKernel?: tf.LayerVariable;
  bias: tf.LayerVariable;
  strides: [number, number];
  padding: 'same' | 'valid';
  dilationRate: [number, number] | number;
}

/**
 * tfjs-layers fuses only relu into Conv2D's kernel, and nothing into DepthwiseConv2D's (bias and
 * activation are separate passes there): compute the folded layer as one fused kernel.
 */
function useFusedCall(layer: tf.layers.Layer, activation: FusedActivation, pixels?: number): void {
  const c = layer as unknown as ConvInternals;
  const pad = pixels ?? c.padding;
  const dilations = (typeof c.dilationRate === 'number' ? [c.dilationRate, c.dilationRate] : c.dilationRate) as [number, number];
  layer.call = (inputs) =>
    tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const common = { x, strides: c.strides, pad, dataFormat: 'NHWC' as const, dilations, bias: c.bias.read(), activation };
      return c.depthwiseKernel
        ? tf.fused.depthwiseConv2d({ ...common, filter: c.depthwiseKernel.read() as tf.Tensor4D })
        : tf.fused.conv2d({ ...common, filter: c.kernel!.read() as tf.Tensor4D });
    });
}

/** The fields of tfjs-layers' MaxPooling2D that its call reads (protected in its typings). */
interface PoolInternals {
  poolSize: [number, number];
  strides: [number, number];
}

/** A max pool that pads `pixels` on every side by itself (its ZeroPadding2D removed). */
function usePaddedPool(layer: tf.layers.Layer, pixels: number): void {
  const p = layer as unknown as PoolInternals;
  layer.call = (inputs) => tf.tidy(() => tf.maxPool((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D, p.poolSize, p.strides, pixels));
}

/** The body with its BatchNorms folded (see the top of this file). */
export async function foldBatchNorms(body: tf.LayersModel): Promise<FoldedBody> {
  const topology = body.toJSON(null, false) as unknown as ModelJson;
  const { folds, pads, explicitPads, residuals, convPools } = planFolds(topology, body);
  const model = await tf.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] } as Parameters<typeof tf.models.modelFromJSON>[0]);
  const owned = model.weights.map((w) => w);
  try {
    const foldOf = new Map(folds.map((f) => [f.conv, f]));
    for (const layer of model.layers) {
      if (layer.getClassName() === 'MaxPooling2D' && explicitPads.has(layer.name)) usePaddedPool(layer, explicitPads.get(layer.name)!);
      if (layer.weights.length === 0) continue;
      const merged = residuals.get(layer.name) ?? convPools.get(layer.name);
      if (merged) {
        const weights = foldedWeights(body.getLayer(merged.conv), body.getLayer(merged.bn));
        layer.setWeights(weights);
        tf.dispose(weights);
        continue;
      }
      const source = body.getLayer(layer.name);
      const fold = foldOf.get(layer.name);
      if (!fold) {
        layer.setWeights(source.getWeights());
        continue;
      }
      const weights = foldedWeights(source, body.getLayer(fold.bn));
      layer.setWeights(weights);
      tf.dispose(weights);
      useFusedCall(layer, fold.activation, explicitPads.get(layer.name));
    }
  } catch (err) {
    for (const w of owned) w.dispose();
    throw err;
  }
  let disposed = false;
  return {
    model,
    folds: folds.length,
    pads,
    residuals: residuals.size,
    convPools: convPools.size,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const w of owned) w.dispose();
    },
  };
}

export interface InferenceModel {
  /** Normalised images -> class scores, like FinetuneModel.model. */
  model: tf.LayersModel;
  /** Normalised images -> feature map, like FinetuneModel.body. */
  body: tf.LayersModel;
  /** Frees what folding made; `m` is untouched. */
  dispose(): void;
}

/** `m` for inference: its body folded (as it is now), then its head. */
export async function inferenceModel(m: Pick<FinetuneModel, 'arch' | 'body' | 'head'>): Promise<InferenceModel> {
  const folded = await foldBatchNorms(m.body);
  const input = tf.input({ shape: m.body.inputs[0].shape.slice(1) as number[], name: 'image' });
  const logits = m.head.apply(folded.model.apply(input)) as tf.SymbolicTensor;
  return { model: tf.model({ inputs: input, outputs: logits, name: `${m.arch}_inference` }), body: folded.model, dispose: () => folded.dispose() };
}
