/** Pretrained models for fine-tuning: what the learner, the CLI and the UI import. */
export { ARCHS, CATALOGUE, catalogueEntry, isArchId, type ArchFamily, type ArchId, type CatalogueEntry, type WeightsSpec } from './catalogue.js';
export { createModel, isBatchNorm, normalizePixels, type CreateModelOptions, type FinetuneModel, type ParamGroup, type WeightsChoice } from './create-model.js';
export { createFastaiHead, fastaiHeadLayout, type FastaiHeadOptions } from './fastai-head.js';
export {
  resolveLocalWeights,
  resolveWeights,
  WEIGHTS_DIR_ENV,
  WEIGHTS_MIRROR_ENV,
  type ResolvedWeights,
  type WeightsProgress,
  type WeightStoreOptions,
} from './weight-store.js';
