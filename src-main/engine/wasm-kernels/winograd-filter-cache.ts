/**
 * Winograd-transformed filters (U = G g G^T, winograd.ts) kept between inference calls, per filter
 * tensor, as XNNPACK keeps its packed filters per weight tensor. Transforming a filter rereads it
 * and writes 4x its size: for ResNet-18 at 128 px, batch 16, that was ~12 ms of a ~130-190 ms
 * forward pass, every pass, for weights that do not change between predictions.
 *
 * - Only while no gradient is recorded (tf.engine().state.gradientDepth === 0), and only the
 *   forward pass's transforms (the input gradient's tap-flipped ones, computed after the tape has
 *   closed, are never kept). In training the weights change every step; the frozen body's do not
 *   in fastai's frozen phase, but keeping its transforms there measured slower (ResNet-18, 128 px,
 *   2 threads: 375-388 against 364-366 ms per step: a kept transform is read cold from memory, a
 *   fresh one from cache). The first training forward call drops every kept transform, so that a
 *   validation pass's do not sit in the heap through the training steps.
 * - An entry is freed as soon as its filter's memory is freed (the backend's disposeData is wrapped
 *   once): a new filter always has a new dataId, so an entry can never be stale. One entry per
 *   filter: a transform of another shape (a stride-2 filter at another output size) replaces it.
 * - At most `filterCacheOptions.maxBytes` in all (ResNet-34's 3x3 filters: ~400 MB). Past that the
 *   least recently used transforms make room: after training, the trained graph's (validation) are
 *   still kept when prediction's folded copy (inference-model.ts) needs room for its own; refusing
 *   new entries instead left ResNet-34's forward pass at 128 px ~8% slower.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, sameShape } from './wasm-ops.js';

/** The cache's size limit (tests lower it). */
export const filterCacheOptions = { maxBytes: 512 * 2 ** 20 };

type DataId = object;

interface FilterCache {
  entries: Map<DataId, Info>;
  bytes: number;
  /** The backend's own disposeData (the cache frees its entries with it). */
  dispose: (dataId: DataId, force?: boolean) => boolean;
}

const caches = new WeakMap<BackendWasm, FilterCache>();

const bytesOf = (info: Info) => info.shape.reduce((a, b) => a * b, 4);

function drop(cache: FilterCache, filterId: DataId): void {
  const kept = cache.entries.get(filterId);
  if (!kept) return;
  cache.entries.delete(filterId);
  cache.bytes -= bytesOf(kept);
  cache.dispose(kept.dataId, true);
}

function cacheOf(backend: BackendWasm): FilterCache {
  let cache = caches.get(backend);
  if (cache) return cache;
  const dispose = backend.disposeData.bind(backend) as FilterCache['dispose'];
  const created: FilterCache = { entries: new Map(), bytes: 0, dispose };
  backend.disposeData = (dataId: DataId, force?: boolean) => {
    const freed = dispose(dataId, force);
    if (freed && created.entries.size > 0) drop(created, dataId);
    return freed;
  };
  caches.set(backend, (cache = created));
  return cache;
}

/** Frees every kept transform (e.g. when training starts). */
function clear(cache: FilterCache): void {
  for (const filterId of [...cache.entries.keys()]) drop(cache, filterId);
}

/** Whether transforms made now would be kept: not while a gradient is being recorded (training). */
export const keepsTransforms = (): boolean => tf.engine().state.gradientDepth === 0;

/**
 * The kept transform of `filter` (shape `shape`), made by `fill` on first use; undefined where
 * none is kept (a gradient is being recorded, or the cache is full): the caller transforms the
 * filter into its own scratch memory.
 */
export function keptFilterTransform(backend: BackendWasm, filter: Info, shape: number[], fill: (u: Info) => void): Info | undefined {
  const cache = cacheOf(backend);
  if (!keepsTransforms()) {
    if (cache.entries.size > 0) clear(cache);
    return undefined;
  }
  const hit = cache.entries.get(filter.dataId);
  // One transform per filter: a stride-2 filter's tiling (so its transform's shape) follows the
  // output size, and a call at another size replaces the kept one.
  if (hit && !sameShape(hit.shape, shape)) drop(cache, filter.dataId);
  else if (hit) {
    // Most recently used last: the Map's order is the eviction order.
    cache.entries.delete(filter.dataId);
    cache.entries.set(filter.dataId, hit);
    return hit;
  }
  const bytes = shape.reduce((a, b) => a * b, 4);
  if (bytes > filterCacheOptions.maxBytes) return undefined;
  for (const oldest of cache.entries.keys()) {
    if (cache.bytes + bytes <= filterCacheOptions.maxBytes) break;
    drop(cache, oldest);
  }
  const u = backend.makeOutput(shape, 'float32');
  try {
    fill(u);
  } catch (err) {
    cache.dispose(u.dataId, true);
    throw err;
  }
  cache.entries.set(filter.dataId, u);
  cache.bytes += bytes;
  return u;
}

/** Transforms kept now (tests). */
export function keptFilterTransforms(backend: BackendWasm): { count: number; bytes: number } {
  const cache = caches.get(backend);
  return { count: cache?.entries.size ?? 0, bytes: cache?.bytes ?? 0 };
}
