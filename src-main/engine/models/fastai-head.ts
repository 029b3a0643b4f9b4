/**
 * fastai's classifier head, `create_head(nf, n_out, lin_ftrs=None, ps=0.5, concat_pool=True,
 * first_bn=True)`, as `vision_learner` builds and initialises it:
 *
 *   fastai index  layer                          here
 *   0             AdaptiveConcatPool2d           head.pool_max + head.pool_avg -> head.concat (max first)
 *   1             Flatten                        (pooled tensors are already [batch, 2*nf])
 *   2             BatchNorm1d(2*nf)              head.bn1
 *   3             Dropout(0.25)                  head.drop1
 *   4             Linear(2*nf, 512, bias=False)  head.lin1
 *   5             ReLU                           head.relu1
 *   6             BatchNorm1d(512)               head.bn2
 *   7             Dropout(0.5)                   head.drop2
 *   8             Linear(512, n_out, bias=False) head.lin2
 *
 * Linears have no bias because a BatchNorm precedes each (fastai's `LinBnDrop(bias=not bn)`).
 * Initialisation: `apply_init(head, nn.init.kaiming_normal_)` skips norm layers and draws Linear
 * weights from a plain normal with std sqrt(2 / fan_in); fastai's `BatchNorm` helper sets weight 1 and
 * bias 1e-3. BatchNorm keeps PyTorch's eps 1e-5 and momentum 0.1 (Keras momentum 0.9).
 */
import * as tf from '@tensorflow/tfjs';

export interface FastaiHeadOptions {
  /** Channels of the body's output feature map. */
  numFeatures: number;
  numClasses: number;
  /** Hidden layer sizes between the pooled features and the classes (fastai's `lin_ftrs`). */
  linFeatures?: number[];
  /** Dropout: one number p gives p/2 for every hidden layer and p for the last (fastai's rule). */
  ps?: number | number[];
  concatPool?: boolean;
  firstBn?: boolean;
  /** Seed for the Kaiming init, for reproducible heads. */
  seed?: number;
  name?: string;
}

/** Resolved layout of the head, useful for tests and UIs. */
export interface FastaiHeadLayout {
  sizes: number[];
  dropouts: number[];
  batchNorms: boolean[];
}

export function fastaiHeadLayout(o: FastaiHeadOptions): FastaiHeadLayout {
  const concatPool = o.concatPool ?? true;
  const nf = concatPool ? 2 * o.numFeatures : o.numFeatures;
  const sizes = [nf, ...(o.linFeatures ?? [512]), o.numClasses];
  const links = sizes.length - 1;
  const psIn = o.ps ?? 0.5;
  const ps = Array.isArray(psIn) ? psIn : [...Array(links - 1).fill(psIn / 2), psIn];
  if (ps.length !== links) throw new Error(`fastai head: ${ps.length} dropout values for ${links} linear layers`);
  const batchNorms = [o.firstBn ?? true, ...Array(links - 1).fill(true)];
  return { sizes, dropouts: ps, batchNorms };
}

/** fastai's `BatchNorm(nf, ndim=1)`: weight 1, bias 1e-3 (a small positive bias before the ReLU). */
function batchNorm1d(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({
    name,
    axis: -1,
    epsilon: 1e-5,
    momentum: 0.9,
    gammaInitializer: tf.initializers.ones(),
    betaInitializer: tf.initializers.constant({ value: 1e-3 }),
  });
}

/**
 * PyTorch's kaiming_normal_ (a=0, mode='fan_in'): untruncated normal, std sqrt(2 / fan_in). TF.js'
 * heNormal truncates at two standard deviations, which shrinks the spread by ~12%.
 */
function kaimingNormal(fanIn: number, seed: number | undefined): ReturnType<typeof tf.initializers.randomNormal> {
  return tf.initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / fanIn), seed });
}

/**
 * Builds the head as its own model: input a feature map [batch, h, w, numFeatures] (any h, w),
 * output unnormalised class scores [batch, numClasses] (fastai's loss applies the softmax).
 */
export function createFastaiHead(o: FastaiHeadOptions): tf.LayersModel {
  if (!Number.isInteger(o.numClasses) || o.numClasses < 1) throw new Error(`fastai head: numClasses must be a positive integer, got ${o.numClasses}`);
  const name = o.name ?? 'head';
  const layout = fastaiHeadLayout(o);
  const input = tf.input({ shape: [null, null, o.numFeatures], name: `${name}.input` });
  let x: tf.SymbolicTensor;
  if (o.concatPool ?? true) {
    const max = tf.layers.globalMaxPooling2d({ name: `${name}.pool_max` }).apply(input) as tf.SymbolicTensor;
    const avg = tf.layers.globalAveragePooling2d({ name: `${name}.pool_avg` }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.concatenate({ name: `${name}.concat`, axis: -1 }).apply([max, avg]) as tf.SymbolicTensor;
  } else {
    x = tf.layers.globalAveragePooling2d({ name: `${name}.pool_avg` }).apply(input) as tf.SymbolicTensor;
  }
  let seed = o.seed;
  for (let i = 0; i < layout.sizes.length - 1; i++) {
    const n = i + 1;
    const last = i === layout.sizes.length - 2;
    if (layout.batchNorms[i]) x = batchNorm1d(`${name}.bn${n}`).apply(x) as tf.SymbolicTensor;
    if (layout.dropouts[i] > 0) x = tf.layers.dropout({ name: `${name}.drop${n}`, rate: layout.dropouts[i] }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .dense({
        name: `${name}.lin${n}`,
        units: layout.sizes[i + 1],
        // fastai's LinBnDrop drops the bias when a BatchNorm is there to provide one.
        useBias: !layout.batchNorms[i],
        kernelInitializer: kaimingNormal(layout.sizes[i], seed),
        biasInitializer: 'zeros',
      })
      .apply(x) as tf.SymbolicTensor;
    if (seed !== undefined) seed++;
    if (!last) x = tf.layers.reLU({ name: `${name}.relu${n}` }).apply(x) as tf.SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x, name });
}
