/**
 * Train/validation splits, as fastai's `RandomSplitter` and `GrandparentSplitter` make them.
 * Splits are computed over every image file found (before labelling or decoding), as fastai
 * does, so a skipped bad file never shifts which other images land in validation.
 */
import { torchRandperm } from './mt19937.js';

export type SplitSpec =
  | { kind: 'random'; validPct: number; seed: number }
  | { kind: 'folder'; trainName: string; validName: string };

export interface SplitResult {
  /** Indices into the item list, in fastai's order. */
  train: number[];
  valid: number[];
  /** Items in neither set (folder split only), with why. */
  unassigned: { index: number; reason: string }[];
}

export function validateSplitSpec(spec: SplitSpec): void {
  if (spec.kind === 'random') {
    if (!(Number.isFinite(spec.validPct) && spec.validPct >= 0 && spec.validPct < 1)) {
      throw new Error(`The validation share must be between 0 and 1 (e.g. 0.2 for 20%); got ${spec.validPct}.`);
    }
    if (!(Number.isInteger(spec.seed) && spec.seed >= 0 && spec.seed <= 0xffffffff)) {
      throw new Error(`The split seed must be a whole number from 0 to 4294967295; got ${spec.seed}.`);
    }
  } else if (!spec.trainName || !spec.validName || spec.trainName === spec.validName) {
    throw new Error('The folder split needs two different folder names for training and validation (e.g. train and valid).');
  }
}

/** `RandomSplitter(valid_pct, seed)`: valid = perm[:cut], train = perm[cut:], cut = int(valid_pct * n). */
export function randomSplit(n: number, validPct: number, seed: number): SplitResult {
  const perm = torchRandperm(n, seed);
  const cut = Math.trunc(validPct * n);
  return { train: perm.slice(cut), valid: perm.slice(0, cut), unassigned: [] };
}

/**
 * Split by the top-level folder an image is in (`train/…`, `valid/…`), which is fastai's
 * `GrandparentSplitter` for the usual `train/<class>/img.jpg` layout.
 */
export function folderSplit(relPaths: readonly string[], trainName: string, validName: string): SplitResult {
  const result: SplitResult = { train: [], valid: [], unassigned: [] };
  relPaths.forEach((rel, index) => {
    const top = rel.split('/')[0];
    if (rel.includes('/') && top === trainName) result.train.push(index);
    else if (rel.includes('/') && top === validName) result.valid.push(index);
    else result.unassigned.push({ index, reason: `not inside a "${trainName}/" or "${validName}/" folder` });
  });
  return result;
}

export function splitItems(relPaths: readonly string[], spec: SplitSpec): SplitResult {
  validateSplitSpec(spec);
  return spec.kind === 'random' ? randomSplit(relPaths.length, spec.validPct, spec.seed) : folderSplit(relPaths, spec.trainName, spec.validName);
}
