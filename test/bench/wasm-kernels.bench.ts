/**
 * Benchmark of the wasm training kernels (src-main/engine/wasm-kernels).
 *
 *   node --import tsx test/bench/wasm-kernels.bench.ts [--kernels] [--train] [--max-batch]
 *
 * --kernels  each kernel we add or replace, at the shapes of ResNet-18 / MobileNetV2 layers
 *            (batch 16, 224 px), against the stock wasm kernel or, where wasm has none, the
 *            formulation one would compose from existing ops; the forward convolution is shown
 *            as the yardstick (a gradient costs about one forward pass at best).
 * --train    images/second of a training step (train mode, softmax cross-entropy, Adam) and of a
 *            forward pass (eval mode) for ResNet-18/34 and MobileNetV2 (alpha 1) with fastai's
 *            head, on wasm and on PyTorch (test/bench/torch_wasm_kernels.py, the same networks,
 *            batch, size and thread count), alternated model by model so both see the same load,
 *            with the wasm heap size after the steps. A batch that does not fit the wasm heap is
 *            halved for both sides (noted in the table). Caveat seen here: Debian's PyTorch 1.13
 *            runs MobileNetV2@224 at batch 8 with 1 thread ~4x slower per image than at batch 16.
 * --max-batch  the largest ResNet-18@224 training batch that fits the 4 GiB wasm heap (each try
 *            in a fresh process, since running out aborts the wasm module).
 * Without any of the three: --kernels --train.
 *
 * Options: --models resnet18,resnet34,mobilenet_v2_1.0  --sizes 224,128  --batch 16  --iters 3
 *          --rounds 1 (repeat the --train table, report medians)  --threads 1 (wasm and PyTorch)
 *          --no-torch  --max-batch-model resnet18 --max-batch-size 224
 * The machine may be shared: read medians of several rounds, not single runs.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  releaseFailedStepMemory,
  startWasmBackend,
  WasmHeapExhaustedError,
  wasmHeapInfo,
} from '../../src-main/engine/wasm-kernels/index.js';
import { stockKernel } from '../../src-main/engine/wasm-kernels/wasm-ops.js';
import { createModel } from '../../src-main/engine/models/create-model.js';
import { createFastaiHead } from '../../src-main/engine/models/fastai-head.js';
import { TorchReference } from './support.js';

const CLASSES = 37;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const MODELS = arg('models', 'resnet18,resnet34,mobilenet_v2_1.0').split(',');
const SIZES = arg('sizes', '224,128').split(',').map(Number);
const BATCH = Number(arg('batch', '16'));
const ITERS = Number(arg('iters', '3'));
const ROUNDS = Number(arg('rounds', '1'));
const THREADS = Number(arg('threads', '1'));

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const MB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;

// ---------------------------------------------------------------------------------------------
// Networks

/** Keras' MobileNetV2 body (what Teachable Machine / tfjs-models ship), alpha 1, cut at out_relu. */
function mobilenetV2Body(size: number, alpha = 1): tf.LayersModel {
  const divisible = (v: number) => {
    const n = Math.max(8, Math.floor((v + 4) / 8) * 8);
    return n < 0.9 * v ? n + 8 : n;
  };
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
  const bn = (x: tf.SymbolicTensor) => apply(tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.999 }), x);
  const relu6 = (x: tf.SymbolicTensor) => apply(tf.layers.reLU({ maxValue: 6 }), x);
  const pad = (x: tf.SymbolicTensor) => apply(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]] }), x);
  const conv = (x: tf.SymbolicTensor, filters: number, kernelSize: number, strides = 1) =>
    apply(tf.layers.conv2d({ filters, kernelSize, strides, padding: strides === 2 ? 'valid' : 'same', useBias: false }), x);
  const input = tf.input({ shape: [size, size, 3] });
  let inC = divisible(32 * alpha);
  let x = relu6(bn(conv(pad(input), inC, 3, 2)));
  const plan: [number, number, number, number][] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  for (const [t, c, n, s] of plan) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const outC = divisible(c * alpha);
      let y = t === 1 ? x : relu6(bn(conv(x, inC * t, 1)));
      if (stride === 2) y = pad(y);
      y = apply(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: stride === 2 ? 'valid' : 'same', useBias: false }), y);
      y = bn(conv(relu6(bn(y)), outC, 1));
      x = stride === 1 && inC === outC ? apply(tf.layers.add(), [x, y]) : y;
      inC = outC;
    }
  }
  x = relu6(bn(conv(x, alpha > 1 ? divisible(1280 * alpha) : 1280, 1)));
  return tf.model({ inputs: input, outputs: x });
}

