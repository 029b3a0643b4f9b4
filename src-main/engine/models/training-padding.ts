/**
 * While training, a ZeroPadding2D whose only consumer pads by itself: ResNet's pads, by half the
 * kernel on every side as PyTorch pads, before its stride-2 convolutions and its max pool. The
 * pad layer passes its input through, and the convolution's (or pool's) op takes the padding as
 * its own; that drops the pad's pass over the activations and its gradient's (a Slice), ~2% of a
 * ResNet-18 step at 128 px. Inference (inference-model.ts folds the same pads), export and the
 * saved model are untouched.
 */
import * as tf from '@tensorflow/tfjs';
import { overrideTrainingCall } from './training-call.js';

/** What tfjs-layers keeps of a layer's place in the graph (protected in its typings). */
interface GraphLayer {
  inboundNodes: { inboundLayers: tf.layers.Layer[] }[];
  outboundNodes: unknown[];
}

/** A ZeroPadding2D's padding, as its config holds it: [[top, bottom], [left, right]]. */
type Pads = [[number, number], [number, number]];

const input = (layer: tf.layers.Layer): tf.layers.Layer | undefined => {
  const nodes = (layer as unknown as GraphLayer).inboundNodes;
  return nodes.length === 1 && nodes[0].inboundLayers.length === 1 ? nodes[0].inboundLayers[0] : undefined;
};

/** The relu or relu6 activations (their outputs are never negative). */
function isRelu(layer: tf.layers.Layer): boolean {
  const config = layer.getConfig();
  if (layer.getClassName() === 'ReLU') return config.maxValue === null || config.maxValue === undefined || config.maxValue === 6;
  return layer.getClassName() === 'Activation' && ['relu', 'relu6'].includes(config.activation as string);
}

/**
 * If `layer` (`valid`, channels-last, a kernel of odd sides k) reads only a ZeroPadding2D that
 * feeds nothing else and pads (k - 1) / 2 on every side: that pad becomes an identity while
 * training, and the pixels it padded are returned for `layer` to pad by itself. Else undefined.
 * `accepts` vets the pad's own input (a max pool needs one that is never negative, as XNNPACK and
 * tfjs pad its windows with -infinity, not zeros).
 */
export function absorbPaddingWhileTraining(layer: tf.layers.Layer, kernel: readonly number[], accepts: (source: tf.layers.Layer) => boolean = () => true): number | undefined {
  const pad = input(layer);
  if (!pad || pad.getClassName() !== 'ZeroPadding2D' || (pad as unknown as GraphLayer).outboundNodes.length !== 1) return undefined;
  const config = pad.getConfig();
  const padding = config.padding as Pads;
  const source = input(pad);
  if (config.dataFormat !== 'channelsLast' || !source || !accepts(source)) return undefined;
  const pixels = padding[0][0];
  if (!padding.flat().every((p) => p === pixels) || kernel.some((k) => 2 * pixels !== k - 1)) return undefined;
  overrideTrainingCall(pad, (x) => x);
  return pixels;
}

/** The fields of tfjs-layers' MaxPooling2D that `call` reads (protected in its typings). */
interface PoolInternals {
  poolSize: [number, number];
  strides: [number, number];
  padding: string;
  dataFormat: string;
}

/**
 * Max pools after a relu and a ZeroPadding2D of half their window pad by themselves while training
 * (see the top of this file). Returns how many.
 */
export function usePaddedPoolsWhileTraining(layers: Iterable<tf.layers.Layer>): number {
  let patched = 0;
  for (const layer of layers) {
    if (layer.getClassName() !== 'MaxPooling2D') continue;
    const pool = layer as unknown as PoolInternals;
    if (pool.padding !== 'valid' || pool.dataFormat !== 'channelsLast') continue;
    const pad = absorbPaddingWhileTraining(layer, pool.poolSize, isRelu);
    if (pad === undefined) continue;
    overrideTrainingCall(layer, (x) => tf.maxPool(x as tf.Tensor4D, pool.poolSize, pool.strides, pad));
    patched++;
  }
  return patched;
}
