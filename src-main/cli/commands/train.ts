import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BATCH_SIZE } from '../../engine/data/data-loader.js';
import { validateImageSize } from '../../engine/data/prepare.js';
import { ARCHS, isArchId } from '../../engine/models/catalogue.js';
import { defaultCacheDir } from '../../engine/paths.js';
import type { EpochRow } from '../../engine/train/learner.js';
import { type RunEvent, type RunRecord, type TrainConfig } from '../../engine/train/run-training.js';
import { WorkerClient } from '../../worker/worker-client.js';
import { UsageError, type CliCommand } from '../command.js';
import { datasetOptionsSpec, readDatasetOptions } from '../dataset-options.js';
import { createProgressBar, formatDuration, type ProgressBar } from '../progress-bar.js';

export const trainCommand: CliCommand = {
  name: 'train',
  summary: "fine-tune a pretrained CNN on a folder of images (fastai's fine_tune)",
  usage: `finetune-studio train <folder> [options]

Does what fastai's lesson 1 does: label and split the images, build vision_learner(dls, arch),
then fine_tune(epochs): one frozen epoch, then the unfrozen epochs with discriminative learning
rates and one-cycle schedules. Prints fastai's epoch tables, saves the model and run.json.

${datasetOptionsSpec.help}
Model and training:
  --arch <name>          ${ARCHS.join(', ')} (default resnet34)
  --weights <path|url>   pretrained weights: a local file/folder, or a mirror base URL (default: the
                         catalogue's ImageNet weights from the cache, FINETUNE_WEIGHTS_DIR, or a download)
  --size <px>            image size (default 224)
  --epochs <n>           unfrozen epochs (default 1; quick mode 0)
  --freeze-epochs <n>    frozen epochs first (default 1)
  --lr <rate>            base learning rate (default 2e-3)
  --bs <n>               batch size (default ${DEFAULT_BATCH_SIZE}; lowered when the training set cannot fill two batches)
  --micro-batch <n>      images per forward pass; larger batches accumulate gradients (default: by backend)
  --mode fastai|quick    fastai (default): fine_tune exactly as fastai, every batch through the whole CNN.
                         quick: the CNN body runs once per image (features cached), then only the head
                         trains (--quick-epochs, default 8) — minutes instead of hours without a GPU,
                         usually a little less accurate; --epochs then adds unfrozen epochs after it (default 0)
  --quick-epochs <n>     head epochs in quick mode (default 8)
  --lr-find              run lr_find first and print its suggestions
  --out <dir>            where the model and run.json go (default ./runs/<time>)
  --resume               continue from the checkpoint in --out after a cancel or crash
  --cache-dir <dir>      cache for decoded images and weights (default: $FINETUNE_STUDIO_CACHE or ~/.cache/finetune-studio)
  --seed <n>             split seed (default 42); also seeds the head and the batch order

Ctrl-C cancels within a batch and keeps the model trained so far.

Example (fastai lesson 1):
  finetune-studio train ~/pets/images --label is-cat --valid-pct 0.2 --seed 42 --size 224 --arch resnet34 --epochs 1`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...datasetOptionsSpec.options,
        arch: { type: 'string', default: 'resnet34' },
        weights: { type: 'string' },
        size: { type: 'string', default: '224' },
        epochs: { type: 'string' },
        'freeze-epochs': { type: 'string', default: '1' },
        lr: { type: 'string', default: '2e-3' },
        bs: { type: 'string' },
        'micro-batch': { type: 'string' },
        'lr-find': { type: 'boolean', default: false },
        mode: { type: 'string', default: 'fastai' },
        'quick-epochs': { type: 'string' },
        out: { type: 'string' },
        resume: { type: 'boolean', default: false },
        'cache-dir': { type: 'string' },
      },
    });
    const config = readTrainConfig(values, positionals);
    return runWithWorker(config);
  },
};

