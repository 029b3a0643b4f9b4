/**
 * Finds an architecture's pretrained weights on disk, downloading them once if needed.
 *
 * Where they come from, first match wins:
 * 1. A local file or folder (`localPath`, or env `FINETUNE_WEIGHTS_DIR`), for offline machines. A
 *    folder may be the model folder itself (holding `model.safetensors` / `model.json`) or a folder of
 *    model folders named by catalogue id (`resnet34.tv_in1k/model.safetensors`,
 *    `mobilenet_v2_0.35_224_no_top/model.json`). A `.safetensors` or `model.json` file is used as is.
 * 2. The cache: `<cacheDir>/<id>/<file>`, default `<defaultCacheDir()>/weights`.
 * 3. A download into the cache, from a mirror (`mirrorUrl`, or env `FINETUNE_WEIGHTS_MIRROR`: a base
 *    URL laid out like the cache, `<mirror>/<id>/<file>`; http(s) or file:) or else the upstream URL.
 *
 * Every source is verified before use: safetensors headers must account for every byte of the file,
 * LayersModel shards must add up to their manifest, and downloads also check the catalogue's size
 * and checksum where it has them. The downloader keeps partial data in `.part` files and renames only
 * verified files, so a file in the cache is complete.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { downloadFile, type DownloadProgress } from '../download/download-file.js';
import { defaultCacheDir, expandHome } from '../paths.js';
import type { CatalogueEntry, WeightsSpec } from './catalogue.js';
import { parseModelJson, verifyLayersModelFolder } from './layers-model-files.js';
import { inspectSafetensors } from './safetensors.js';

export const WEIGHTS_DIR_ENV = 'FINETUNE_WEIGHTS_DIR';
export const WEIGHTS_MIRROR_ENV = 'FINETUNE_WEIGHTS_MIRROR';

export interface WeightsProgress extends DownloadProgress {
  /** Catalogue id of the weights (`resnet34.tv_in1k`). */
  id: string;
  /** File being fetched, relative to the weights folder. */
  file: string;
  /** 1-based position of `file`, and how many files there are (known once model.json is read). */
  fileIndex: number;
  fileCount?: number;
}

export interface WeightStoreOptions {
  /** Folder for downloaded weights. Default: `<defaultCacheDir()>/weights`. */
  cacheDir?: string;
  /** A weights file or folder to use instead of downloading. Default: env FINETUNE_WEIGHTS_DIR. */
  localPath?: string;
  /** Base URL of a mirror laid out `<mirror>/<id>/<file>`. Default: env FINETUNE_WEIGHTS_MIRROR. */
  mirrorUrl?: string;
  onProgress?: (p: WeightsProgress) => void;
  signal?: AbortSignal;
  /** Passed to the downloader (transient failures in a row before giving up). */
  retries?: number;
  /** Environment to read the defaults from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedWeights {
  /** The `.safetensors` file or the `model.json`. */
  path: string;
  format: WeightsSpec['format'];
  source: 'local' | 'cache' | 'download';
  /** The local path or URL the files came from. */
  from: string;
  /** Bytes fetched over the network (or copied from a file: mirror) by this call. */
  downloadedBytes: number;
}

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** Structural check of weights on disk; throws a message naming the file when they are not usable. */
export async function verifyWeightsOnDisk(spec: WeightsSpec, file: string): Promise<void> {
  if (spec.format === 'safetensors') await inspectSafetensors(file);
  else await verifyLayersModelFolder(file);
}

/** Where in a local file/folder the weights for `spec` are, or undefined when they are not there. */
export async function findLocalWeights(spec: WeightsSpec, localPath: string): Promise<string | undefined> {
  const root = path.resolve(expandHome(localPath));
  if (await isFile(root)) {
    const ok = spec.format === 'safetensors' ? root.endsWith('.safetensors') : path.basename(root) === 'model.json';
    if (!ok) {
      const pth = /\.(pth|pt|bin|ckpt)$/i.test(root) && spec.format === 'safetensors'
        ? ". PyTorch pickles are not read (they can run code); convert once with python: safetensors.torch.save_file(torch.load(path, map_location='cpu'), 'model.safetensors')"
        : '';
      throw new Error(`${root} is not a ${spec.format === 'safetensors' ? '.safetensors file' : 'model.json'}, which ${spec.id} needs${pth}`);
    }
    return root;
  }
  if (!(await isDir(root))) throw new Error(`The weights path ${root} does not exist (set by the weights setting or ${WEIGHTS_DIR_ENV})`);
  for (const candidate of [path.join(root, spec.file), path.join(root, spec.id, spec.file)]) {
    if (await isFile(candidate)) return candidate;
  }
  return undefined;
}

function cacheRoot(options: WeightStoreOptions): string {
  const env = options.env ?? process.env;
  return path.resolve(options.cacheDir ?? path.join(defaultCacheDir(env), 'weights'));
}

function sourceUrl(spec: WeightsSpec, mirror: string | undefined): string {
  if (!mirror) return spec.url;
  return `${mirror.replace(/\/+$/, '')}/${encodeURIComponent(spec.id)}/${spec.file}`;
}

