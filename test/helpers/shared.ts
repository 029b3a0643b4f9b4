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

export const MOBILENET_V2_035 = sharedPath('weights', 'mobilenet_v2_0.35_224_no_top');

/**
 * A small labelled folder of real Pets photos (symlinks into ../shared, nothing copied): the
 * first `perClass` cats and dogs by name, so tests see real images at a tiny cost.
 */
export async function petsSubset(dir: string, perClass: number): Promise<string> {
  const { mkdir, readdir, symlink } = await import('node:fs/promises');
  const files = (await readdir(PETS_SAMPLE)).sort();
  const cats = files.filter((f) => /^[A-Z]/.test(f)).slice(0, perClass);
  const dogs = files.filter((f) => /^[a-z]/.test(f)).slice(0, perClass);
  const root = path.join(dir, `pets-${perClass}`);
  await mkdir(root, { recursive: true });
  for (const f of [...cats, ...dogs]) await symlink(path.join(PETS_SAMPLE, f), path.join(root, f));
  return root;
}
