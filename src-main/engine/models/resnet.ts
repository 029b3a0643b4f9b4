/**
 * torchvision's ResNet (v1.5: the stride of a bottleneck sits on its 3x3 conv) built with TF.js layers,
 * op for op, so that a torchvision/timm state dict loads into it and computes the same numbers.
 *
 * What "the same" takes, beyond the obvious:
 * - Padding. Keras/TF `same` padding puts the odd pixel of a stride-2 convolution at the bottom/right
 *   ([0,1]); PyTorch pads symmetrically ([1,1]). Every strided conv and the max-pool therefore get an
 *   explicit ZeroPadding2D and `valid` padding. Stride-1 3x3 convs use `same`, which is symmetric there.
 * - The max-pool pads with zeros where PyTorch pads with -inf. That is exact here: its input comes out of
 *   a ReLU (>= 0) and every 3x3 window with padding 1 holds at least one real pixel.
 * - BatchNorm epsilon 1e-5 (Keras defaults to 1e-3) and momentum 0.9 (PyTorch's momentum=0.1 is the
 *   weight of the new batch; Keras' is the weight of the running value).
 * - Layer names are the state-dict prefixes (`layer2.0.downsample.0`), so the weight loader needs no table.
 *
 * Tensors are channels-last (NHWC) throughout, the layout TF.js kernels are fast in.
 */
import * as tf from '@tensorflow/tfjs';

export type ResNetArch = 'resnet18' | 'resnet34' | 'resnet50';

export interface ResNetConfig {
  block: 'basic' | 'bottleneck';
  /** Blocks in layer1..layer4. */
  layers: [number, number, number, number];
}

export const RESNET_CONFIGS: Record<ResNetArch, ResNetConfig> = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
};

const EXPANSION = { basic: 1, bottleneck: 4 } as const;
const BN_EPSILON = 1e-5;
const BN_MOMENTUM = 0.9;

export interface ResNetGraph {
  input: tf.SymbolicTensor;
  /** After conv1, bn1, relu, maxpool (torchvision's `maxpool` output). */
  stem: tf.SymbolicTensor;
  /** Outputs of layer1..layer4. */
  stages: [tf.SymbolicTensor, tf.SymbolicTensor, tf.SymbolicTensor, tf.SymbolicTensor];
  /** Channels of layer4's output: 512 for basic blocks, 2048 for bottlenecks. */
  numFeatures: number;
}

export interface BuildResNetOptions {
  /** Square input size, or null (default) to accept any size: every op is size-agnostic. */
  inputSize?: number | null;
  /** Seed for the random initialisation (replaced anyway when weights are loaded). */
  seed?: number;
}

/**
 * torchvision initialises convs with kaiming_normal_(mode='fan_out', nonlinearity='relu'): a plain
 * (untruncated) normal with std sqrt(2 / (out_channels * kh * kw)). TF.js' heNormal is truncated and
 * uses fan_in, so it is not used.
 */
function kaimingNormalFanOut(filters: number, kernel: number, seed: number | undefined): ReturnType<typeof tf.initializers.randomNormal> {
  return tf.initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / (filters * kernel * kernel)), seed });
}

class Builder {
  private seed: number | undefined;
  constructor(seed: number | undefined) {
    this.seed = seed;
  }
  private nextSeed(): number | undefined {
    return this.seed === undefined ? undefined : this.seed++;
  }

  /** conv (no bias, torchvision padding) -> BatchNorm, named `${conv}` and `${bn}`. */
  convBn(x: tf.SymbolicTensor, o: { conv: string; bn: string; filters: number; kernel: number; stride: number }): tf.SymbolicTensor {
    const pad = Math.floor(o.kernel / 2);
    let padding: 'same' | 'valid' = 'valid';
    if (o.stride === 1 && pad > 0) padding = 'same'; // symmetric for odd kernels at stride 1
    else if (pad > 0) x = tf.layers.zeroPadding2d({ padding: pad, name: `${o.conv}.pad` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .conv2d({
        name: o.conv,
        filters: o.filters,
        kernelSize: o.kernel,
        strides: o.stride,
        padding,
        useBias: false,
        kernelInitializer: kaimingNormalFanOut(o.filters, o.kernel, this.nextSeed()),
      })
      .apply(x) as tf.SymbolicTensor;
    return batchNorm(o.bn).apply(x) as tf.SymbolicTensor;
  }
}

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ name, axis: -1, epsilon: BN_EPSILON, momentum: BN_MOMENTUM });
}

function relu(name: string): tf.layers.Layer {
  return tf.layers.reLU({ name });
}

