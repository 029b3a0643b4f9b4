/**
 * Shared by the benchmarks that compare TF.js with PyTorch: the long-lived PyTorch reference process
 * (test/bench/torch_reference.py, forward or training-step jobs) and where pretrained model files are
 * on this machine (MobileNets need theirs; nothing is downloaded).
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { catalogueEntry, type ArchId } from '../../src-main/engine/models/catalogue.js';
import type { WeightsChoice } from '../../src-main/engine/models/create-model.js';
import { findLocalWeights } from '../../src-main/engine/models/weight-store.js';
import { defaultCacheDir } from '../../src-main/engine/paths.js';
import { sharedPath } from '../helpers/shared.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PYTHON = '/usr/bin/python3';

export type TorchMode = 'forward' | 'train' | 'train_frozen';

/**
 * PyTorch's intra-op threads for a fair ratio: `--torch-threads N` if given, else as many as the
 * wasm backend runs (its default is one per CPU up to 4; FINETUNE_WASM_THREADS changes it); for
 * other backends PyTorch keeps its own default.
 */
export async function torchThreadsToMatch(backendName: string): Promise<number | null> {
  if (process.argv.includes('--torch-threads')) return Number(arg('torch-threads', '0'));
  if (backendName !== 'wasm') return null;
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}

/**
 * Seconds each side runs (at least one step or batch) before it is timed, the same for TF.js and
 * PyTorch (`--warmup-seconds S`). One step was not enough here: with 2 threads the wasm backend
 * took its first ~3 seconds of work to reach its steady speed (ResNet-18 training at 128 px:
 * 355, 286, 289, 267, ... 245 ms per step from the 8th on; on 1 thread steady from the 2nd), while
 * PyTorch, whose OpenMP threads spin between regions, was steady from its 2nd step. A training
 * epoch is mostly steady state, so that is what the ratios compare.
 */
export const WARMUP_SECONDS = Number(arg('warmup-seconds', '3'));

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** Where a MobileNet's files are on this machine, without any download. */
export async function localWeights(arch: ArchId): Promise<WeightsChoice | undefined> {
  const entry = catalogueEntry(arch);
  if (entry.family === 'resnet') return 'random';
  const places = [process.env.FINETUNE_WEIGHTS_DIR, sharedPath('weights'), path.join(defaultCacheDir(), 'weights')].filter(Boolean) as string[];
  for (const place of places) {
    const found = await findLocalWeights(entry.weights, place).catch(() => undefined);
    if (found) return { path: found };
  }
  return undefined;
}


/**
 * A long-lived Python reference process answering one JSON job per line (torch_reference.py, or
 * torch_wasm_kernels.py, which speaks the same protocol).
 */
export class TorchReference {
  private constructor(
    private readonly script: string,
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
    private readonly rl: Interface,
    readonly banner: string,
  ) {}

  static available(): boolean {
    return spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
  }

  static async start(threads: number | null, script = 'torch_reference.py'): Promise<TorchReference> {
    const child = spawn(PYTHON, [path.join(HERE, script)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const rl = createInterface({ input: child.stdout });
    const lines = rl[Symbol.asyncIterator]();
    child.stdin.write(`${JSON.stringify({ threads })}\n`);
    const first = await lines.next();
    if (first.done) throw new Error(`${script} exited before answering`);
    const info = JSON.parse(first.value) as { torch: string; threads: number };
    return new TorchReference(script, child, lines, rl, `PyTorch ${info.torch} (${PYTHON}), ${info.threads} intra-op threads`);
  }

  /** Sends one job and returns the script's answer (or an `error` if the process is gone). */
  async request<T extends { error?: string }>(job: object): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(job)}\n`);
    const line = await this.lines.next();
    if (line.done) return { error: `${this.script} exited` } as T;
    return JSON.parse(line.value) as T;
  }

  async measure(arch: string, size: number, batch: number, iters: number, mode: TorchMode = 'forward'): Promise<{ ips?: number; error?: string }> {
    const job = { arch, size, batch, iters, mode, warmup_seconds: WARMUP_SECONDS };
    const r = await this.request<{ images_per_second?: number; error?: string }>(job);
    return { ips: r.images_per_second, error: r.error };
  }

  close(): void {
    this.child.stdin.end();
    this.rl.close();
  }
}

