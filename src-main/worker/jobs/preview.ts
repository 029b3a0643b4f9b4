/**
 * fastai's `dls.show_batch()`: label and split the folder, decode it once into the cache (the same
 * entries training uses, so the work is not wasted), then take the first images of a training
 * batch (random crops, shuffled per `epoch`: "reshuffle" asks for the next epoch) and of the
 * validation set (centre crops, in order), as the model will see them.
 */
import path from 'node:path';
import { DataLoader } from '../../engine/data/data-loader.js';
import { hasErrors, scanDataset, type DatasetOptions } from '../../engine/data/dataset.js';
import { ImageCache } from '../../engine/data/image-cache.js';
import { IMAGENET_NORMALIZATION } from '../../engine/data/normalize.js';
import { prepareDataset, type PrepareProgress } from '../../engine/data/prepare.js';
import type { PreviewJobResult } from '../protocol.js';
import { rgbToDataUrl } from './images.js';

/** Previews are shown at least this large, whatever the training size. */
const MIN_SHOWN = 96;

export async function previewBatch(
  job: { options: DatasetOptions; size: number; count: number; epoch: number; cacheDir: string },
  emit: (p: PrepareProgress) => void,
  signal: AbortSignal,
): Promise<PreviewJobResult> {
  const scan = await scanDataset(job.options);
  if (hasErrors(scan)) return { scan, size: job.size, epoch: job.epoch, train: [], valid: [] };
  const cache = new ImageCache(path.join(job.cacheDir, 'images'));
  const prepared = await prepareDataset(scan, { cache, size: job.size, signal, onProgress: emit });
  // Normalisation does not matter for showBatch (it returns raw crops); any model's will do.
  const common = { cache, size: job.size, normalization: IMAGENET_NORMALIZATION };
  const show = async (dl: DataLoader) => {
    const shown = Math.max(MIN_SHOWN, job.size > 160 ? 160 : job.size);
    const items = await dl.showBatch(job.count, job.epoch);
    return Promise.all(items.map(async ({ item, image }) => ({ relPath: item.relPath, label: item.label, src: await rgbToDataUrl(image, shown) })));
  };
  const train = await show(new DataLoader(prepared.train, { ...common, split: 'train', seed: job.options.split.kind === 'random' ? job.options.split.seed : 42 }));
  const valid = await show(new DataLoader(prepared.valid, { ...common, split: 'valid' }));
  return { scan: prepared.scan, size: job.size, epoch: job.epoch, train, valid };
}
