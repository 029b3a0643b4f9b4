/**
 * The architectures the app offers, and for each: where its ImageNet weights come from, how big they
 * are, how its inputs are normalised, how fastai-style parameter groups split it, and its licence.
 *
 * ResNets: torchvision's ImageNet weights as timm republishes them on Hugging Face
 * (`timm/<arch>.tv_in1k`, `model.safetensors`, state-dict keys identical to torchvision's).
 * MobileNets: the Keras Applications ImageNet weights as TF.js LayersModels, from the URLs Teachable
 * Machine itself loads (`@teachablemachine/image`: v2 "no_top" models, v1 from tfjs-models).
 *
 * Sizes and checksums: only values that were checked are filled in. Where none is, downloads are
 * still verified structurally (a safetensors header that accounts for every byte; model.json shards
 * that add up to its manifest) and the strict loaders reject any tensor that does not fit.
 */
import type { Checksum } from '../download/checksum.js';
import { IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE_NORMALIZATION, type Normalization } from '../data/normalize.js';

export const ARCHS = [
  'resnet18',
  'resnet34',
  'resnet50',
  'mobilenet_v2_0.35',
  'mobilenet_v2_0.50',
  'mobilenet_v2_0.75',
  'mobilenet_v2_1.00',
  'mobilenet_v1_0.25',
  'mobilenet_v1_0.50',
  'mobilenet_v1_0.75',
  'mobilenet_v1_1.00',
] as const;
export type ArchId = (typeof ARCHS)[number];
export type ArchFamily = 'resnet' | 'mobilenet_v1' | 'mobilenet_v2';

export interface WeightsSpec {
  /** Folder name in the weight cache, in a local weights folder and under a mirror URL. */
  id: string;
  format: 'safetensors' | 'tfjs-layers';
  /** The file to fetch first: `model.safetensors`, or `model.json` (its shards follow its manifest). */
  file: string;
  url: string;
  /** Where a person can read about the weights. */
  homepage: string;
  /** Upstream revision, and whether it is a fixed commit (false: a moving branch, see `url`). */
  revision: string;
  pinned: boolean;
  /** Exact size of `file` in bytes, where verified. */
  size?: number;
  checksum?: Checksum;
  /** Roughly how much is downloaded in all (for the UI before the download starts). */
  approxBytes: number;
}

export interface CatalogueEntry {
  arch: ArchId;
  family: ArchFamily;
  title: string;
  /** Channels of the body's output feature map (input to the head's pooling). */
  numFeatures: number;
  /** The input size the weights were trained at. ResNets run at any size; MobileNets are rebuilt per size. */
  inputSize: number;
  /** Per-channel normalisation on a 0..1 pixel scale: `(x/255 - mean) / std`. */
  preprocessing: Normalization;
  /** What the three parameter groups (discriminative learning rates) hold. */
  layerGroups: [string, string, string];
  /** MobileNets: the layer the body ends at. */
  featureLayer?: string;
  /** ResNets: checkpoint prefixes of the ImageNet classifier, which fine-tuning replaces. */
  classifierPrefixes?: string[];
  licence: string;
  weights: WeightsSpec;
}

const HF_REVISION = 'main';

function resnet(arch: 'resnet18' | 'resnet34' | 'resnet50', numFeatures: number, stateDictBytes: number): CatalogueEntry {
  const repo = `timm/${arch}.tv_in1k`;
  return {
    arch,
    family: 'resnet',
    title: `ResNet-${arch.slice(6)} (torchvision ImageNet weights)`,
    numFeatures,
    inputSize: 224,
    preprocessing: IMAGENET_NORMALIZATION,
    layerGroups: ['stem + layer1 + layer2', 'layer3 + layer4', 'head'],
    classifierPrefixes: ['fc.'],
    licence: 'BSD-3-Clause (torchvision weights, republished by timm); trained on ImageNet-1k, whose images carry their own terms',
    weights: {
      id: `${arch}.tv_in1k`,
      format: 'safetensors',
      file: 'model.safetensors',
      // TODO(pin): `main` is a moving branch. Replace it with the commit hash of the verified file and
      // fill in `size` and `checksum` (its sha256 is the LFS oid Hugging Face shows) once checked.
      url: `https://huggingface.co/${repo}/resolve/${HF_REVISION}/model.safetensors`,
      homepage: `https://huggingface.co/${repo}`,
      revision: HF_REVISION,
      pinned: false,
      // Tensor bytes of the state dict (from its shapes); the file adds a JSON header of a few KB.
      approxBytes: stateDictBytes,
    },
  };
}

const TM_V2_BASE = 'https://storage.googleapis.com/teachable-machine-models';
const TFJS_V1_BASE = 'https://storage.googleapis.com/tfjs-models/tfjs';

