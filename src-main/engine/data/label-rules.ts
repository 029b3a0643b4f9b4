/**
 * Label rules: how a file's label is read from its path, as fastai's label functions do
 * (`is_cat`, `RegexLabeller`, `parent_label`, `ColReader` over a CSV). Each has a plain-language
 * title for the UI. A file a rule cannot label is skipped with the reason, never guessed.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseCsv } from './csv.js';

export type LabelRuleSpec =
  | { kind: 'is-cat' }
  | { kind: 'regex'; pattern: string }
  | { kind: 'folder' }
  | { kind: 'csv'; csvPath: string };

export type LabelRuleKind = LabelRuleSpec['kind'];

export type LabelOutcome = { ok: true; label: string } | { ok: false; reason: string };

export interface LabelRule {
  spec: LabelRuleSpec;
  /** One sentence a non-programmer understands. */
  title: string;
  /** Labels one image from its path relative to the dataset folder (with `/` separators). */
  label(relPath: string): LabelOutcome;
  /** Problems found in the rule's own input (e.g. CSV rows naming missing files), reported with the scan. */
  notes(found: ReadonlySet<string>): string[];
}

/** The choices the UI offers, with their explanations. `is-cat` is fastai's lesson-one rule. */
export const LABEL_RULE_CHOICES: { kind: LabelRuleKind; title: string; explain: string }[] = [
  {
    kind: 'is-cat',
    title: 'Cat if the file name starts with an uppercase letter, otherwise dog',
    explain: "The Oxford-IIIT Pet convention (fastai's is_cat): cat breeds are capitalised, e.g. Siamese_12.jpg, dog breeds are not, e.g. pug_3.jpg.",
  },
  {
    kind: 'folder',
    title: 'The name of the folder each image is in',
    explain: 'For folders like dogs/rex.jpg and cats/tom.jpg (fastai parent_label).',
  },
  {
    kind: 'regex',
    title: 'A part of the file name picked out by a pattern',
    explain: 'A regular expression with one group in parentheses; the group is the label. ^(.+)_\\d+\\. gives the 37 pet breeds.',
  },
  {
    kind: 'csv',
    title: 'A table (CSV) listing each file name and its label',
    explain: 'A .csv file with two columns, name and label; names are file names or paths relative to the folder.',
  },
];

const fileNameOf = (relPath: string) => relPath.slice(relPath.lastIndexOf('/') + 1);

function isCatRule(): LabelRule {
  // Python's str.isupper() on the first character: an uppercase (cased) letter.
  const upper = /^\p{Uppercase}/u;
  return {
    spec: { kind: 'is-cat' },
    title: LABEL_RULE_CHOICES[0].title,
    label: (relPath) => ({ ok: true, label: upper.test(fileNameOf(relPath)) ? 'cat' : 'dog' }),
    notes: () => [],
  };
}

function folderRule(): LabelRule {
  return {
    spec: { kind: 'folder' },
    title: LABEL_RULE_CHOICES[1].title,
    label: (relPath) => {
      const parts = relPath.split('/');
      if (parts.length < 2) {
        return { ok: false, reason: 'the image is directly in the chosen folder, not in a class folder; move it into a folder named after its class' };
      }
      return { ok: true, label: parts[parts.length - 2] };
    },
    notes: () => [],
  };
}

export function compileLabelPattern(pattern: string): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(pattern, 'u');
  } catch (err) {
    throw new Error(`The label pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`);
  }
  // Counting groups by matching the empty alternative: `new RegExp(p + '|')` matches '' with all groups undefined.
  const groups = new RegExp(`${pattern}|`, 'u').exec('')!.length - 1;
  if (groups < 1) {
    throw new Error(`The label pattern ${JSON.stringify(pattern)} has no group: put parentheses around the part of the name that is the label, e.g. ^(.+)_\\d+\\.`);
  }
  return re;
}

function regexRule(pattern: string): LabelRule {
  const re = compileLabelPattern(pattern);
  return {
    spec: { kind: 'regex', pattern },
    title: `${LABEL_RULE_CHOICES[2].title}: ${pattern}`,
    label: (relPath) => {
      // fastai's RegexLabeller uses re.search on the name: the pattern may match anywhere.
      const m = re.exec(fileNameOf(relPath));
      if (!m) return { ok: false, reason: `the file name does not match the label pattern ${pattern}` };
      const label = m[1];
      if (label === undefined || label === '') return { ok: false, reason: `the label pattern ${pattern} matched but its group captured nothing` };
      return { ok: true, label };
    },
    notes: () => [],
  };
}

async function csvRule(csvPath: string): Promise<LabelRule> {
  let text: string;
  try {
    text = await fs.readFile(csvPath, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read the labels file ${csvPath} (${(err as NodeJS.ErrnoException).code}). Check the path.`);
  }
  let rows;
  try {
    rows = parseCsv(text);
  } catch (err) {
    throw new Error(`The labels file ${csvPath} is not valid CSV: ${(err as Error).message}`);
  }
  const isHeader = (f: string[]) => f.length >= 2 && /^(name|file|filename|fname|path|image)$/i.test(f[0].trim()) && /^(label|class|category|target|y)$/i.test(f[1].trim());
  if (rows.length > 0 && isHeader(rows[0].fields)) rows = rows.slice(1);
  if (rows.length === 0) throw new Error(`The labels file ${csvPath} has no rows. It needs lines like "photo1.jpg,cat".`);

  const labels = new Map<string, { label: string; line: number }>();
  for (const { line, fields } of rows) {
    if (fields.length < 2) throw new Error(`${csvPath} line ${line}: expected two columns "name,label", found ${fields.length}.`);
    const name = fields[0].trim().replace(/\\/g, '/').replace(/^\.\//, '');
    const label = fields[1].trim();
    if (!name || !label) throw new Error(`${csvPath} line ${line}: the name or the label is empty.`);
    const prev = labels.get(name);
    if (prev && prev.label !== label) {
      throw new Error(`${csvPath} lists ${name} twice with different labels (line ${prev.line}: "${prev.label}", line ${line}: "${label}"). Keep one.`);
    }
    labels.set(name, { label, line });
  }
  // Names without a folder also match by file name, unless that would be ambiguous.
  return {
    spec: { kind: 'csv', csvPath },
    title: `${LABEL_RULE_CHOICES[3].title}: ${path.basename(csvPath)}`,
    label: (relPath) => {
      const hit = labels.get(relPath) ?? labels.get(fileNameOf(relPath));
      return hit ? { ok: true, label: hit.label } : { ok: false, reason: `the file is not listed in ${path.basename(csvPath)}` };
    },
    notes: (found) => {
      const names = new Set<string>();
      for (const f of found) {
        names.add(f);
        names.add(fileNameOf(f));
      }
      const missing = [...labels.keys()].filter((n) => !names.has(n));
      if (missing.length === 0) return [];
      const shown = missing.slice(0, 5).join(', ');
      return [`${missing.length} name(s) in ${path.basename(csvPath)} match no image in the folder (e.g. ${shown}).`];
    },
  };
}

export async function createLabelRule(spec: LabelRuleSpec): Promise<LabelRule> {
  switch (spec.kind) {
    case 'is-cat':
      return isCatRule();
    case 'folder':
      return folderRule();
    case 'regex':
      return regexRule(spec.pattern);
    case 'csv':
      return csvRule(spec.csvPath);
  }
}
