/**
 * `getDataset('pets')`: this app's `untar_data(URLs.PETS)`. Downloads the archive into
 * `<cache>/archives/`, verifies it, extracts it to `<cache>/<folderName>` (atomically, see
 * extract.ts) and returns that folder. When the folder is already there it returns at once,
 * touching neither the network nor the lock.
 */
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { defaultCacheDir } from '../paths.js';
import { findMismatch } from './checksum.js';
import { downloadFile, type DownloadProgress } from './download-file.js';
import { ArchiveFormatError, VerificationError } from './errors.js';
import { extractArchive, partialPrefix, removeStalePartials } from './extract.js';
import { withLock } from './lock.js';
import { archiveName, findDataset, type DatasetEntry } from './registry.js';
import { resolveSource, type ResolvedSource } from './source.js';

export type DatasetPhase = 'waiting' | 'download' | 'verify' | 'extract' | 'done';

/** One shape for every phase, so a UI or CLI can drive a single bar per phase. */
export interface DatasetProgress {
  datasetId: string;
  phase: DatasetPhase;
  /** Download: bytes in hand; extract: archive bytes consumed. */
  doneBytes: number;
  totalBytes?: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Download: bytes that were already there from an interrupted run. */
  resumedFromBytes?: number;
  /** Extract: entries written so far. */
  entries?: number;
  message?: string;
}

export interface GetDatasetOptions {
  /** Default: defaultCacheDir() ($FINETUNE_STUDIO_CACHE, $XDG_CACHE_HOME/finetune-studio, ~/.cache/finetune-studio). */
  cacheDir?: string;
  onProgress?: (p: DatasetProgress) => void;
  /** Abort rejects with an AbortError; a partial download is kept for resume, a partial extraction removed. */
  signal?: AbortSignal;
  /** Mirror base URL (setting); overrides FINETUNE_MIRROR_URL. */
  mirrorBaseUrl?: string;
  /** A local archive file or a folder of archives (setting); overrides FINETUNE_ARCHIVE_DIR. */
  localArchive?: string;
  /** Keep the .tgz after extracting (default true, like fastai), so the dataset can be re-extracted offline. */
  keepArchive?: boolean;
  retries?: number;
  retryBaseDelayMs?: number;
  idleTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface DatasetResult {
  /** The extracted dataset folder. */
  path: string;
  dataset: DatasetEntry;
  /** Where the archive is (or was, with keepArchive false); undefined when the folder was already there. */
  archivePath?: string;
  source?: ResolvedSource['kind'];
  /** Bytes came over the network (or from a local file) in this call. */
  downloaded: boolean;
  /** The folder was created in this call. */
  extracted: boolean;
  warnings: string[];
}

export function datasetPaths(dataset: DatasetEntry, cacheDir: string): { folder: string; archive: string } {
  return {
    folder: path.join(cacheDir, dataset.folderName),
    archive: path.join(cacheDir, 'archives', archiveName(dataset.url)),
  };
}

/** Downloads and extracts `dataset` unless present; resolves to the dataset folder. */
export async function getDataset(dataset: string | DatasetEntry, options: GetDatasetOptions = {}): Promise<string> {
  return (await ensureDataset(dataset, options)).path;
}

/** Like getDataset, with what it did (for messages such as "already downloaded"). */
export async function ensureDataset(dataset: string | DatasetEntry, options: GetDatasetOptions = {}): Promise<DatasetResult> {
  const entry = typeof dataset === 'string' ? findDataset(dataset) : dataset;
  const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir(options.env));
  const { folder, archive } = datasetPaths(entry, cacheDir);
  const emit = (p: Omit<DatasetProgress, 'datasetId'>) => options.onProgress?.({ datasetId: entry.id, ...p });
  const present = (): DatasetResult => ({ path: folder, dataset: entry, downloaded: false, extracted: false, warnings: [] });

  if (await isComplete(entry, folder)) return present();