const MOBILENET_LICENCE = 'Apache-2.0 (Keras Applications ImageNet weights, as hosted for tfjs-models / Teachable Machine); trained on ImageNet-1k, whose images carry their own terms';

function mobilenetV2(alpha: '0.35' | '0.50' | '0.75' | '1.00', approxBytes: number): CatalogueEntry {
  // Our folder name (cache, local folder, mirror) is short; Teachable Machine's object name is long.
  const id = `mobilenet_v2_${alpha}_224_no_top`;
  const upstream = `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${alpha}_224_no_top`;
  return {
    arch: `mobilenet_v2_${alpha}`,
    family: 'mobilenet_v2',
    title: `MobileNetV2 alpha ${alpha} (Keras ImageNet weights, Teachable Machine)`,
    // Keras MobileNetV2 keeps its last conv at 1280 channels for every alpha <= 1.
    numFeatures: 1280,
    inputSize: 224,
    preprocessing: MINUS_ONE_TO_ONE_NORMALIZATION,
    layerGroups: ['Conv1 + blocks 0-5 (to stride 8)', 'blocks 6-16 + Conv_1 (stride 16 and 32)', 'head'],
    featureLayer: 'out_relu',
    licence: MOBILENET_LICENCE,
    weights: {
      id,
      format: 'tfjs-layers',
      file: 'model.json',
      url: `${TM_V2_BASE}/${upstream}/model.json`,
      homepage: 'https://github.com/googlecreativelab/teachablemachine-community',
      revision: 'unversioned (Google Cloud Storage object)',
      pinned: false,
      approxBytes,
    },
  };
}

function mobilenetV1(alpha: '0.25' | '0.50' | '0.75' | '1.00', approxBytes: number): CatalogueEntry {
  // tfjs-models spells alpha 1 as "1.0" and the others with two decimals.
  const id = `mobilenet_v1_${alpha === '1.00' ? '1.0' : alpha}_224`;
  return {
    arch: `mobilenet_v1_${alpha}`,
    family: 'mobilenet_v1',
    title: `MobileNet v1 alpha ${alpha} (Keras ImageNet weights, tfjs-models)`,
    numFeatures: Math.round(1024 * Number(alpha)),
    inputSize: 224,
    preprocessing: MINUS_ONE_TO_ONE_NORMALIZATION,
    layerGroups: ['conv1 + blocks 1-5 (to stride 8)', 'blocks 6-13 (stride 16 and 32)', 'head'],
    featureLayer: 'conv_pw_13_relu',
    licence: MOBILENET_LICENCE,
    weights: {
      id,
      format: 'tfjs-layers',
      file: 'model.json',
      url: `${TFJS_V1_BASE}/${id}/model.json`,
      homepage: 'https://github.com/tensorflow/tfjs-models/tree/master/mobilenet',
      revision: 'unversioned (Google Cloud Storage object)',
      pinned: false,
      approxBytes,
    },
  };
}

/**
 * approxBytes: ResNets from the checkpoints' tensor shapes (`resnet*.state_dict_shapes.json`);
 * MobileNets as 4 bytes per parameter of the published Keras models, rounded (v2 0.35 no_top and
 * v1 0.25 were checked against copies of the files: 1,640,832 and 1,902,176 bytes of weights).
 */
export const CATALOGUE: Readonly<Record<ArchId, CatalogueEntry>> = {
  resnet18: resnet('resnet18', 512, 46_796_608),
  resnet34: resnet('resnet34', 512, 87_259_072),
  resnet50: resnet('resnet50', 2048, 102_441_032),
  'mobilenet_v2_0.35': mobilenetV2('0.35', 1_640_832),
  'mobilenet_v2_0.50': mobilenetV2('0.50', 2_800_000),
  'mobilenet_v2_0.75': mobilenetV2('0.75', 5_500_000),
  'mobilenet_v2_1.00': mobilenetV2('1.00', 9_000_000),
  'mobilenet_v1_0.25': mobilenetV1('0.25', 1_902_176),
  'mobilenet_v1_0.50': mobilenetV1('0.50', 5_400_000),
  'mobilenet_v1_0.75': mobilenetV1('0.75', 10_400_000),
  'mobilenet_v1_1.00': mobilenetV1('1.00', 17_000_000),
};

export function isArchId(value: string): value is ArchId {
  return (ARCHS as readonly string[]).includes(value);
}

export function catalogueEntry(arch: string): CatalogueEntry {
  if (!isArchId(arch)) throw new Error(`Unknown architecture "${arch}". Available: ${ARCHS.join(', ')}.`);
  return CATALOGUE[arch];
}
