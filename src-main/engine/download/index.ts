/** Datasets and files from the internet (fastai's `untar_data`), for the CLI, the app and the weights loader. */
export { hashFile, findMismatch, type Checksum, type ChecksumAlgorithm } from './checksum.js';
export { downloadFile, type DownloadOptions, type DownloadProgress, type DownloadResult } from './download-file.js';
export { AbortError, ArchiveFormatError, DownloadError, UnsafeArchiveError, VerificationError, isAbortError } from './errors.js';
export { extractArchive, detectArchiveFormat, type ArchiveFormat, type ExtractOptions, type ExtractProgress, type ExtractResult } from './extract.js';
export {
  datasetPaths,
  datasetStatus,
  ensureDataset,
  getDataset,
  type DatasetPhase,
  type DatasetProgress,
  type DatasetResult,
  type DatasetState,
  type DatasetStatus,
  type GetDatasetOptions,
} from './get-dataset.js';
export { withLock } from './lock.js';
export { DATASETS, DEFAULT_DATASET_ID, archiveName, findDataset, type DatasetEntry } from './registry.js';
export { ARCHIVE_DIR_ENV, MIRROR_ENV, resolveSource, type ResolvedSource, type SourceOptions } from './source.js';
