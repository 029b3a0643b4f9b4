/** The downloadable datasets with what the cache holds of each (fastai's `untar_data` targets). */
import path from 'node:path';
import { DATASETS, datasetStatus, ensureDataset, type DatasetProgress } from '../../engine/download/index.js';
import type { DatasetChoice } from '../../api/contract.js';

export async function listDatasets(cacheDir: string): Promise<DatasetChoice[]> {
  return Promise.all(
    DATASETS.map(async (d) => {
      const status = await datasetStatus(d, cacheDir);
      return {
        id: d.id,
        title: d.title,
        description: d.description,
        sizeBytes: d.sizeBytes,
        ...(d.imageCount ? { imageCount: d.imageCount } : {}),
        state: status.state,
        imagesFolder: path.join(status.folder, d.imagesPath),
        labelsFrom: d.labelsFrom,
      };
    }),
  );
}

export async function getDatasetFolder(id: string, cacheDir: string, emit: (p: DatasetProgress) => void, signal: AbortSignal): Promise<{ folder: string }> {
  const result = await ensureDataset(id, { cacheDir, onProgress: emit, signal });
  return { folder: path.join(result.path, result.dataset.imagesPath) };
}
