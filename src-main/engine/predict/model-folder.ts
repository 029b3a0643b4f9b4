/**
 * What kind of model a folder holds: a training run (`run.json` + `model/`) or a Finetune Studio
 * export (`metadata.json` beside `model.json` or `model.onnx`). Anything else gets an error that says
 * what the folder looks like and which folder or command would work.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MODEL_CARD_FILE, MODEL_CARD_FORMAT, MODEL_CARD_VERSION, type ModelCard } from '../export/model-card.js';
import { readRunFolder, RUN_RECORD, type RunFolder } from './run-model.js';

export type ModelFolder = { kind: 'run'; dir: string; run: RunFolder } | { kind: 'tfjs' | 'onnx'; dir: string; card: ModelCard };

/** Files a user might pick instead of their folder. */
const KNOWN_FILES = new Set([MODEL_CARD_FILE, RUN_RECORD, 'model.json', 'model.onnx']);

async function statOf(p: string) {
  return fs.stat(p).catch(() => undefined);
}

/** A plain relative path inside the folder (metadata.json is data from disk: never follow it elsewhere). */
function safeRelative(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && !path.isAbsolute(p) && !p.split(/[\\/]/).includes('..');
}

export async function readModelCard(dir: string): Promise<ModelCard> {
  const file = path.join(dir, MODEL_CARD_FILE);
  let card: ModelCard;
  try {
    card = JSON.parse(await fs.readFile(file, 'utf8')) as ModelCard;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ? `cannot be read (${(err as NodeJS.ErrnoException).code})` : `is not valid JSON (${(err as Error).message})`;
    throw new Error(`${file} ${why}; the export is damaged. Export the run again.`);
  }
  if (!card || card.format !== MODEL_CARD_FORMAT) {
    throw new Error(`${file} is not a Finetune Studio model card (its "format" is ${JSON.stringify(card?.format)}, expected "${MODEL_CARD_FORMAT}"); this folder was not written by \`finetune-studio export\`.`);
  }
  if (typeof card.version !== 'number' || card.version > MODEL_CARD_VERSION) {
    throw new Error(`${file} has card version ${JSON.stringify(card.version)}, newer than this app reads (${MODEL_CARD_VERSION}); update Finetune Studio.`);
  }
  const problems: string[] = [];
  if (card.modelFormat !== 'tfjs' && card.modelFormat !== 'onnx') problems.push(`modelFormat ${JSON.stringify(card.modelFormat)} (expected "tfjs" or "onnx")`);
  if (!Array.isArray(card.labels) || card.labels.length === 0 || !card.labels.every((l) => typeof l === 'string')) problems.push('labels (expected a non-empty list of names)');
  if (!card.input || !Number.isInteger(card.input.size) || card.input.size < 1 || card.input.layout !== 'NHWC' || typeof card.input.name !== 'string') problems.push('input (size, layout NHWC and name)');
  if (!card.output || typeof card.output.name !== 'string') problems.push('output name');
  if (!card.files || !safeRelative(card.files.model) || !Array.isArray(card.files.weights) || !card.files.weights.every(safeRelative)) problems.push('files (plain relative paths)');
  if (problems.length) throw new Error(`${file} is damaged: bad or missing ${problems.join(', ')}. Export the run again.`);
  return card;
}

/** Identifies the folder (or a known file inside it) and reads what describes it. */
export async function inspectModelFolder(location: string): Promise<ModelFolder> {
  let dir = path.resolve(location);
  const s = await statOf(dir);
  if (!s) throw new Error(`${dir} does not exist. Pick a training run folder or an exported model folder.`);
  if (s.isFile()) {
    if (!KNOWN_FILES.has(path.basename(dir))) throw new Error(`${dir} is a file. Pick the folder of a training run or of an exported model.`);
    dir = path.dirname(dir);
  }
  if (await statOf(path.join(dir, RUN_RECORD))) return { kind: 'run', dir, run: await readRunFolder(dir) };
  if (await statOf(path.join(dir, MODEL_CARD_FILE))) {
    const card = await readModelCard(dir);
    return { kind: card.modelFormat, dir, card };
  }
  const parent = path.dirname(dir);
  if ((await statOf(path.join(dir, 'checkpoint.json'))) && (await statOf(path.join(parent, RUN_RECORD)))) {
    throw new Error(`${dir} is the saved weights inside a training run; pick the run folder ${parent} instead.`);
  }
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  if (names.includes('model.json')) {
    throw new Error(
      `${dir} holds a TF.js model.json but no ${MODEL_CARD_FILE}: it was not exported by Finetune Studio, so its labels, input size and preprocessing are unknown. ` +
        'Export a training run with `finetune-studio export <run> --format tfjs`.',
    );
  }
  if (names.some((n) => n.toLowerCase().endsWith('.onnx'))) {
    throw new Error(
      `${dir} holds an ONNX file but no ${MODEL_CARD_FILE}: it was not exported by Finetune Studio, so its labels, input layout and preprocessing are unknown. ` +
        'Export a training run with `finetune-studio export <run> --format onnx`.',
    );
  }
  throw new Error(`${dir} is neither a training run (no ${RUN_RECORD}) nor an exported model (no ${MODEL_CARD_FILE}). Pick the folder that training or \`finetune-studio export\` wrote.`);
}