/** Weights from a local file or folder only; throws, saying where it looked, when they are not there. */
export async function resolveLocalWeights(entry: CatalogueEntry, localPath: string): Promise<ResolvedWeights> {
  const spec = entry.weights;
  const found = await findLocalWeights(spec, localPath);
  if (!found) {
    const root = path.resolve(expandHome(localPath));
    throw new Error(`No weights for ${entry.arch} in ${root}: looked for ${path.join(root, spec.file)} and ${path.join(root, spec.id, spec.file)}`);
  }
  await verifyWeightsOnDisk(spec, found).catch((err: Error) => {
    throw new Error(`Local weights for ${entry.arch} are not usable: ${err.message}`);
  });
  return { path: found, format: spec.format, source: 'local', from: found, downloadedBytes: 0 };
}

/** Resolves weights for a catalogue entry to a verified file on disk (see the file comment). */
export async function resolveWeights(entry: CatalogueEntry, options: WeightStoreOptions = {}): Promise<ResolvedWeights> {
  const env = options.env ?? process.env;
  const spec = entry.weights;
  const localPath = options.localPath ?? (env[WEIGHTS_DIR_ENV]?.trim() || undefined);
  // A local folder may hold only some models: those it lacks come from the cache or a download.
  if (localPath && (await findLocalWeights(spec, localPath))) return resolveLocalWeights(entry, localPath);

  const dir = path.join(cacheRoot(options), spec.id);
  const main = path.join(dir, spec.file);
  if (await isFile(main)) {
    try {
      await verifyWeightsOnDisk(spec, main);
      // The checksum was checked before the downloader renamed the file into place; the size is cheap
      // to check again and catches a file from before the catalogue pinned a new revision.
      const size = (await stat(main)).size;
      if (spec.size !== undefined && size !== spec.size) throw new Error(`${main} is ${size} bytes, expected ${spec.size}`);
      return { path: main, format: spec.format, source: 'cache', from: main, downloadedBytes: 0 };
    } catch {
      // Damaged: delete what is there so the downloader, which trusts an existing file, fetches it again.
      await removeWeightFiles(spec, main);
    }
  }

  const mirror = options.mirrorUrl ?? (env[WEIGHTS_MIRROR_ENV]?.trim() || undefined);
  const url = sourceUrl(spec, mirror);
  try {
    const downloadedBytes = await download(spec, url, dir, options);
    return { path: main, format: spec.format, source: 'download', from: url, downloadedBytes };
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    const hints = [
      localPath ? `no ${spec.file} for ${spec.id} was found under ${localPath}` : `set ${WEIGHTS_DIR_ENV} to a folder holding ${spec.id}/${spec.file}`,
      mirror ? `the mirror ${mirror} did not serve it` : `or set ${WEIGHTS_MIRROR_ENV} to a mirror laid out <mirror>/${spec.id}/${spec.file}`,
    ];
    throw new Error(`Could not get the ${entry.arch} weights from ${url}: ${(err as Error).message}\n  Offline? ${hints.join('; ')}.`, { cause: err });
  }
}

async function download(spec: WeightsSpec, url: string, dir: string, options: WeightStoreOptions): Promise<number> {
  let downloaded = 0;
  const fetchOne = async (fileUrl: string, rel: string, index: number, count: number | undefined, expected?: Pick<WeightsSpec, 'size' | 'checksum'>) => {
    const result = await downloadFile({
      url: fileUrl,
      dest: path.join(dir, rel),
      expectedSize: expected?.size,
      checksum: expected?.checksum,
      signal: options.signal,
      retries: options.retries,
      onProgress: options.onProgress && ((p) => options.onProgress!({ ...p, id: spec.id, file: rel, fileIndex: index, fileCount: count })),
    });
    if (result.downloaded) downloaded += result.bytes - result.resumedFromBytes;
  };

  const main = path.join(dir, spec.file);
  if (spec.format === 'safetensors') {
    await fetchOne(url, spec.file, 1, 1, spec);
    await verifyOrDelete(spec, main, [main]);
    return downloaded;
  }

  // A LayersModel: model.json first, then the shards its manifest lists, relative to its URL.
  await fetchOne(url, spec.file, 1, undefined, spec);
  const json = parseModelJson(await readFile(main, 'utf8'), main);
  const shards = json.weightsManifest.flatMap((g) => g.paths);
  for (const [i, shard] of shards.entries()) {
    await fetchOne(new URL(shard, url).href, shard, i + 2, shards.length + 1);
  }
  await verifyOrDelete(spec, main, [main, ...shards.map((s) => path.join(dir, s))]);
  return downloaded;
}

/** Deletes a weights file and, for a LayersModel whose model.json still parses, its shards. */
async function removeWeightFiles(spec: WeightsSpec, main: string): Promise<void> {
  const files = [main];
  if (spec.format === 'tfjs-layers') {
    try {
      const json = parseModelJson(await readFile(main, 'utf8'), main);
      files.push(...json.weightsManifest.flatMap((g) => g.paths).map((p) => path.join(path.dirname(main), p)));
    } catch {
      // model.json itself is damaged; its shards are unknown and will be overwritten by the next download.
    }
  }
  await Promise.all(files.map((f) => rm(f, { force: true })));
}

/** Deletes files that arrived but do not fit together, so the next try starts clean. */
async function verifyOrDelete(spec: WeightsSpec, main: string, files: string[]): Promise<void> {
  try {
    await verifyWeightsOnDisk(spec, main);
  } catch (err) {
    await Promise.all(files.map((f) => rm(f, { force: true })));
    throw new Error(`downloaded files failed verification and were deleted: ${(err as Error).message}`);
  }
}