/** Body + fastai head, as the app trains it. */
async function buildNetwork(arch: string, size: number): Promise<{ model: tf.LayersModel; dispose: () => void }> {
  if (arch.startsWith('resnet')) {
    const m = await createModel({ arch, numClasses: CLASSES, weights: 'random', inputSize: size, seed: 1 });
    return { model: m.model, dispose: () => m.dispose() };
  }
  if (arch.startsWith('mobilenet_v2_')) {
    const body = mobilenetV2Body(size, Number(arch.split('_')[2]));
    const head = createFastaiHead({ numFeatures: 1280, numClasses: CLASSES, seed: 1 });
    const input = tf.input({ shape: [size, size, 3] });
    const model = tf.model({ inputs: input, outputs: head.apply(body.apply(input)) as tf.SymbolicTensor });
    return { model, dispose: () => model.dispose() };
  }
  throw new Error(`unknown model ${arch}`);
}

// ---------------------------------------------------------------------------------------------
// Per-kernel timings

const backend = () => tf.backend() as BackendWasm;

function timeIt(f: () => tf.Tensor | tf.TensorInfo, reps: number): number {
  const times: number[] = [];
  for (let i = 0; i < reps + 1; i++) {
    const t = performance.now();
    const out = f();
    // wasm kernels run synchronously; read one value (not the whole output) on both sides.
    backend().readSync(out.dataId, 0, 1);
    if (out instanceof tf.Tensor) out.dispose();
    else backend().disposeData(out.dataId);
    if (i > 0) times.push(performance.now() - t); // the first call builds XNNPACK operators
  }
  return median(times);
}

function runOurs(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
}

function runStockKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.TensorInfo {
  const config = stockKernel(name);
  if (!config) throw new Error(`no stock ${name}`);
  const infos = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, { dataId: t.dataId, shape: t.shape, dtype: t.dtype }]));
  return config.kernelFunc({ inputs: infos, backend: backend(), attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
}

type Pads4 = [[number, number], [number, number], [number, number], [number, number]];

/** dW composed from strided slices and matMuls, one per filter tap (the obvious formulation). */
function filterGradBySlices(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, s: number, pads: Pads4, depthwise: boolean): tf.Tensor {
  return tf.tidy(() => {
    const [n, , , c] = x.shape;
    const [, ho, wo, co] = dy.shape;
    const xp = tf.pad(x, pads);
    const taps: tf.Tensor[] = [];
    for (let a = 0; a < k; a++)
      for (let b = 0; b < k; b++) {
        const xs = tf.stridedSlice(xp, [0, a, b, 0], [n, a + (ho - 1) * s + 1, b + (wo - 1) * s + 1, c], [1, s, s, 1]);
        taps.push(depthwise ? tf.sum(tf.mul(xs, dy), [0, 1, 2]) : tf.matMul(tf.reshape(xs, [-1, c]), tf.reshape(dy, [-1, co]), true, false));
      }
    return tf.reshape(tf.stack(taps), depthwise ? [k, k, c, 1] : [k, k, c, co]);
  });
}

/** Depthwise dx composed from a 6-D pad (zero insertion) and one shifted slice per tap. */
function depthwiseInputBySlices(dy: tf.Tensor4D, w: tf.Tensor4D, inShape: number[], s: number, pads: Pads4): tf.Tensor {
  return tf.tidy(() => {
    const [n, ho, wo, c] = dy.shape;
    const k = w.shape[0];
    const up =
      s === 1
        ? dy
        : tf.reshape(tf.pad(tf.reshape(dy, [n, ho, 1, wo, 1, c]), [[0, 0], [0, 0], [0, s - 1], [0, 0], [0, s - 1], [0, 0]]), [n, ho * s, wo * s, c]);
    const full = tf.pad(up, [[0, 0], [k - 1, k + s], [k - 1, k + s], [0, 0]]);
    let dx: tf.Tensor = tf.zeros(inShape);
    for (let a = 0; a < k; a++)
      for (let b = 0; b < k; b++) {
        const tap = tf.reshape(tf.slice(w, [a, b, 0, 0], [1, 1, c, 1]), [c]);
        const shifted = tf.slice(full, [0, k - 1 - a + pads[1][0], k - 1 - b + pads[2][0], 0], inShape);
        dx = tf.add(dx, tf.mul(shifted, tap));
      }
    return dx;
  });
}

interface KernelRow {
  what: string;
  forward?: number;
  ours: number;
  before?: number;
  beforeName: string;
}

function printKernelRows(rows: KernelRow[]): void {
  console.log(`\n${'kernel and shape (batch 16)'.padEnd(58)}${'fwd ms'.padStart(8)}${'ours ms'.padStart(9)}${'before ms'.padStart(11)}  speed-up  before = `);
  for (const r of rows) {
    const up = r.before !== undefined ? `${(r.before / r.ours).toFixed(1)}x` : '-';
    console.log(
      `${r.what.padEnd(58)}${(r.forward?.toFixed(1) ?? '-').padStart(8)}${r.ours.toFixed(1).padStart(9)}${(r.before?.toFixed(1) ?? '-').padStart(11)}${up.padStart(10)}  ${r.beforeName}`,
    );
  }
}

function kernelBench(): void {
  const rows: KernelRow[] = [];
  const n = 16;
  const reps = Math.max(1, ITERS);
  const convs: { name: string; h: number; ci: number; co: number; k: number; s: number }[] = [
    { name: 'ResNet stem 7x7/2 224x3->64', h: 224, ci: 3, co: 64, k: 7, s: 2 },
    { name: 'ResNet 3x3/1 56x64->64', h: 56, ci: 64, co: 64, k: 3, s: 1 },
    { name: 'ResNet 3x3/2 56x64->128', h: 56, ci: 64, co: 128, k: 3, s: 2 },
    { name: 'ResNet 1x1/2 56x64->128 (downsample)', h: 56, ci: 64, co: 128, k: 1, s: 2 },
    { name: 'ResNet 3x3/1 14x256->256', h: 14, ci: 256, co: 256, k: 3, s: 1 },
    { name: 'ResNet 3x3/1 7x512->512', h: 7, ci: 512, co: 512, k: 3, s: 1 },
  ];
  for (const c of convs) {
    const p = Math.floor(c.k / 2);
    const pads: Pads4 = [[0, 0], [p, p], [p, p], [0, 0]];
    const x = tf.randomNormal([n, c.h, c.h, c.ci]) as tf.Tensor4D;
    const w = tf.randomNormal([c.k, c.k, c.ci, c.co]) as tf.Tensor4D;
    const y = tf.conv2d(x, w, c.s, pads);
    const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
    const forward = timeIt(() => tf.conv2d(x, w, c.s, pads), reps);
    const dxAttrs = { strides: c.s, pad: pads, dataFormat: 'NHWC', inputShape: x.shape };
    rows.push({
      what: `Conv2DBackpropInput  ${c.name}`,
      forward,
      ours: timeIt(() => runOurs('Conv2DBackpropInput', { dy, filter: w }, dxAttrs), reps),
      before: timeIt(() => runStockKernel('Conv2DBackpropInput', { dy, filter: w }, dxAttrs), 1),
      beforeName: 'stock wasm kernel',
    });
    const dwAttrs = { strides: c.s, pad: pads, dataFormat: 'NHWC', filterShape: w.shape };
    rows.push({
      what: `Conv2DBackpropFilter ${c.name}`,
      forward,
      ours: timeIt(() => runOurs('Conv2DBackpropFilter', { x, dy }, dwAttrs), reps),
      before: timeIt(() => filterGradBySlices(x, dy, c.k, c.s, pads, false), 1),
      beforeName: 'strided slices + matMul per tap',
    });
    console.log(`  measured ${c.name}`);
    tf.dispose([x, w, y, dy]);
  }
  const dws: { name: string; h: number; c: number; s: number }[] = [
    { name: 'MobileNetV2 dw 3x3/1 112x32', h: 112, c: 32, s: 1 },
    { name: 'MobileNetV2 dw 3x3/2 112x96', h: 112, c: 96, s: 2 },
    { name: 'MobileNetV2 dw 3x3/1 56x144', h: 56, c: 144, s: 1 },
    { name: 'MobileNetV2 dw 3x3/1 14x576', h: 14, c: 576, s: 1 },
  ];
  for (const c of dws) {
    const pads: Pads4 = c.s === 2 ? [[0, 0], [0, 1], [0, 1], [0, 0]] : [[0, 0], [1, 1], [1, 1], [0, 0]];
    const x = tf.randomNormal([n, c.h, c.h, c.c]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, c.c, 1]) as tf.Tensor4D;
    const y = tf.depthwiseConv2d(x, w, c.s, pads);
    const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
    const forward = timeIt(() => tf.depthwiseConv2d(x, w, c.s, pads), reps);
    rows.push({
      what: `DepthwiseBackpropInput  ${c.name}`,
      forward,
      ours: timeIt(() => runOurs('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { strides: c.s, dilations: 1, pad: pads, inputShape: x.shape }), reps),
      before: timeIt(() => depthwiseInputBySlices(dy, w, x.shape, c.s, pads), 1),
      beforeName: '6-D pad + shifted slice per tap',
    });
    rows.push({
      what: `DepthwiseBackpropFilter ${c.name}`,
      forward,
      ours: timeIt(() => runOurs('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: c.s, dilations: 1, pad: pads, filterShape: w.shape }), reps),
      before: timeIt(() => filterGradBySlices(x, dy, 3, c.s, pads, true), 1),
      beforeName: 'strided slice * dy, sum per tap',
    });
    console.log(`  measured ${c.name}`);
    tf.dispose([x, w, y, dy]);
  }
  // Replaced stock kernels, at the sizes training hits them.
  const act = tf.randomNormal([n, 112, 112, 64]) as tf.Tensor4D;
  const scale = tf.randomNormal([1, 1, 1, 64]);
  rows.push({
    what: 'Tile [1,1,1,64] -> [16,112,112,64] (BN gradient)',
    ours: timeIt(() => runOurs('Tile', { x: scale }, { reps: [n, 112, 112, 1] }), reps),
    before: timeIt(() => runStockKernel('Tile', { x: scale }, { reps: [n, 112, 112, 1] }), 1),
    beforeName: 'stock wasm kernel',
  });
  for (const name of ['Sum', 'Mean']) {
    rows.push({
      what: `${name} [16,112,112,64] over axes 0,1,2 (BN)`,
      ours: timeIt(() => runOurs(name, { x: act }, { axis: [0, 1, 2], keepDims: false }), reps),
      before: timeIt(() => runStockKernel(name, { x: act }, { axis: [0, 1, 2], keepDims: false }), reps),
      beforeName: 'stock wasm kernel',
    });
  }
  const padded = tf.randomNormal([n, 114, 114, 64]) as tf.Tensor4D;
  const pooled = tf.maxPool(padded, 3, 2, 'valid');
  const dPool = tf.randomNormal(pooled.shape);
  const poolAttrs = { filterSize: 3, strides: 2, pad: 'valid' };
  rows.push({
    what: 'MaxPoolGrad 3x3/2 [16,114,114,64] (ResNet stem)',
    ours: timeIt(() => runOurs('MaxPoolGrad', { dy: dPool, input: padded, output: pooled }, poolAttrs), reps),
    before: timeIt(() => runStockKernel('MaxPoolGrad', { dy: dPool, input: padded, output: pooled }, poolAttrs), 1),
    beforeName: 'stock wasm kernel',
  });
  const sliceAttrs = { begin: [0, 1, 1, 0], size: [n, 112, 112, 64] };
  rows.push({
    what: 'Slice [16,114,114,64] -> interior (ZeroPadding2D grad)',
    ours: timeIt(() => runOurs('Slice', { x: padded }, sliceAttrs), reps),
    before: timeIt(() => runStockKernel('Slice', { x: padded }, sliceAttrs), reps),
    beforeName: 'stock wasm kernel',
  });
  rows.push({
    what: 'Identity [16,112,112,64]',
    ours: timeIt(() => runOurs('Identity', { x: act }, {}), reps),
    before: timeIt(() => runStockKernel('Identity', { x: act }, {}), reps),
    beforeName: 'stock wasm kernel (copies)',
  });
  tf.dispose([act, scale, padded, pooled, dPool]);
  printKernelRows(rows);
}

// ---------------------------------------------------------------------------------------------
// Training steps against PyTorch

/** Median images/s of `ITERS` training steps and forward passes after one warm-up each. */
async function measureWasm(arch: string, size: number, batch: number): Promise<{ train: number; forward: number }> {
  const net = await buildNetwork(arch, size);
  const optimizer = tf.train.adam(1e-3);
  const x = tf.randomNormal([batch, size, size, 3]);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % CLASSES), 'int32'), CLASSES);
  try {
    const step = () => {
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(y, net.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        true,
      )!;
      loss.dataSync();
      loss.dispose();
    };
    const forward = () => {
      const out = net.model.predict(x, { batchSize: batch }) as tf.Tensor;
      out.dataSync();
      out.dispose();
    };
    const timeOf = (f: () => void) => {
      f();
      const times: number[] = [];
      for (let i = 0; i < ITERS; i++) {
        const t = performance.now();
        f();
        times.push((performance.now() - t) / 1000);
      }
      return batch / median(times);
    };
    return { train: timeOf(step), forward: timeOf(forward) };
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
    net.dispose();
  }
}

interface TrainRow {
  arch: string;
  size: number;
  /** BATCH, or half of it (again and again) when BATCH does not fit the wasm heap. */
  batch: number;
  wasmTrain: number[];
  wasmForward: number[];
  torchTrain: number[];
  torchForward: number[];
  heap?: number;
  note?: string;
}

async function trainBench(): Promise<void> {
  const torch = !flag('no-torch') && TorchReference.available() ? await TorchReference.start(THREADS, 'torch_wasm_kernels.py') : undefined;
  console.log(`\nTraining step, batch ${BATCH}, median of ${ITERS} after a warm-up, ${ROUNDS} round(s); ${torch?.banner ?? 'no PyTorch'}`);
  const rows: TrainRow[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const arch of MODELS) {
        for (const size of SIZES) {
          let row = rows.find((r) => r.arch === arch && r.size === size);
          if (!row) {
            row = { arch, size, batch: BATCH, wasmTrain: [], wasmForward: [], torchTrain: [], torchForward: [] };
            rows.push(row);
          }
          for (;;) {
            try {
              const w = await measureWasm(arch, size, row.batch);
              row.wasmTrain.push(w.train);
              row.wasmForward.push(w.forward);
              row.heap = wasmHeapInfo().heapBytes;
              break;
            } catch (err) {
              releaseFailedStepMemory(); // what the failed step left on tfjs' tape
              if (err instanceof WasmHeapExhaustedError && row.batch > 1 && row.wasmTrain.length === 0) {
                row.note = `batch ${row.batch} does not fit the wasm heap; both sides run batch ${row.batch / 2}`;
                row.batch /= 2;
                continue;
              }
              row.note = `wasm failed: ${(err as Error).message.split('\n')[0]}`;
              break;
            }
          }
          if (torch) {
            const t = await torch.request<{ train_ips?: number; forward_ips?: number; error?: string }>({ arch, size, batch: row.batch, iters: ITERS });
            if (t.train_ips !== undefined) row.torchTrain.push(t.train_ips);
            if (t.forward_ips !== undefined) row.torchForward.push(t.forward_ips);
            if (t.error) row.note = `PyTorch failed: ${t.error}`;
          }
          const last = (v: number[]) => (v.length ? v[v.length - 1].toFixed(2) : '-');
          console.log(
            `  round ${round + 1} ${arch}@${size}: train wasm ${last(row.wasmTrain)} / torch ${last(row.torchTrain)} img/s; forward wasm ${last(row.wasmForward)} / torch ${last(row.torchForward)} img/s`,
          );
        }
      }
    }
  } finally {
    torch?.close();
  }
  const m = (v: number[]) => (v.length ? median(v) : undefined);
  const f = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? `${(a / b).toFixed(2)}x` : '-');
  console.log(`\n${'model'.padEnd(18)}${'size'.padStart(5)}${'batch'.padStart(6)}${'train wasm'.padStart(12)}${'torch'.padStart(8)}${'ratio'.padStart(8)}${'fwd wasm'.padStart(10)}${'torch'.padStart(8)}${'ratio'.padStart(8)}${'heap'.padStart(10)}`);
  for (const r of rows) {
    const [wt, tt, wf, tfw] = [m(r.wasmTrain), m(r.torchTrain), m(r.wasmForward), m(r.torchForward)];
    console.log(
      `${r.arch.padEnd(18)}${String(r.size).padStart(5)}${String(r.batch).padStart(6)}${f(wt).padStart(12)}${f(tt).padStart(8)}${ratio(wt, tt).padStart(8)}${f(wf).padStart(10)}${f(tfw).padStart(8)}${ratio(wf, tfw).padStart(8)}${(r.heap ? MB(r.heap) : '-').padStart(10)}${r.note ? `  ${r.note}` : ''}`,
    );
  }
  console.log('(img/s; heap = wasm memory size after the model, which only grows within a process)');
}

