/**
 * Picks the fastest TF.js backend that works on this machine and says why.
 *
 * Order: native CUDA (tfjs-node-gpu), native CPU (tfjs-node), WebAssembly (SIMD, threads where the
 * platform allows), then the pure-JS `cpu` backend. Each candidate is tried for real (loaded,
 * initialised and asked to add two numbers), so a package that installs but cannot load its shared
 * library is reported, not chosen. `FINETUNE_BACKEND` or the `force` option pins one candidate.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { startWasmBackend } from './wasm-kernels/index.js';

export const BACKEND_NAMES = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  /** Why it was chosen or not, in words a user can act on. */
  reason: string;
}

export interface BackendChoice {
  name: BackendName;
  /** The TF.js registry name (`tensorflow`, `wasm`, `cpu`). */
  tfName: string;
  /** Short label for the UI: "GPU (CUDA)", "native CPU", "WebAssembly", "JavaScript CPU". */
  label: string;
  /** One line per candidate, in the order they were considered. */
  attempts: BackendAttempt[];
  simd?: boolean;
  threads?: boolean;
}

const LABELS: Record<BackendName, string> = {
  'node-gpu': 'GPU (CUDA, tfjs-node-gpu)',
  node: 'native CPU (tfjs-node)',
  wasm: 'WebAssembly (tfjs-backend-wasm)',
  cpu: 'JavaScript CPU (slow)',
};

export function parseBackendName(value: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`Unknown backend "${value}". Use one of: ${BACKEND_NAMES.join(', ')}.`);
}

function describeLoadError(pkg: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/Cannot find (module|package)/.test(message) && message.includes(pkg)) {
    return `${pkg} is not installed (it is optional; \`npm install ${pkg}\` adds it where its native library can be downloaded)`;
  }
  return `${pkg} is installed but failed to load: ${message.split('\n')[0]}`;
}

async function smokeTest(tfName: string): Promise<void> {
  const ok = await tf.setBackend(tfName);
  if (!ok) throw new Error(`tf.setBackend('${tfName}') returned false`);
  await tf.ready();
  const sum = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)));
  const value = (await sum.data())[0];
  sum.dispose();
  if (value !== 3) throw new Error(`1 + 2 gave ${value}`);
}

async function tryNative(name: 'node-gpu' | 'node'): Promise<BackendAttempt> {
  const pkg = name === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  try {
    await import(pkg);
  } catch (err) {
    return { name, ok: false, reason: describeLoadError(pkg, err) };
  }
  try {
    await smokeTest('tensorflow');
  } catch (err) {
    return { name, ok: false, reason: `${pkg} loaded but its backend did not start: ${(err as Error).message}` };
  }
  if (name === 'node-gpu') {
    // tfjs-node-gpu silently runs on the CPU when CUDA is missing; only claim a GPU when TF sees one.
    const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
    if (backend.isUsingGpuDevice === false) {
      return { name, ok: false, reason: `${pkg} loaded but TensorFlow found no CUDA GPU (check the NVIDIA driver and CUDA/cuDNN versions)` };
    }
  }
  return { name, ok: true, reason: `${pkg} loaded and passed a smoke test` };
}

/**
 * XNNPACK threads for the wasm backend (see wasm-kernels/threads.ts): `FINETUNE_WASM_THREADS`, or
 * by default one per CPU up to 4 in plain Node.js (the CLI, browser mode). Inside Electron the
 * default stays 1: the pthread workaround has not been run in Electron's utility process.
 */
export function wasmThreadsSetting(env: NodeJS.ProcessEnv = process.env, versions: NodeJS.ProcessVersions = process.versions): { threads: number; why: string } {
  const raw = env.FINETUNE_WASM_THREADS?.trim();
  if (raw) {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`FINETUNE_WASM_THREADS must be a whole number from 1 to 64; got "${raw}".`);
    return { threads: n, why: 'FINETUNE_WASM_THREADS' };
  }
  if (versions.electron) return { threads: 1, why: 'the default inside Electron, where wasm threads are untested; FINETUNE_WASM_THREADS=2 asks for two' };
  return { threads: Math.min(os.availableParallelism(), MAX_DEFAULT_THREADS), why: `the default: one per CPU, at most ${MAX_DEFAULT_THREADS}` };
}

