/**
 * MobileNet v1 and v2 bodies from the Keras-derived TF.js LayersModels that tfjs-models and Teachable
 * Machine distribute, cut at their last feature map (Teachable Machine's "training layer"):
 *   v1: `conv_pw_13_relu` (7x7x(1024*alpha) at 224), v2: `out_relu` (7x7x1280 for alpha <= 1).
 * They expect pixels scaled `x/127.5 - 1` (Keras' `preprocess_input` for MobileNets; Teachable Machine
 * itself divides by 127, a 0.4% difference we do not copy).
 *
 * Parameter groups (fastai has no split for these, so this is our choice, made like its ResNet split:
 * by feature-map resolution). Group 0: everything before the first stride-16 stage; group 1: from the
 * stride-16 stage to the cut. That is v1 blocks 1-5 | 6-13, v2 blocks 0-5 | 6-16 + Conv_1, the same
 * place where ResNet's split puts layer3 in group 1.
 */
import * as tf from '@tensorflow/tfjs';

export type MobileNetVersion = 1 | 2;

export const MOBILENET_FEATURE_LAYER: Record<MobileNetVersion, string> = { 1: 'conv_pw_13_relu', 2: 'out_relu' };

/** The container that directly holds a layer with this name, searching nested models. */
function findLayer(model: tf.LayersModel, name: string): { container: tf.LayersModel; layer: tf.layers.Layer } | undefined {
  for (const layer of model.layers) {
    if (layer.name === name) return { container: model, layer };
    if (layer instanceof tf.LayersModel) {
      const inner = findLayer(layer, name);
      if (inner) return inner;
    }
  }
  return undefined;
}

function allLayerNames(model: tf.LayersModel): string[] {
  return model.layers.flatMap((l) => (l instanceof tf.LayersModel ? allLayerNames(l) : [l.name]));
}

/**
 * A model from the input to `featureLayer`'s output. Teachable Machine's v2 file wraps the Keras
 * model in a Sequential with a pooling layer; the cut is taken inside it.
 */
export function cutAtLayer(model: tf.LayersModel, featureLayer: string, name = 'body'): tf.LayersModel {
  const found = findLayer(model, featureLayer);
  if (!found) {
    const names = allLayerNames(model);
    throw new Error(
      `The MobileNet model has no layer "${featureLayer}" to cut at (its last layers: ${names.slice(-6).join(', ')}). ` +
        'Use the full tfjs-models / Teachable Machine model.json, or pass the feature layer this file ends in.',
    );
  }
  const output = found.layer.output;
  if (Array.isArray(output) || output.shape.length !== 4) {
    throw new Error(`Layer "${featureLayer}" does not output a single feature map [batch, h, w, c]`);
  }
  return tf.model({ inputs: found.container.inputs, outputs: output, name });
}

/** 0 or 1 (see the file comment), or undefined for a layer this rule does not know. */
export function mobilenetBodyGroup(version: MobileNetVersion, layerName: string): 0 | 1 | undefined {
  if (version === 1) {
    const block = /^conv_(?:dw|pw|pad)_(\d+)(?:_|$)/.exec(layerName);
    if (block) return Number(block[1]) >= 6 ? 1 : 0;
    return /^conv1(?:_|$)/.test(layerName) ? 0 : undefined;
  }
  const block = /^block_(\d+)_/.exec(layerName);
  if (block) return Number(block[1]) >= 6 ? 1 : 0;
  if (/^(?:Conv1|bn_Conv1|Conv1_pad|Conv1_relu|expanded_conv_)/.test(layerName)) return 0;
  if (/^(?:Conv_1|Conv_1_bn|out_relu)$/.test(layerName)) return 1;
  return undefined;
}

/** Channels of the cut feature map. */
export function featureChannels(body: tf.LayersModel): number {
  const shape = (body.outputs[0] as tf.SymbolicTensor).shape;
  return shape[shape.length - 1] as number;
}
