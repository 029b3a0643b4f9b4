/**
 * `npm run bench:train`: training images/second (forward + backward + fastai Adam update) of each
 * architecture (body + fastai head) at 224 and 128, batch 16, unfrozen and frozen (head and
 * BatchNorm layers only, fastai's first fine_tune phase), on the active TF.js backend, through the
 * app's own Learner — next to PyTorch doing the same step on the same model, batch and size in the
 * same run (test/bench/torch_reference.py, mode train / train_frozen), measured alternately so both
 * see the same load.
 *
 * Options: --arch resnet18,mobilenet_v2_0.35  --sizes 224,128  --batch 16  --iters 3  --warmup-seconds 3
 *          --torch-threads N  --no-torch  --no-frozen
 * PyTorch runs as many intra-op threads as the wasm backend (FINETUNE_WASM_THREADS=1 for the
 * steadiest comparison), or --torch-threads N.
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { describeBackend, selectBackend } from '../../src-main/engine/backend.js';
import type { Batch } from '../../src-main/engine/data/data-loader.js';
import type { PreparedItem } from '../../src-main/engine/data/prepare.js';
import type { ArchId } from '../../src-main/engine/models/catalogue.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { imageNetwork, Learner, type BatchSource } from '../../src-main/engine/train/learner.js';
import { defaultMicroBatch } from '../../src-main/engine/train/run-training.js';
import { arg, localWeights, PYTHON, TorchReference, torchThreadsToMatch, type TorchMode, WARMUP_SECONDS } from './support.js';

const ARCH_LIST = arg('arch', 'resnet18,resnet34,mobilenet_v2_0.35,mobilenet_v1_0.25').split(',') as ArchId[];
const SIZES = arg('sizes', '224,128').split(',').map(Number);
const BATCH = Number(arg('batch', '16'));
const ITERS = Number(arg('iters', '3'));
const NUM_CLASSES = 37;

/**
 * Random images and labels, the same every batch (speed does not depend on the pixels): batches
 * for WARMUP_SECONDS (at least one), then ITERS timed ones. `length` only sizes the one-cycle
 * schedule, which the bench never finishes.
 */
class RandomBatches implements BatchSource {
  readonly items: PreparedItem[];
  readonly length: number;
  /** Batches handed out before the timed ones. */
  warmupBatches = 0;
  private readonly x: Float32Array;
  private readonly y: Int32Array;
  constructor(
    readonly batchSize: number,
    private readonly timed: number,
    size: number,
  ) {
    this.length = timed === 0 ? 0 : 10_000;
    this.items = Array.from({ length: batchSize }, (_, i) => ({ relPath: `random-${i}`, label: 'x', classIndex: i % NUM_CLASSES, cacheKey: '' }));
    this.x = Float32Array.from({ length: batchSize * size * size * 3 }, () => Math.random() * 2 - 1);
    this.y = Int32Array.from({ length: batchSize }, (_, i) => i % NUM_CLASSES);
  }
  async *epoch(): AsyncGenerator<Batch> {
    if (this.timed === 0) return;
    const batch = { x: this.x, y: this.y, n: this.batchSize, items: this.items };
    // Each yield resumes once the learner has taken its step on the previous batch.
    const start = performance.now();
    do {
      yield batch;
      this.warmupBatches++;
    } while (performance.now() - start < WARMUP_SECONDS * 1000);
    for (let b = 0; b < this.timed; b++) yield batch;
  }
}

