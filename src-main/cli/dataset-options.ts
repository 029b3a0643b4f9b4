/**
 * The command-line options that describe a dataset (folder, label rule, split), shared by every
 * command that reads one (`dataset inspect`, later `train`), validated into engine types.
 */
import type { DatasetOptions } from '../engine/data/dataset.js';
import { compileLabelPattern, type LabelRuleSpec } from '../engine/data/label-rules.js';
import { validateSplitSpec, type SplitSpec } from '../engine/data/split.js';
import { UsageError } from './command.js';

export const datasetOptionsSpec = {
  options: {
    label: { type: 'string' },
    pattern: { type: 'string' },
    csv: { type: 'string' },
    split: { type: 'string', default: 'random' },
    'valid-pct': { type: 'string', default: '0.2' },
    seed: { type: 'string', default: '42' },
    'train-folder': { type: 'string', default: 'train' },
    'valid-folder': { type: 'string', default: 'valid' },
  },
  help: `Labels (--label is required):
  --label is-cat         cat if the file name starts with an uppercase letter, else dog (fastai's is_cat)
  --label folder         the name of the folder each image is in
  --label regex --pattern <re>
                         the first (group) of a regular expression on the file name, e.g. '^(.+)_\\d+\\.'
  --label csv --csv <file>
                         a CSV of name,label rows
Split:
  --split random         a random share for validation (default), as fastai's RandomSplitter
  --valid-pct <0..1>     validation share (default 0.2)
  --seed <n>             split seed (default 42)
  --split folder         by top-level folder: --train-folder (default train), --valid-folder (default valid)`,
} as const;

interface DatasetValues {
  label?: string;
  pattern?: string;
  csv?: string;
  split?: string;
  'valid-pct'?: string;
  seed?: string;
  'train-folder'?: string;
  'valid-folder'?: string;
}

function readLabel(values: DatasetValues): LabelRuleSpec {
  switch (values.label) {
    case undefined:
      throw new UsageError('Say how images are labelled with --label is-cat, folder, regex or csv.');
    case 'is-cat':
    case 'folder':
      return { kind: values.label };
    case 'regex':
      if (!values.pattern) throw new UsageError("--label regex needs --pattern, e.g. --pattern '^(.+)_\\d+\\.'");
      try {
        compileLabelPattern(values.pattern);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      return { kind: 'regex', pattern: values.pattern };
    case 'csv':
      if (!values.csv) throw new UsageError('--label csv needs --csv <file> naming the CSV of name,label rows.');
      return { kind: 'csv', csvPath: values.csv };
    default:
      throw new UsageError(`Unknown --label "${values.label}". Use is-cat, folder, regex or csv.`);
  }
}

function readSplit(values: DatasetValues): SplitSpec {
  let spec: SplitSpec;
  if (values.split === 'random') {
    const validPct = Number(values['valid-pct']);
    const seed = Number(values.seed);
    spec = { kind: 'random', validPct, seed };
  } else if (values.split === 'folder') {
    spec = { kind: 'folder', trainName: values['train-folder'] ?? 'train', validName: values['valid-folder'] ?? 'valid' };
  } else {
    throw new UsageError(`Unknown --split "${values.split}". Use random or folder.`);
  }
  try {
    validateSplitSpec(spec);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return spec;
}

export function readDatasetOptions(values: DatasetValues, positionals: string[]): DatasetOptions {
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'Name the folder of images.' : `Expected one folder, got ${positionals.length}: ${positionals.join(' ')}`);
  }
  return { root: positionals[0], label: readLabel(values), split: readSplit(values) };
}