function basicBlock(b: Builder, x: tf.SymbolicTensor, name: string, inC: number, planes: number, stride: number): tf.SymbolicTensor {
  let y = b.convBn(x, { conv: `${name}.conv1`, bn: `${name}.bn1`, filters: planes, kernel: 3, stride });
  y = relu(`${name}.relu1`).apply(y) as tf.SymbolicTensor;
  y = b.convBn(y, { conv: `${name}.conv2`, bn: `${name}.bn2`, filters: planes, kernel: 3, stride: 1 });
  const shortcut = downsample(b, x, name, inC, planes, stride);
  const sum = tf.layers.add({ name: `${name}.add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return relu(`${name}.relu`).apply(sum) as tf.SymbolicTensor;
}

function bottleneckBlock(b: Builder, x: tf.SymbolicTensor, name: string, inC: number, planes: number, stride: number): tf.SymbolicTensor {
  let y = b.convBn(x, { conv: `${name}.conv1`, bn: `${name}.bn1`, filters: planes, kernel: 1, stride: 1 });
  y = relu(`${name}.relu1`).apply(y) as tf.SymbolicTensor;
  y = b.convBn(y, { conv: `${name}.conv2`, bn: `${name}.bn2`, filters: planes, kernel: 3, stride });
  y = relu(`${name}.relu2`).apply(y) as tf.SymbolicTensor;
  y = b.convBn(y, { conv: `${name}.conv3`, bn: `${name}.bn3`, filters: planes * 4, kernel: 1, stride: 1 });
  const shortcut = downsample(b, x, name, inC, planes * 4, stride);
  const sum = tf.layers.add({ name: `${name}.add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return relu(`${name}.relu`).apply(sum) as tf.SymbolicTensor;
}

/** torchvision's `downsample = Sequential(conv1x1(stride), BatchNorm)` when the shape changes, else identity. */
function downsample(b: Builder, x: tf.SymbolicTensor, name: string, inC: number, outC: number, stride: number): tf.SymbolicTensor {
  if (stride === 1 && inC === outC) return x;
  return b.convBn(x, { conv: `${name}.downsample.0`, bn: `${name}.downsample.1`, filters: outC, kernel: 1, stride });
}

/** Builds the graph from the input to layer4 (torchvision's `model.layer4` output). */
export function buildResNet(config: ResNetConfig, options: BuildResNetOptions = {}): ResNetGraph {
  const size = options.inputSize ?? null;
  const b = new Builder(options.seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input' });
  let x = b.convBn(input, { conv: 'conv1', bn: 'bn1', filters: 64, kernel: 7, stride: 2 });
  x = relu('relu').apply(x) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: 1, name: 'maxpool.pad' }).apply(x) as tf.SymbolicTensor;
  const stem = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'maxpool' }).apply(x) as tf.SymbolicTensor;

  const expansion = EXPANSION[config.block];
  const block = config.block === 'basic' ? basicBlock : bottleneckBlock;
  let channels = 64;
  x = stem;
  const stages: tf.SymbolicTensor[] = [];
  config.layers.forEach((count, i) => {
    const planes = 64 * 2 ** i;
    for (let j = 0; j < count; j++) {
      const stride = i > 0 && j === 0 ? 2 : 1;
      x = block(b, x, `layer${i + 1}.${j}`, channels, planes, stride);
      channels = planes * expansion;
    }
    stages.push(x);
  });
  return { input, stem, stages: stages as ResNetGraph['stages'], numFeatures: channels };
}

/** The body fastai cuts from a ResNet: everything before the average pool (input -> layer4). */
export function resnetBody(graph: ResNetGraph, name = 'body'): tf.LayersModel {
  return tf.model({ inputs: graph.input, outputs: graph.stages[3], name });
}

/**
 * torchvision's own classifier (`avgpool` + `fc`), used to check parity with ImageNet checkpoints;
 * fine-tuning replaces it with fastai's head.
 */
export function resnetClassifier(graph: ResNetGraph, numClasses = 1000): tf.SymbolicTensor {
  const pooled = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(graph.stages[3]) as tf.SymbolicTensor;
  // PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  const bound = 1 / Math.sqrt(graph.numFeatures);
  return tf.layers
    .dense({
      name: 'fc',
      units: numClasses,
      kernelInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound }),
      biasInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound }),
    })
    .apply(pooled) as tf.SymbolicTensor;
}

/**
 * fastai's split for ResNets (`_resnet_split`): body[:6] (stem, layer1, layer2), body[6:] (layer3,
 * layer4). Returns 0 or 1 for a body layer name.
 */
export function resnetBodyGroup(layerName: string): 0 | 1 {
  return /^layer[34]\./.test(layerName) ? 1 : 0;
}