function positiveInt(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number of at least ${min}; got ${value}.`);
  return n;
}

function readTrainConfig(values: Record<string, string | boolean | undefined>, positionals: string[]): TrainConfig {
  const dataset = readDatasetOptions(values as Parameters<typeof readDatasetOptions>[0], positionals);
  const arch = String(values.arch);
  if (!isArchId(arch)) throw new UsageError(`Unknown --arch "${arch}". Choose one of: ${ARCHS.join(', ')}.`);
  const size = Number(values.size);
  try {
    validateImageSize(size);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const lr = Number(values.lr);
  if (!(lr > 0 && lr < 10)) throw new UsageError(`--lr must be a positive learning rate such as 2e-3; got ${values.lr}.`);
  const seed = Number(values.seed);
  const mode = values.mode;
  if (mode !== 'fastai' && mode !== 'quick') throw new UsageError(`Unknown --mode "${mode}". Use fastai or quick.`);
  // Quick mode trains only the head unless asked for unfrozen epochs too.
  const epochs = values.epochs === undefined ? (mode === 'quick' ? 0 : 1) : positiveInt('epochs', String(values.epochs), 0);
  const weightsArg = values.weights as string | undefined;
  const isUrl = weightsArg !== undefined && /^(https?|file):\/\//.test(weightsArg);
  const out = (values.out as string | undefined) ?? path.join('runs', new Date().toISOString().replace(/[:.]/g, '-'));
  return {
    dataset,
    arch,
    weights: weightsArg && !isUrl ? { path: path.resolve(weightsArg) } : 'imagenet',
    ...(isUrl ? { store: { mirrorUrl: weightsArg } } : {}),
    size,
    epochs,
    mode,
    ...(values['quick-epochs'] !== undefined ? { quickEpochs: positiveInt('quick-epochs', String(values['quick-epochs'])) } : {}),
    freezeEpochs: positiveInt('freeze-epochs', String(values['freeze-epochs']), 0),
    baseLr: lr,
    ...(values.bs !== undefined ? { batchSize: positiveInt('bs', String(values.bs)) } : {}),
    ...(values['micro-batch'] ? { microBatch: positiveInt('micro-batch', String(values['micro-batch'])) } : {}),
    lrFind: Boolean(values['lr-find']),
    seed,
    outDir: path.resolve(out),
    cacheDir: path.resolve((values['cache-dir'] as string | undefined) ?? defaultCacheDir()),
    resume: Boolean(values.resume),
  };
}

const PHASE_TITLES: Record<EpochRow['phase'], string> = {
  frozen: 'Frozen body (head and BatchNorm layers train):',
  unfrozen: 'Unfrozen (discriminative learning rates):',
  quick: 'Quick mode: the head trains on cached body features:',
  fit: 'fit_one_cycle:',
};

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : 'nan');

/** fastai's epoch table, printed row by row as epochs finish. */
function tableHeader(): string {
  return `${'epoch'.padEnd(7)}${'train_loss'.padEnd(12)}${'valid_loss'.padEnd(12)}${'error_rate'.padEnd(12)}time`;
}
function tableRow(r: EpochRow): string {
  return `${String(r.epoch).padEnd(7)}${fmt(r.trainLoss).padEnd(12)}${fmt(r.validLoss).padEnd(12)}${fmt(r.errorRate).padEnd(12)}${formatDuration(r.seconds)}`;
}

async function runWithWorker(config: TrainConfig): Promise<number> {
  const client = new WorkerClient();
  let bar: ProgressBar | undefined;
  let barKey = '';
  let batchesPerEpoch = 1;
  const out = process.stdout;
  const onEvent = (e: RunEvent) => {
    switch (e.type) {
      case 'stage':
        bar?.finish();
        bar = undefined;
        console.error(`» ${e.message}`);
        break;
      case 'note':
        console.error(`  ${e.message}`);
        break;
      case 'prepare':
        if (barKey !== 'prepare') {
          bar = createProgressBar({ label: 'Decoding', total: e.total, unit: 'img' });
          barKey = 'prepare';
        }
        bar?.update(e.done, e.total);
        break;
      case 'features':
        if (barKey !== 'features') {
          bar = createProgressBar({ label: 'Features', total: e.total, unit: 'img' });
          barKey = 'features';
        }
        bar?.update(e.done, e.total, e.fromCache ? `${e.fromCache} from cache` : undefined);
        break;
      case 'fit-start':
        bar?.finish();
        bar = undefined;
        batchesPerEpoch = e.batchesPerEpoch;
        out.write(`\n${PHASE_TITLES[e.phase]}\n${tableHeader()}\n`);
        break;
      case 'batch': {
        const key = `${e.phase}-${e.epoch}`;
        if (barKey !== key) {
          bar?.finish();
          bar = createProgressBar({ label: `epoch ${e.epoch}`, total: batchesPerEpoch, unit: 'batch', showRate: false });
          barKey = key;
        }
        bar?.update(e.iter - e.epoch * batchesPerEpoch, batchesPerEpoch, `loss ${e.smoothLoss.toFixed(4)}  ${e.imagesPerSecond.toFixed(1)} img/s  ETA ${formatDuration(e.etaSeconds)}`);
        break;
      }
      case 'epoch':
        bar?.finish();
        bar = undefined;
        barKey = '';
        out.write(`${tableRow(e.row)}\n`);
        break;
      case 'lr-find':
        if (barKey !== 'lr-find') {
          bar = createProgressBar({ label: 'lr_find', total: e.numIt, unit: 'batch', showRate: false });
          barKey = 'lr-find';
        }
        bar?.update(e.iter + 1, e.numIt, `lr ${e.point.lr.toExponential(2)}  loss ${e.point.loss.toFixed(4)}`);
        break;
      default:
        break;
    }
  };
  const job = client.run({ type: 'train', config }, onEvent);
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      console.error('\nCancelling after the current batch (Ctrl-C again to stop at once)…');
      job.cancel();
    } else {
      client.close();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  try {
    const record = await job.result;
    bar?.finish();
    printSummary(record);
    return record.status === 'completed' ? 0 : 130;
  } finally {
    process.off('SIGINT', onSigint);
    client.close();
  }
}

function printSummary(r: RunRecord): void {
  const lines: string[] = [''];
  if (r.lrFind?.suggestions) {
    const s = r.lrFind.suggestions;
    lines.push(`lr_find: valley ${s.valley.lr.toExponential(2)}, slide ${s.slide.lr.toExponential(2)}, minimum/10 ${s.minimum.lr.toExponential(2)}, steep ${s.steep.lr.toExponential(2)}`);
  }
  if (r.validation) {
    const v = r.validation;
    lines.push(`Validation: error_rate ${(v.errorRate * 100).toFixed(2)}% (accuracy ${(v.accuracy * 100).toFixed(2)}%) on ${r.dataset.valid} images`);
    const w = Math.max(6, ...r.vocab.map((c) => c.length));
    lines.push(`Confusion matrix (rows: actual, columns: predicted):`);
    lines.push(`${''.padEnd(w)}  ${r.vocab.map((c) => c.padStart(Math.max(5, c.length))).join(' ')}`);
    v.confusion.forEach((row, i) => lines.push(`${r.vocab[i].padEnd(w)}  ${row.map((n, j) => String(n).padStart(Math.max(5, r.vocab[j].length))).join(' ')}`));
    const top = r.topLosses.slice(0, 5);
    if (top.length) {
      lines.push('Top losses (file: actual → predicted, probability):');
      for (const t of top) lines.push(`  ${t.relPath}: ${t.actualLabel} → ${t.predictedLabel}, ${t.probability.toFixed(3)} (loss ${t.loss.toFixed(3)})`);
    }
  }
  lines.push(`${r.status === 'completed' ? 'Finished' : 'Cancelled'} in ${formatDuration(r.seconds)} on ${r.backend.label}.`);
  lines.push(`Model: ${path.join(r.config.outDir, 'model')}   Record: ${path.join(r.config.outDir, 'run.json')}`);
  console.log(lines.join('\n'));
}