// ---------------------------------------------------------------------------------------------
// Largest batch

/** Child mode: one model, one batch; prints {ok, heap, stepSeconds} or dies trying. */
async function probeBatch(arch: string, size: number, batch: number): Promise<void> {
  try {
    const w = await measureWasm(arch, size, batch);
    console.log(JSON.stringify({ ok: true, heap: wasmHeapInfo().heapBytes, trainIps: w.train }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err).split('\n')[0] }));
  }
  process.exit(0);
}

function maxBatch(): void {
  const arch = arg('max-batch-model', 'resnet18');
  const size = Number(arg('max-batch-size', '224'));
  const tryBatch = (b: number): { ok: boolean; heap?: number; error?: string } => {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--probe', arch, String(size), String(b), '--threads', String(THREADS), '--iters', '1'], {
      encoding: 'utf8',
      timeout: 20 * 60_000,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    const out = line ? (JSON.parse(line) as { ok: boolean; heap?: number; error?: string }) : { ok: false, error: r.signal ? `killed (${r.signal})` : `exit ${r.status}` };
    console.log(`  ${arch}@${size} batch ${b}: ${out.ok ? `fits, heap ${MB(out.heap!)}` : `fails: ${out.error}`}`);
    return out;
  };
  console.log(`\nLargest training batch for ${arch}@${size} in the 4 GiB wasm heap (${THREADS} thread(s)):`);
  let lo = 0;
  let hi = 0;
  for (let b = 8; ; b *= 2) {
    if (tryBatch(b).ok) lo = b;
    else {
      hi = b;
      break;
    }
    if (b >= 256) return;
  }
  while (hi - lo > 2) {
    const mid = Math.round((lo + hi) / 2);
    if (tryBatch(mid).ok) lo = mid;
    else hi = mid;
  }
  console.log(`  => largest batch that fits: ${lo} (fails at ${hi})`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const probe = process.argv.indexOf('--probe');
  const started = await startWasmBackend({ threads: THREADS });
  if (probe >= 0) {
    const [arch, size, batch] = process.argv.slice(probe + 1, probe + 4);
    return probeBatch(arch, Number(size), Number(batch));
  }
  console.log(
    `wasm backend: SIMD ${started.simd ? 'on' : 'off'}, ${started.threads} thread(s)${started.note ? ` (${started.note})` : ''}; ` +
      `${os.availableParallelism()} CPUs, load average ${os.loadavg()[0].toFixed(1)}`,
  );
  const any = flag('kernels') || flag('train') || flag('max-batch');
  if (flag('kernels') || !any) kernelBench();
  if (flag('train') || !any) await trainBench();
  if (flag('max-batch')) maxBatch();
  console.log(`\nload average at the end: ${os.loadavg()[0].toFixed(1)}`);
}

await main();
