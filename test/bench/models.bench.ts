/**
 * `npm run bench:models`: forward images/second of each architecture (body + fastai head, eval mode)
 * at 224 and 128, batch 16, on the active TF.js backend, next to PyTorch running the same model,
 * batch and size in the same run (test/bench/torch_reference.py) when /usr/bin/python3 has torch.
 *
 * The two are measured alternately, model by model and round by round (--rounds, each with its own
 * warm-up), so both see the same load on a shared machine whose speed drifts by 10% and more
 * within minutes; the ratio is the median of the rounds' ratios, the img/s the median of theirs.
 * The ratio is for the model the app predicts with (inference-model.ts: BatchNorms folded into the
 * convolutions, activations fused); "as built" is the trained graph, BatchNorm layers and all.
 * PyTorch runs its eval-mode model as is.
 *
 * Options: --arch resnet18,mobilenet_v2_0.35  --sizes 224,128  --batch 16  --iters 3  --rounds 3
 *          --warmup-seconds 3  --torch-threads N  --no-torch
 * PyTorch runs as many intra-op threads as the wasm backend (one per CPU up to 4 by default;
 * FINETUNE_WASM_THREADS=1 gives the steadiest single-thread comparison: with 2 threads on a
 * machine shared with other jobs, oneDNN's thread barriers made its figures swing 10x between
 * runs), or --torch-threads N.
 * ResNets run with random weights (speed does not depend on the values). MobileNets need their
 * model.json, so they run when found locally (../shared/weights, FINETUNE_WEIGHTS_DIR or the cache)
 * and are reported as skipped otherwise; nothing is downloaded.
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { describeBackend, selectBackend } from '../../src-main/engine/backend.js';
import type { ArchId } from '../../src-main/engine/models/catalogue.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { inferenceModel } from '../../src-main/engine/models/inference-model.js';
import { arg, localWeights, PYTHON, TorchReference, torchThreadsToMatch, WARMUP_SECONDS } from './support.js';

const ARCH_LIST = arg('arch', 'resnet18,resnet34,resnet50,mobilenet_v2_0.35,mobilenet_v1_0.25').split(',') as ArchId[];
const SIZES = arg('sizes', '224,128').split(',').map(Number);
const BATCH = Number(arg('batch', '16'));
const ITERS = Number(arg('iters', '3'));
const ROUNDS = Math.max(1, Number(arg('rounds', '3')));
const NUM_CLASSES = 37;

interface Row {
  arch: string;
  size: number;
  /** The model as built and trained (BatchNorm layers and separate activations). */
  asBuilt?: number;
  /** The inference model the app predicts with (inference-model.ts). */
  tfjs?: number;
  torch?: number;
  /** The median of the rounds' TF.js / PyTorch ratios. */
  ratio?: number;
  note?: string;
}

async function timeForward(model: tf.LayersModel, size: number): Promise<number> {
  const x = tf.randomNormal([BATCH, size, size, 3], 0, 1, 'float32', 1);
  const once = async () => {
    const t = performance.now();
    const y = model.predict(x, { batchSize: BATCH }) as tf.Tensor;
    await y.data();
    y.dispose();
    return (performance.now() - t) / 1000;
  };
  // Warm-up: kernel setup, first allocations, and the threads' ramp to steady speed (WARMUP_SECONDS).
  const start = performance.now();
  do await once();
  while (performance.now() - start < WARMUP_SECONDS * 1000);
  const times: number[] = [];
  for (let i = 0; i < ITERS; i++) times.push(await once());
  x.dispose();
  times.sort((a, b) => a - b);
  return BATCH / times[Math.floor(times.length / 2)];
}

function fmt(v: number | undefined): string {
  return v === undefined ? '-' : v.toFixed(1);
}

function median(values: number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? undefined : sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const backend = await selectBackend();
  console.log(describeBackend(backend));
  const tfThreads = backend.name === 'wasm' ? `${(await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount()} thread(s)` : 'its own thread pool';
  const useTorch = !process.argv.includes('--no-torch') && TorchReference.available();
  const torch = useTorch ? await TorchReference.start(await torchThreadsToMatch(backend.name)) : undefined;
  console.log(`${os.availableParallelism()} CPU cores; TF.js ${backend.name}: ${tfThreads}; ${torch ? torch.banner : 'no PyTorch'}`);
  console.log(
    `batch ${BATCH}, median of ${ITERS} batches after ${WARMUP_SECONDS} s of warm-up (each side), ${ROUNDS} alternating round(s); model = body + fastai head (${NUM_CLASSES} classes), eval mode\n`,
  );

  const rows: Row[] = [];
  try {
    for (const arch of ARCH_LIST) {
      const weights = await localWeights(arch);
      for (const size of SIZES) {
        const row: Row = { arch, size };
        rows.push(row);
        if (!weights) {
          row.note = 'skipped: its model.json is not on this machine (set FINETUNE_WEIGHTS_DIR)';
          continue;
        }
        const m = await createModel({ arch, numClasses: NUM_CLASSES, weights, inputSize: size, seed: 1 });
        const rounds: { tfjs: number; torch?: number }[] = [];
        try {
          row.asBuilt = await timeForward(m.model, size);
          const inference = await inferenceModel(m);
          try {
            for (let round = 0; round < (torch ? ROUNDS : 1) && !row.note; round++) {
              const tfjs = await timeForward(inference.model, size);
              const t = torch ? await torch.measure(arch, size, BATCH, ITERS) : undefined;
              if (t?.error) row.note = `PyTorch failed: ${t.error}`;
              rounds.push({ tfjs, torch: t?.ips });
              console.log(`  ${arch} @${size} round ${round + 1}: TF.js ${fmt(tfjs)} img/s, PyTorch ${fmt(t?.ips)} img/s`);
            }
          } finally {
            inference.dispose();
          }
        } catch (err) {
          row.note = `TF.js failed: ${(err as Error).message.split('\n')[0]}`;
        } finally {
          m.dispose();
        }
        row.tfjs = median(rounds.map((r) => r.tfjs));
        row.torch = median(rounds.flatMap((r) => (r.torch === undefined ? [] : [r.torch])));
        row.ratio = median(rounds.flatMap((r) => (r.torch === undefined ? [] : [r.tfjs / r.torch])));
        console.log(`  ${arch} @${size}: TF.js ${fmt(row.tfjs)} img/s (as built ${fmt(row.asBuilt)}), PyTorch ${fmt(row.torch)} img/s`);
      }
    }
  } finally {
    torch?.close();
  }

  console.log('');
  console.log(`${'arch'.padEnd(20)}${'size'.padStart(5)}${'as built'.padStart(10)}${`${backend.name} img/s`.padStart(16)}${'PyTorch img/s'.padStart(16)}${'TF.js/PyTorch'.padStart(15)}`);
  for (const r of rows) {
    const ratio = r.ratio !== undefined ? `${r.ratio.toFixed(2)}x` : '-';
    console.log(`${r.arch.padEnd(20)}${String(r.size).padStart(5)}${fmt(r.asBuilt).padStart(10)}${fmt(r.tfjs).padStart(16)}${fmt(r.torch).padStart(16)}${ratio.padStart(15)}${r.note ? `  ${r.note}` : ''}`);
  }
  if (!torch) {
    console.log(
      process.argv.includes('--no-torch')
        ? '\nPyTorch column skipped (--no-torch).'
        : `\nNo PyTorch column: ${PYTHON} cannot import torch and torchvision (apt-get install python3-torch python3-torchvision).`,
    );
  }
}

await main();