/** Median images/s of `ITERS` training steps after WARMUP_SECONDS of them, through the Learner. */
async function timeTraining(arch: ArchId, size: number, frozen: boolean, backendName: string): Promise<number> {
  const weights = await localWeights(arch);
  if (!weights) throw new Error('its model.json is not on this machine (set FINETUNE_WEIGHTS_DIR)');
  const m = await createModel({ arch, numClasses: NUM_CLASSES, weights, inputSize: size, seed: 1 });
  const stamps: number[] = [];
  const train = new RandomBatches(BATCH, ITERS, size);
  const learner = new Learner({
    network: imageNetwork(m),
    train,
    valid: new RandomBatches(BATCH, 0, size),
    microBatch: defaultMicroBatch(backendName, size, BATCH),
    onEvent: (e) => e.type === 'batch' && stamps.push(performance.now()),
  });
  try {
    learner.setFrozen(frozen);
    await learner.fitOneCycle(1, { lrMax: [1e-4, 1e-4, 1e-3] });
    // A timed step runs from the 'batch' event of the step before it to its own.
    const timed = stamps.slice(train.warmupBatches - 1);
    const times = timed.slice(1).map((t, i) => (t - timed[i]) / 1000);
    if (times.length !== ITERS) throw new Error(`expected ${ITERS} timed steps, got ${times.length}`);
    times.sort((a, b) => a - b);
    return BATCH / times[Math.floor(times.length / 2)];
  } finally {
    learner.dispose();
    m.dispose();
  }
}

interface Row {
  arch: string;
  size: number;
  mode: TorchMode;
  tfjs?: number;
  torch?: number;
  note?: string;
}

const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));

async function main(): Promise<void> {
  const backend = await selectBackend();
  console.log(describeBackend(backend));
  const useTorch = !process.argv.includes('--no-torch') && TorchReference.available();
  const torch = useTorch ? await TorchReference.start(await torchThreadsToMatch(backend.name)) : undefined;
  const modes: TorchMode[] = process.argv.includes('--no-frozen') ? ['train'] : ['train', 'train_frozen'];
  console.log(`${os.availableParallelism()} CPU cores; ${torch ? torch.banner : 'no PyTorch'}`);
  console.log(`batch ${BATCH}, median of ${ITERS} steps after ${WARMUP_SECONDS} s of warm-up (each side); step = forward (train mode) + cross-entropy + backward + Adam\n`);
  const rows: Row[] = [];
  try {
    for (const arch of ARCH_LIST) {
      for (const size of SIZES) {
        for (const mode of modes) {
          const row: Row = { arch, size, mode };
          rows.push(row);
          try {
            row.tfjs = await timeTraining(arch, size, mode === 'train_frozen', backend.name);
          } catch (err) {
            row.note = `TF.js: ${(err as Error).message.split('\n')[0]}`;
          }
          if (torch && row.tfjs !== undefined) {
            const t = await torch.measure(arch, size, BATCH, ITERS, mode);
            row.torch = t.ips;
            if (t.error) row.note = `PyTorch failed: ${t.error}`;
          }
          console.log(`  ${arch} @${size} ${mode}: TF.js ${fmt(row.tfjs)} img/s, PyTorch ${fmt(row.torch)} img/s  (live tensors ${tf.memory().numTensors})`);
        }
      }
    }
  } finally {
    torch?.close();
  }
  console.log('');
  console.log(`${'arch'.padEnd(20)}${'size'.padStart(5)}${'step'.padStart(14)}${`${backend.name} img/s`.padStart(16)}${'PyTorch img/s'.padStart(16)}${'TF.js/PyTorch'.padStart(15)}`);
  for (const r of rows) {
    const ratio = r.tfjs !== undefined && r.torch !== undefined ? `${(r.tfjs / r.torch).toFixed(2)}x` : '-';
    const step = r.mode === 'train' ? 'unfrozen' : 'frozen';
    console.log(`${r.arch.padEnd(20)}${String(r.size).padStart(5)}${step.padStart(14)}${fmt(r.tfjs).padStart(16)}${fmt(r.torch).padStart(16)}${ratio.padStart(15)}${r.note ? `  ${r.note}` : ''}`);
  }
  if (!torch) {
    console.log(
      process.argv.includes('--no-torch') ? '\nPyTorch column skipped (--no-torch).' : `\nNo PyTorch column: ${PYTHON} cannot import torch and torchvision (apt-get install python3-torch python3-torchvision).`,
    );
  }
}

await main();
