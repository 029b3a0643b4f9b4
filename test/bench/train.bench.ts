/**
 * `npm run bench:train`: training images/second (forward + backward + fastai Adam update) of each
 * architecture (body + fastai head) at 224 and 128, batch 16, unfrozen and frozen (head and
 * BatchNorm layers only, fastai's first fine_tune phase), on the active TF.js backend, through the
 * app's own Learner — next to PyTorch doing the same step on the same model, batch and size in the
 * same run (test/bench/torch_reference.py, mode train / train_frozen), measured alternately so both
 * see the same load.
 *
 * Options: --arch resnet18,mobilenet_v2_0.35  --sizes 224,128  --batch 16  --iters 3
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
import { arg, localWeights, PYTHON, TorchReference, torchThreadsToMatch, type TorchMode } from './support.js';

const ARCH_LIST = arg('arch', 'resnet18,resnet34,mobilenet_v2_0.35,mobilenet_v1_0.25').split(',') as ArchId[];
const SIZES = arg('sizes', '224,128').split(',').map(Number);
const BATCH = Number(arg('batch', '16'));
const ITERS = Number(arg('iters', '3'));
const NUM_CLASSES = 37;

/** Random images and labels, the same every epoch: speed does not depend on the pixels. */
class RandomBatches implements BatchSource {
  readonly items: PreparedItem[];
  private readonly x: Float32Array;
  private readonly y: Int32Array;
  constructor(
    readonly batchSize: number,
    readonly length: number,
    size: number,
  ) {
    this.items = Array.from({ length: batchSize * length }, (_, i) => ({ relPath: `random-${i}`, label: 'x', classIndex: i % NUM_CLASSES, cacheKey: '' }));
    this.x = Float32Array.from({ length: batchSize * size * size * 3 }, () => Math.random() * 2 - 1);
    this.y = Int32Array.from({ length: batchSize }, (_, i) => i % NUM_CLASSES);
  }
  async *epoch(): AsyncGenerator<Batch> {
    for (let b = 0; b < this.length; b++) yield { x: this.x, y: this.y, n: this.batchSize, items: this.items.slice(0, this.batchSize) };
  }
}

/** Median images/s of `ITERS` training steps after one warm-up step, through the Learner. */
async function timeTraining(arch: ArchId, size: number, frozen: boolean, backendName: string): Promise<number> {
  const weights = await localWeights(arch);
  if (!weights) throw new Error('its model.json is not on this machine (set FINETUNE_WEIGHTS_DIR)');
  const m = await createModel({ arch, numClasses: NUM_CLASSES, weights, inputSize: size, seed: 1 });
  const stamps: number[] = [];
  const learner = new Learner({
    network: imageNetwork(m),
    train: new RandomBatches(BATCH, ITERS + 1, size),
    valid: new RandomBatches(BATCH, 0, size),
    microBatch: defaultMicroBatch(backendName, size, BATCH),
    onEvent: (e) => e.type === 'batch' && stamps.push(performance.now()),
  });
  try {
    learner.setFrozen(frozen);
    const start = performance.now();
    await learner.fitOneCycle(1, { lrMax: [1e-4, 1e-4, 1e-3] });
    const times = [stamps[0] - start, ...stamps.slice(1).map((t, i) => t - stamps[i])].slice(1).map((ms) => ms / 1000);
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
  console.log(`batch ${BATCH}, median of ${ITERS} steps after one warm-up; step = forward (train mode) + cross-entropy + backward + Adam\n`);
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
