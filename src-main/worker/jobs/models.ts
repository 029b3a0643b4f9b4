/**
 * The model picker's data: every catalogue architecture with its download size, a speed hint and
 * whether its ImageNet weights are already on disk (so the wizard can offer the download, with a
 * progress bar and cancel, before training rather than in the middle of it).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ARCHS, CATALOGUE, type ArchId } from '../../engine/models/catalogue.js';
import { findLocalWeights, resolveWeights, WEIGHTS_DIR_ENV, type WeightsProgress } from '../../engine/models/weight-store.js';
import type { ModelChoice } from '../../api/contract.js';

/**
 * Relative training cost per image, from multiply-adds at 224 px (ResNet-50 4.1 G, ResNet-34 3.6 G,
 * ResNet-18 1.8 G, MobileNetV2 1.0 0.3 G, v1 0.25 0.04 G), bucketed so the hint stays honest.
 */
const SPEED: Record<ArchId, ModelChoice['speed']> = {
  resnet18: 'medium',
  resnet34: 'slow',
  resnet50: 'slow',
  'mobilenet_v2_0.35': 'fastest',
  'mobilenet_v2_0.50': 'fastest',
  'mobilenet_v2_0.75': 'fast',
  'mobilenet_v2_1.00': 'fast',
  'mobilenet_v1_0.25': 'fastest',
  'mobilenet_v1_0.50': 'fastest',
  'mobilenet_v1_0.75': 'fast',
  'mobilenet_v1_1.00': 'fast',
};

const isFile = async (p: string) => (await stat(p).catch(() => undefined))?.isFile() ?? false;

export async function listModels(cacheDir: string, env: NodeJS.ProcessEnv = process.env): Promise<ModelChoice[]> {
  const localDir = env[WEIGHTS_DIR_ENV]?.trim();
  return Promise.all(
    ARCHS.map(async (arch) => {
      const entry = CATALOGUE[arch];
      let cachedAt: string | undefined;
      if (localDir) cachedAt = await findLocalWeights(entry.weights, localDir).catch(() => undefined);
      if (!cachedAt) {
        const file = path.join(cacheDir, 'weights', entry.weights.id, entry.weights.file);
        if (await isFile(file)) cachedAt = file;
      }
      return {
        arch,
        title: entry.title,
        family: entry.family,
        approxBytes: entry.weights.approxBytes,
        speed: SPEED[arch],
        cached: cachedAt !== undefined,
        ...(cachedAt ? { cachedAt } : {}),
        licence: entry.licence,
      };
    }),
  );
}

export async function getWeights(arch: string, cacheDir: string, emit: (p: WeightsProgress) => void, signal: AbortSignal): Promise<{ path: string }> {
  if (!(ARCHS as readonly string[]).includes(arch)) throw new Error(`Unknown architecture "${arch}". Available: ${ARCHS.join(', ')}.`);
  const resolved = await resolveWeights(CATALOGUE[arch as ArchId], { cacheDir: path.join(cacheDir, 'weights'), onProgress: emit, signal });
  return { path: resolved.path };
}