  return withLock(
    path.join(cacheDir, `.${entry.folderName}.lock`),
    async () => {
      // Whoever held the lock before us may just have finished it.
      if (await isComplete(entry, folder)) return present();
      // Leftovers of a crashed or killed extraction; nobody else can be writing them while we hold the lock.
      await removeStalePartials(folder);

      const source = resolveSource(entry.url, { mirrorBaseUrl: options.mirrorBaseUrl, localPath: options.localArchive, env: options.env });
      let archivePath: string;
      let downloaded: boolean;
      if (source.kind === 'local') {
        emit({ phase: 'verify', doneBytes: 0, bytesPerSecond: 0, message: `Checking ${source.path}` });
        const mismatch = await findMismatch(source.path, { expectedSize: entry.sizeBytes, checksum: entry.checksum });
        if (mismatch) {
          throw new VerificationError(`The local archive ${source.path} is not ${entry.title} (${entry.url}): ${mismatch}. Point to the original file.`);
        }
        archivePath = source.path;
        downloaded = false;
      } else {
        const result = await downloadFile({
          url: source.url,
          dest: archive,
          expectedSize: entry.sizeBytes,
          checksum: entry.checksum,
          signal: options.signal,
          retries: options.retries,
          retryBaseDelayMs: options.retryBaseDelayMs,
          idleTimeoutMs: options.idleTimeoutMs,
          onProgress: (p) => emit(fromDownload(p)),
        });
        archivePath = archive;
        downloaded = result.downloaded;
      }

      let warnings: string[];
      try {
        const extracted = await extractArchive(archivePath, folder, {
          signal: options.signal,
          onProgress: (p) =>
            emit({
              phase: 'extract',
              doneBytes: p.archiveBytesRead,
              totalBytes: p.archiveTotalBytes,
              bytesPerSecond: p.bytesPerSecond,
              etaSeconds: p.etaSeconds,
              entries: p.entries,
            }),
        });
        warnings = extracted.warnings;
      } catch (err) {
        // Size and first-MiB checks cannot see damage further in; the gzip CRC does. Do not keep a bad archive around.
        if (err instanceof ArchiveFormatError && source.kind !== 'local') {
          await rm(archive, { force: true });
          throw new ArchiveFormatError(`${err.message.replace(/; delete it and download it again$/, '')}. It was deleted; run again to download it afresh.`, { cause: err });
        }
        throw err;
      }

      const missing = await missingPaths(entry, folder);
      if (missing.length) warnings.push(`${folder} has no ${missing.join(', ')}, which ${entry.title} normally has`);
      if (options.keepArchive === false && source.kind !== 'local') await rm(archive, { force: true });
      emit({ phase: 'done', doneBytes: entry.sizeBytes, totalBytes: entry.sizeBytes, bytesPerSecond: 0 });
      return { path: folder, dataset: entry, archivePath, source: source.kind, downloaded, extracted: true, warnings };
    },
    {
      signal: options.signal,
      onWait: (holder) =>
        emit({
          phase: 'waiting',
          doneBytes: 0,
          bytesPerSecond: 0,
          message: `Waiting for ${holder && holder.pid !== process.pid ? `process ${holder.pid}` : 'another request'}, which is fetching ${entry.title}`,
        }),
    },
  );
}

function fromDownload(p: DownloadProgress): Omit<DatasetProgress, 'datasetId'> {
  const phase: DatasetPhase = p.phase === 'waiting' ? 'waiting' : p.phase === 'verifying' ? 'verify' : 'download';
  return {
    phase,
    doneBytes: p.receivedBytes,
    totalBytes: p.totalBytes,
    bytesPerSecond: p.bytesPerSecond,
    etaSeconds: p.etaSeconds,
    resumedFromBytes: p.resumedFromBytes,
    message: p.message,
  };
}

export type DatasetState =
  /** Extracted and usable. */
  | 'ready'
  /** The verified archive is in the cache; extraction is next. */
  | 'downloaded'
  /** A partial download exists; the next get resumes it. */
  | 'partial'
  | 'absent'
  /** A folder of that name exists but lacks what the dataset has. */
  | 'invalid';

export interface DatasetStatus {
  state: DatasetState;
  folder: string;
  archive: string;
  /** Bytes in hand for 'partial'. */
  partialBytes?: number;
}

/** What is in the cache for `dataset`, without changing anything (for `dataset list` and the picker). */
export async function datasetStatus(dataset: DatasetEntry, cacheDir: string = defaultCacheDir()): Promise<DatasetStatus> {
  const { folder, archive } = datasetPaths(dataset, path.resolve(cacheDir));
  const base = { folder, archive };
  if (await isDirectory(folder)) return { ...base, state: (await missingPaths(dataset, folder)).length ? 'invalid' : 'ready' };
  const archiveSize = await sizeOf(archive);
  if (archiveSize !== undefined) return { ...base, state: 'downloaded' };
  const partial = await sizeOf(`${archive}.part`);
  if (partial !== undefined) return { ...base, state: 'partial', partialBytes: partial };
  return { ...base, state: 'absent' };
}

/** True when the folder is there and whole; throws when a folder of that name is there but is something else. */
async function isComplete(entry: DatasetEntry, folder: string): Promise<boolean> {
  if (!(await isDirectory(folder))) return false;
  const missing = await missingPaths(entry, folder);
  if (missing.length === 0) return true;
  throw new Error(
    `${folder} exists but has no ${missing.join(' or ')}, so it is not a complete copy of ${entry.title}. ` +
      `It was not made by this app (whose extractions appear only when complete, from ${partialPrefix(folder)}* folders). Move or delete it and run again.`,
  );
}

async function missingPaths(entry: DatasetEntry, folder: string): Promise<string[]> {
  const checks = await Promise.all(entry.requiredPaths.map(async (p) => ((await sizeOf(path.join(folder, p))) === undefined ? p : undefined)));
  return checks.filter((p): p is string => p !== undefined);
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function sizeOf(p: string): Promise<number | undefined> {
  try {
    return (await stat(p)).size;
  } catch {
    return undefined;
  }
}
