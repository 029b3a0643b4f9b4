/**
 * From a folder to a labelled, split dataset description (no pixels yet): find the images,
 * split them as fastai does, label them by the chosen rule, and report classes, skipped files
 * and problems that would make training pointless.
 */
import path from 'node:path';
import { compareCodePoints, findImageFiles, IMAGE_EXTENSIONS } from './find-images.js';
import { createLabelRule, type LabelRuleSpec } from './label-rules.js';
import { splitItems, type SplitSpec } from './split.js';

export interface DatasetItem {
  /** Path relative to the dataset folder, `/`-separated. */
  relPath: string;
  label: string;
  /** Index of `label` in the vocabulary. */
  classIndex: number;
}

export type SkipStage = 'find' | 'label' | 'split' | 'decode';

export interface SkippedFile {
  relPath: string;
  stage: SkipStage;
  reason: string;
}

export interface ClassSummary {
  name: string;
  count: number;
  train: number;
  valid: number;
  /** A few file names, so the user can see the rule did what they meant. */
  examples: string[];
}

export interface Problem {
  /** `error`: training cannot start; `warning`: it can, but the user should know. */
  level: 'error' | 'warning';
  message: string;
}

export interface DatasetOptions {
  root: string;
  label: LabelRuleSpec;
  split: SplitSpec;
  /** Classes with fewer images get a warning (default 5). */
  minImagesPerClass?: number;
}

export interface DatasetScan {
  root: string;
  ruleTitle: string;
  options: DatasetOptions;
  /** How many image files were found (what the split was computed over). */
  found: number;
  /** Sorted class names, as fastai's CategoryMap orders them. */
  vocab: string[];
  /** In fastai's split order. */
  train: DatasetItem[];
  valid: DatasetItem[];
  classes: ClassSummary[];
  skipped: SkippedFile[];
  /** Warnings about the rule's own input (e.g. CSV names matching no file). */
  ruleNotes: string[];
  problems: Problem[];
}

const EXAMPLES_PER_CLASS = 3;
export const DEFAULT_MIN_IMAGES_PER_CLASS = 5;

export async function scanDataset(options: DatasetOptions): Promise<DatasetScan> {
  const rule = await createLabelRule(options.label);
  const { root, files, unreadable } = await findImageFiles(options.root);
  const skipped: SkippedFile[] = unreadable.map((u) => ({ relPath: path.relative(root, u.path) || '.', stage: 'find', reason: u.reason }));

  const split = splitItems(files, options.split);
  for (const { index, reason } of split.unassigned) skipped.push({ relPath: files[index], stage: 'split', reason });

  const labelled = new Map<number, string>();
  files.forEach((relPath, i) => {
    const outcome = rule.label(relPath);
    if (outcome.ok) labelled.set(i, outcome.label);
    else skipped.push({ relPath, stage: 'label', reason: outcome.reason });
  });

  const inSplit = new Set([...split.train, ...split.valid]);
  const vocab = [...new Set([...labelled].filter(([i]) => inSplit.has(i)).map(([, l]) => l))].sort(compareCodePoints);
  const classOf = new Map(vocab.map((name, i) => [name, i]));
  const toItems = (indices: number[]) =>
    indices.filter((i) => labelled.has(i)).map((i) => ({ relPath: files[i], label: labelled.get(i)!, classIndex: classOf.get(labelled.get(i)!)! }));

  const scan: DatasetScan = {
    root,
    ruleTitle: rule.title,
    options,
    found: files.length,
    vocab,
    train: toItems(split.train),
    valid: toItems(split.valid),
    classes: [],
    skipped,
    ruleNotes: rule.notes(new Set(files)),
    problems: [],
  };
  return summarize(scan);
}

/**
 * Recomputes class counts and problems from the current train/valid lists (called again after
 * decoding drops bad files). The vocabulary stays fixed so class indices never move.
 */
export function summarize(scan: DatasetScan): DatasetScan {
  const classes: ClassSummary[] = scan.vocab.map((name) => ({ name, count: 0, train: 0, valid: 0, examples: [] }));
  for (const [items, key] of [[scan.train, 'train'], [scan.valid, 'valid']] as const) {
    for (const item of items) {
      const c = classes[item.classIndex];
      c.count++;
      c[key]++;
      if (c.examples.length < EXAMPLES_PER_CLASS) c.examples.push(item.relPath);
    }
  }
  for (const c of classes) c.examples.sort(compareCodePoints);

  const problems: Problem[] = scan.ruleNotes.map((message) => ({ level: 'warning', message }));
  const add = (level: Problem['level'], message: string) => problems.push({ level, message });
  const minPerClass = scan.options.minImagesPerClass ?? DEFAULT_MIN_IMAGES_PER_CLASS;
  const total = scan.train.length + scan.valid.length;

  if (scan.found === 0) {
    const exts = [...IMAGE_EXTENSIONS].filter((e) => ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif'].includes(e)).join(', ');
    add('error', `No images were found in ${scan.root} or its subfolders (looked for ${exts} and other image types; hidden files are ignored). Pick the folder that contains the photos.`);
  } else if (total === 0) {
    add('error', `None of the ${scan.found} images could be used: see the skipped files for why (often the label rule does not fit the file names).`);
  } else if (classes.filter((c) => c.count > 0).length < 2) {
    const only = classes.find((c) => c.count > 0)?.name ?? '?';
    add('error', `The rule "${scan.ruleTitle}" put all ${total} images in one class ("${only}"). A classifier needs at least two classes: pick a rule that tells them apart, or add images of another class.`);
  }
  if (scan.train.length === 0 && total > 0) add('error', 'The training set is empty: lower the validation share or add images to the training folder.');
  if (scan.valid.length === 0 && total > 0) add('warning', 'The validation set is empty, so error rates cannot be measured: use a validation share above 0 (0.2 is usual).');
  for (const c of classes) {
    if (c.count > 0 && c.count < minPerClass) {
      add('warning', `Class "${c.name}" has only ${c.count} image(s) (${c.train} for training, ${c.valid} for validation); add at least ${minPerClass}, or check the label rule.`);
    } else if (c.count > 0 && c.train === 0) {
      add('warning', `Class "${c.name}" has no training images (all ${c.count} are in the validation set); the model cannot learn it.`);
    }
  }
  return { ...scan, classes, problems };
}

export function hasErrors(scan: DatasetScan): boolean {
  return scan.problems.some((p) => p.level === 'error');
}
