import path from 'node:path';
import { parseArgs } from 'node:util';
import { hasErrors, scanDataset, type DatasetScan } from '../../engine/data/dataset.js';
import { DEFAULT_MAX_PIXELS } from '../../engine/data/decode.js';
import { ImageCache } from '../../engine/data/image-cache.js';
import { prepareDataset, validateImageSize } from '../../engine/data/prepare.js';
import { defaultCacheDir } from '../../engine/paths.js';
import { UsageError, type CliCommand } from '../command.js';
import { datasetOptionsSpec, readDatasetOptions } from '../dataset-options.js';
import { createProgressBar, formatDuration } from '../progress-bar.js';

const SKIPPED_SHOWN = 20;

export const datasetInspectCommand: CliCommand = {
  name: 'dataset inspect',
  summary: 'label and split a folder of images; print classes, split sizes and skipped files',
  usage: `finetune-studio dataset inspect <folder> [options]

Labels and splits the images in <folder> the way fastai does, decodes every image once into
the cache (so training starts at once later) and reports what it found.

${datasetOptionsSpec.help}
  --size <px>            image size the cache is built for (default 224)
  --no-decode            only label and split; do not decode the images
  --cache-dir <dir>      where decoded images are cached (default: $FINETUNE_STUDIO_CACHE or ~/.cache/finetune-studio)
  --max-pixels <n>       refuse images larger than this many pixels (default ${DEFAULT_MAX_PIXELS})
  --json                 print the report as JSON

Example (fastai lesson 1):
  finetune-studio dataset inspect ~/pets/images --label is-cat --valid-pct 0.2 --seed 42`,
  async run(args) {
    const started = performance.now();
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...datasetOptionsSpec.options,
        size: { type: 'string', default: '224' },
        'no-decode': { type: 'boolean', default: false },
        'cache-dir': { type: 'string' },
        'max-pixels': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const datasetOptions = readDatasetOptions(values, positionals);
    const size = Number(values.size);
    try {
      validateImageSize(size);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const maxPixels = values['max-pixels'] === undefined ? DEFAULT_MAX_PIXELS : Number(values['max-pixels']);
    if (!Number.isInteger(maxPixels) || maxPixels < 1) throw new UsageError(`--max-pixels must be a positive whole number; got ${values['max-pixels']}.`);

    let scan = await scanDataset(datasetOptions);
    let decodeSummary: string | undefined;
    if (!values['no-decode'] && !hasErrors(scan)) {
      const cacheDir = path.join(values['cache-dir'] ?? defaultCacheDir(), 'images');
      const bar = values.json ? undefined : createProgressBar({ label: 'Decoding', total: scan.train.length + scan.valid.length, unit: 'img' });
      const prepared = await prepareDataset(scan, {
        cache: new ImageCache(cacheDir),
        size,
        maxPixels,
        onProgress: (p) => bar?.update(p.done, p.total, p.failed ? `${p.failed} failed` : undefined),
      });
      const s = prepared.stats;
      bar?.finish(`${s.decoded} decoded, ${s.fromCache} from cache, ${s.failed} skipped (${(s.done / s.seconds).toFixed(0)} img/s)`);
      decodeSummary = `${s.decoded} decoded, ${s.fromCache} already cached, ${s.failed} could not be decoded; cache: ${cacheDir}`;
      scan = prepared.scan;
    }
    const seconds = (performance.now() - started) / 1000;
    if (values.json) console.log(JSON.stringify({ ...reportJson(scan), decode: decodeSummary, seconds }, null, 2));
    else console.log(formatReport(scan, decodeSummary, seconds));
    return hasErrors(scan) ? 1 : 0;
  },
};

function reportJson(scan: DatasetScan) {
  return {
    root: scan.root,
    rule: scan.ruleTitle,
    found: scan.found,
    classes: scan.classes,
    train: scan.train.length,
    valid: scan.valid.length,
    skipped: scan.skipped,
    problems: scan.problems,
  };
}

export function formatReport(scan: DatasetScan, decodeSummary: string | undefined, seconds: number): string {
  const lines: string[] = [];
  lines.push(`Folder:  ${scan.root}`);
  lines.push(`Rule:    ${scan.ruleTitle}`);
  const split = scan.options.split;
  lines.push(
    split.kind === 'random'
      ? `Split:   random, ${Math.round(split.validPct * 100)}% validation, seed ${split.seed} (fastai RandomSplitter)`
      : `Split:   by folder, ${split.trainName}/ for training, ${split.validName}/ for validation`,
  );
  lines.push(`Found ${scan.found} image files; ${scan.train.length} for training, ${scan.valid.length} for validation.`);
  lines.push('');
  const width = Math.max(5, ...scan.classes.map((c) => c.name.length));
  lines.push(`${'class'.padEnd(width)}  ${'images'.padStart(6)}  ${'train'.padStart(6)}  ${'valid'.padStart(6)}  examples`);
  for (const c of scan.classes) {
    lines.push(`${c.name.padEnd(width)}  ${String(c.count).padStart(6)}  ${String(c.train).padStart(6)}  ${String(c.valid).padStart(6)}  ${c.examples.join(', ')}`);
  }
  lines.push(`${scan.classes.length} classes`);
  if (decodeSummary) lines.push('', `Images: ${decodeSummary}`);
  if (scan.skipped.length > 0) {
    lines.push('', `Skipped ${scan.skipped.length} file(s):`);
    for (const s of scan.skipped.slice(0, SKIPPED_SHOWN)) lines.push(`  ${s.relPath}: ${s.reason}`);
    if (scan.skipped.length > SKIPPED_SHOWN) lines.push(`  … and ${scan.skipped.length - SKIPPED_SHOWN} more (use --json for the full list)`);
  }
  for (const p of scan.problems) lines.push('', `${p.level === 'error' ? 'Error' : 'Warning'}: ${p.message}`);
  lines.push('', `Time: ${formatDuration(seconds)} (${seconds.toFixed(2)} s)`);
  return lines.join('\n');
}