/**
 * More threads than this gain little: XNNPACK's small GEMMs and our memory-bound kernels
 * (BatchNorm, Adam, masks; they run on one thread) stop scaling. Unmeasured above 2 CPUs here.
 */
const MAX_DEFAULT_THREADS = 4;

async function tryWasm(): Promise<BackendAttempt & { simd?: boolean; threads?: boolean }> {
  let started;
  const setting = wasmThreadsSetting();
  try {
    // Adds the training kernels stock tfjs-backend-wasm lacks, and turns running out of its 4 GiB
    // heap into a catchable error (the learner then retries with smaller micro-batches).
    started = await startWasmBackend({ threads: setting.threads });
    await smokeTest('wasm');
  } catch (err) {
    return { name: 'wasm', ok: false, reason: describeLoadError('@tensorflow/tfjs-backend-wasm', err) };
  }
  const threads = started.threads > 1;
  const threadNote = `${started.threads} thread${threads ? 's' : ''} (${started.note ?? setting.why})`;
  return { name: 'wasm', ok: true, simd: started.simd, threads, reason: `WebAssembly with SIMD ${started.simd ? 'on' : 'off'}, ${threadNote}` };
}

async function tryCpu(): Promise<BackendAttempt> {
  try {
    await smokeTest('cpu');
    return { name: 'cpu', ok: true, reason: 'pure JavaScript; works everywhere but trains very slowly' };
  } catch (err) {
    return { name: 'cpu', ok: false, reason: `the JavaScript backend failed: ${(err as Error).message}` };
  }
}

const TRY: Record<BackendName, () => Promise<BackendAttempt & { simd?: boolean; threads?: boolean }>> = {
  'node-gpu': () => tryNative('node-gpu'),
  node: () => tryNative('node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

export interface SelectBackendOptions {
  /** Use exactly this backend (fails if it cannot start). Defaults to `FINETUNE_BACKEND`. */
  force?: BackendName;
}

let current: Promise<BackendChoice> | undefined;

/**
 * Selects and activates a backend. Later calls return the first choice; a forced call that
 * disagrees with the active backend is an error, since TF.js cannot hold models across backends.
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendChoice> {
  const envForce = process.env.FINETUNE_BACKEND?.trim();
  const force = options.force ?? (envForce ? parseBackendName(envForce) : undefined);
  if (!current) current = pick(force);
  return current.then((choice) => {
    if (force && choice.name !== force) {
      throw new Error(`Backend "${choice.name}" is already active; cannot switch to "${force}" in the same process.`);
    }
    return choice;
  });
}

async function pick(force: BackendName | undefined): Promise<BackendChoice> {
  const attempts: BackendAttempt[] = [];
  let chosen: { name: BackendName; simd?: boolean; threads?: boolean } | undefined;
  const order = force ? [force] : BACKEND_NAMES;
  for (const name of BACKEND_NAMES) {
    if (!order.includes(name)) {
      attempts.push({ name, ok: false, reason: `not tried: backend forced to "${force}"` });
      continue;
    }
    if (chosen) {
      attempts.push({ name, ok: false, reason: 'not needed: a faster backend works' });
      continue;
    }
    const attempt = await TRY[name]();
    attempts.push({ name: attempt.name, ok: attempt.ok, reason: attempt.reason });
    if (attempt.ok) chosen = { name, simd: attempt.simd, threads: attempt.threads };
  }
  if (!chosen) {
    const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
    throw new Error(`No TF.js backend could start. ${why}`);
  }
  return {
    name: chosen.name,
    tfName: tf.getBackend(),
    label: LABELS[chosen.name],
    attempts,
    ...(chosen.simd === undefined ? {} : { simd: chosen.simd, threads: chosen.threads }),
  };
}

export function describeBackend(choice: BackendChoice): string {
  const lines = [`Compute backend: ${choice.label}`];
  for (const a of choice.attempts) lines.push(`  ${a.ok ? '✔' : '✘'} ${a.name.padEnd(8)} ${a.reason}`);
  return lines.join('\n');
}
