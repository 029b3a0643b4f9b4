/**
 * Where the shared real-data folder (`../shared`: Pets photos, pretrained weights, PyTorch fixtures) is.
 * Tests that need it pass `{ skip: sharedSkipReason(...) }` so a fresh clone without it reports
 * a clear skip instead of failing or silently passing.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_DIR = path.resolve(process.env.FINETUNE_SHARED_DIR ?? path.join(REPO_ROOT, '..', 'shared'));

/** Absolute path of something inside ../shared. */
export function sharedPath(...parts: string[]): string {
  return path.join(SHARED_DIR, ...parts);
}

/** `false` when the shared item exists, else a skip message naming what is missing. */
export function sharedSkipReason(...parts: string[]): string | false {
  const p = sharedPath(...parts);
  return existsSync(p) ? false : `needs ${p} (the shared real-data folder beside the repo); it is absent here`;
}

export const PETS_SAMPLE = sharedPath('data', 'oxford-pets-sample');
