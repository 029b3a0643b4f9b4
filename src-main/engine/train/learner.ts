/**
 * fastai's `Learner` for classification: `fit_one_cycle`, `fine_tune`, `lr_find` and validation,
 * on a network (normally a `FinetuneModel`: body + fastai head, fed images; in quick mode the head
 * alone, fed cached features) and two batch sources.
 *
 * - Freezing trains the head and every BatchNorm layer of the body (fastai's `train_bn`); BatchNorm
 *   layers run in training mode so their running statistics keep updating.
 * - Weight decay (0.01, decoupled) is off for BatchNorm and bias parameters.
 * - A batch larger than `microBatch` is split and its gradients accumulated, so the step uses the
 *   full batch's mean gradient; BatchNorm then normalises each micro-batch with its own statistics
 *   (like data-parallel training without synchronised BatchNorm).
 * - Cancelling (AbortSignal) stops after the current batch and leaves the model usable.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/data-loader.js';
import type { PreparedItem } from '../data/prepare.js';
import { isBatchNorm, type FinetuneModel } from '../models/create-model.js';
import { releaseFailedStepMemory, WasmHeapExhaustedError } from '../wasm-kernels/index.js';
import type { OptimizerTensors } from './checkpoint.js';
import { FastaiAdam, type AdamStateSnapshot, type OptimizedParam } from './fastai-adam.js';
import { LrSweep, suggestLearningRates, type LrFindOptions, type LrFindPoint, type Suggestion, type SuggestionName } from './lr-find.js';
import { SmoothedLoss, ValidationTally } from './metrics.js';
import { fineTunePhases, oneCycleAt, type FineTuneOptions, type OneCycleOptions } from './schedule.js';

export interface EpochRow {
  /** 0-based within its fit, as fastai prints it. */
  epoch: number;
  /** `quick`: quick mode's head-only epochs on cached features. */
  phase: 'frozen' | 'unfrozen' | 'fit' | 'quick';
  trainLoss: number;
  validLoss: number;
  errorRate: number;
  accuracy: number;
  seconds: number;
}

export type TrainEvent =
  | { type: 'fit-start'; phase: EpochRow['phase']; epochs: number; batchesPerEpoch: number; frozen: boolean }
  | {
      type: 'batch';
      phase: EpochRow['phase'];
      epoch: number;
      /** Batch index within the fit. */
      iter: number;
      totalIters: number;
      loss: number;
      smoothLoss: number;
      lrs: number[];
      mom: number;
      imagesPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'validation'; done: number; total: number }
  | { type: 'epoch'; row: EpochRow }
  | { type: 'lr-find'; point: LrFindPoint; iter: number; numIt: number }
  | { type: 'note'; message: string };

/** What the learner trains: inputs of `sampleShape` to `numClasses` scores, in parameter groups (head last). */
export interface TrainableNetwork {
  model: tf.LayersModel;
  paramGroups: readonly { layers: tf.layers.Layer[] }[];
  /** One input sample, e.g. [size, size, 3] for images, [2 * features] for pooled features. */
  sampleShape: number[];
  numClasses: number;
}

export function imageNetwork(m: FinetuneModel): TrainableNetwork {
  return { model: m.model, paramGroups: m.paramGroups, sampleShape: [m.inputSize, m.inputSize, 3], numClasses: m.head.outputs[0].shape[1] as number };
}

/** Batches for one split: the image DataLoader, or quick mode's feature loader. */
export interface BatchSource {
  readonly batchSize: number;
  /** Batches per epoch. */
  readonly length: number;
  readonly items: readonly PreparedItem[];
  epoch(epoch: number): AsyncGenerator<Batch>;
}

export interface LearnerOptions {
  network: TrainableNetwork;
  train: BatchSource;
  valid: BatchSource;
  /** Decoupled weight decay (fastai default 0.01). */
  wd?: number;
  /** Largest number of images sent through the model at once; bigger batches accumulate gradients. */
  microBatch?: number;
  onEvent?: (event: TrainEvent) => void;
  signal?: AbortSignal;
}

export interface ValidationResult {
  loss: number;
  errorRate: number;
  accuracy: number;
  confusion: number[][];
  perClassAccuracy: number[];
}

export interface Prediction {
  relPath: string;
  actual: number;
  predicted: number;
  /** Probability of the predicted class. */
  probability: number;
  /** Cross-entropy of this image. */
  loss: number;
}

export interface LrFindResult {
  points: LrFindPoint[];
  suggestions?: Record<SuggestionName, Suggestion>;
}

export class CancelledError extends Error {
  override name = 'AbortError';
  constructor() {
    super('Training was cancelled.');
  }
}

const isBias = (v: tf.LayerVariable) => /\/bias(_\d+)?$/.test(v.name);

export class Learner {
  readonly network: TrainableNetwork;
  private readonly trainDl: BatchSource;
  private readonly validDl: BatchSource;
  private readonly sampleSize: number;
  private readonly wd: number;
  /** Lowered (halved) when a step runs out of the WebAssembly heap. */
  private microBatch: number;
  private readonly onEvent: (e: TrainEvent) => void;
  private readonly signal?: AbortSignal;
  private frozen = true;
  /** Trainable parameters, by group, with their weight-decay flag. */
  private readonly allParams: (OptimizedParam & { bn: boolean })[];
  private opt: FastaiAdam;
  /** Epochs completed over all fits (drives the data loader's per-epoch shuffle; saved in checkpoints). */
  epochsSeen = 0;
  readonly smooth = new SmoothedLoss();

  constructor(options: LearnerOptions) {
    this.network = options.network;
    this.sampleSize = options.network.sampleShape.reduce((a, b) => a * b, 1);
    this.trainDl = options.train;
    this.validDl = options.valid;
    this.wd = options.wd ?? 0.01;
    this.microBatch = options.microBatch ?? Infinity;
    this.onEvent = options.onEvent ?? (() => {});
    this.signal = options.signal;
    this.allParams = [];
    options.network.paramGroups.forEach((group, g) => {
      for (const layer of group.layers) {
        const bn = isBatchNorm(layer);
        for (const v of layer.trainableWeights) this.allParams.push({ variable: v.read() as tf.Variable, group: g, weightDecay: !bn && !isBias(v), bn });
      }
    });
    this.opt = this.newOptimizer();
  }

  private newOptimizer(): FastaiAdam {
    return new FastaiAdam(this.trainableParams(), { wd: this.wd });
  }

  /** What the optimizer updates now: everything, or (frozen) the head plus the body's BatchNorm layers. */
  private trainableParams(): OptimizedParam[] {
    const head = this.network.paramGroups.length - 1;
    return this.allParams.filter((p) => !this.frozen || p.group === head || p.bn);
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** fastai's freeze()/unfreeze(): a new optimizer state each time, as fastai builds a new one. */
  setFrozen(frozen: boolean): void {
    this.frozen = frozen;
    this.opt.dispose();
    this.opt = this.newOptimizer();
  }

  private checkCancelled(): void {
    if (this.signal?.aborted) throw new CancelledError();
  }

  /**
   * Forward + backward over one batch (in micro-batches), returning the batch's mean loss and
   * gradients. If the WebAssembly heap runs out, the failed step's tensors are released and the
   * batch is redone with half the micro-batch (the optimizer step still sees the whole batch).
   */
  private gradients(batch: Batch, params: OptimizedParam[]): { loss: number; grads: tf.NamedTensorMap } {
    for (;;) {
      try {
        return this.accumulateGradients(batch, params);
      } catch (err) {
        if (!(err instanceof WasmHeapExhaustedError) || this.microBatch <= 1) throw err;
        releaseFailedStepMemory();
        const before = Math.min(this.microBatch, batch.n);
        this.microBatch = Math.max(1, Math.floor(before / 2));
        this.onEvent({ type: 'note', message: `The WebAssembly heap is full: retrying with ${this.microBatch} images per pass instead of ${before}.` });
      }
    }
  }

  private accumulateGradients(batch: Batch, params: OptimizedParam[]): { loss: number; grads: tf.NamedTensorMap } {
    const vars = params.map((p) => p.variable);
    const { numClasses, sampleShape } = this.network;
    const per = this.sampleSize;
    let total: tf.NamedTensorMap | undefined;
    let lossSum = 0;
    try {
      for (let start = 0; start < batch.n; start += Math.min(this.microBatch, batch.n)) {
        const n = Math.min(this.microBatch, batch.n - start);
        const { value, grads } = tf.tidy(() => {
          const x = tf.tensor(batch.x.subarray(start * per, (start + n) * per), [n, ...sampleShape]);
          const y = tf.oneHot(tf.tensor1d(batch.y.subarray(start, start + n), 'int32'), numClasses);
          return tf.variableGrads(() => {
            const logits = this.network.model.apply(x, { training: true }) as tf.Tensor2D;
            // Weighted by this micro-batch's share so the sum over micro-batches is the batch mean.
            return tf.losses.softmaxCrossEntropy(y, logits).mul(n / batch.n) as tf.Scalar;
          }, vars);
        });
        lossSum += value.dataSync()[0];
        value.dispose();
        if (!total) total = grads;
        else {
          for (const name of Object.keys(grads)) {
            const sum = tf.add(total[name], grads[name]);
            total[name].dispose();
            grads[name].dispose();
            total[name] = sum;
          }
        }
      }
    } catch (err) {
      if (total) tf.dispose(Object.values(total));
      throw err;
    }
    return { loss: lossSum, grads: total ?? {} };
  }

  private trainStep(batch: Batch, lrs: number[], mom: number): number {
    const { loss, grads } = this.gradients(batch, this.trainableParams());
    this.opt.step(grads, lrs, mom);
    tf.dispose(Object.values(grads));
    return loss;
  }

  /**
   * `fit_one_cycle(epochs, lr_max, pct_start, …)`; returns the epoch table. `startEpoch` resumes a
   * fit part-way (the schedule continues where it was, like fastai's `start_epoch`); `afterEpoch`
   * runs after each epoch's validation (checkpoints).
   */
  async fitOneCycle(
    epochs: number,
    oneCycle: OneCycleOptions,
    phase: EpochRow['phase'] = 'fit',
    options: { startEpoch?: number; afterEpoch?: (row: EpochRow) => Promise<void> } = {},
  ): Promise<EpochRow[]> {
    const startEpoch = options.startEpoch ?? 0;
    const perEpoch = this.trainDl.length;
    if (perEpoch === 0) throw new Error(`The training set has fewer images (${this.trainDl.items.length}) than one batch (${this.trainDl.batchSize}); lower the batch size.`);
    const totalIters = epochs * perEpoch;
    this.smooth.reset();
    this.onEvent({ type: 'fit-start', phase, epochs, batchesPerEpoch: perEpoch, frozen: this.frozen });
    const rows: EpochRow[] = [];
    const fitStart = performance.now();
    let iter = startEpoch * perEpoch;
    let imagesDone = 0;
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const epochStart = performance.now();
      for await (const batch of this.trainDl.epoch(this.epochsSeen)) {
        this.checkCancelled();
        const hp = oneCycleAt(oneCycle, iter / totalIters);
        const loss = this.trainStep(batch, hp.lrs, hp.mom);
        const smoothLoss = this.smooth.add(loss);
        iter++;
        imagesDone += batch.n;
        const rate = imagesDone / ((performance.now() - fitStart) / 1000);
        // Validation runs forward only, about a third of a training step's cost per image.
        const remainingImages = (totalIters - iter) * this.trainDl.batchSize + ((epochs - epoch) * this.validDl.items.length) / 3;
        this.onEvent({ type: 'batch', phase, epoch, iter, totalIters, loss, smoothLoss, lrs: hp.lrs, mom: hp.mom, imagesPerSecond: rate, etaSeconds: remainingImages / rate });
        await yieldToEventLoop();
      }
      this.epochsSeen++;
      const v = await this.validate();
      const row: EpochRow = { epoch, phase, trainLoss: this.smooth.value, validLoss: v.loss, errorRate: v.errorRate, accuracy: v.accuracy, seconds: (performance.now() - epochStart) / 1000 };
      rows.push(row);
      this.onEvent({ type: 'epoch', row });
      await options.afterEpoch?.(row);
    }
    return rows;
  }

  /** `fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, …)`: frozen one-cycle, then unfrozen with discriminative rates. */
  async fineTune(epochs: number, options: Omit<FineTuneOptions, 'epochs' | 'nGroups'> = {}): Promise<EpochRow[]> {
    const rows: EpochRow[] = [];
    for (const phase of fineTunePhases({ ...options, epochs, nGroups: this.network.paramGroups.length })) {
      this.setFrozen(phase.frozen);
      rows.push(...(await this.fitOneCycle(phase.epochs, phase.oneCycle, phase.name)));
    }
    return rows;
  }

  /** Runs the validation set in inference mode (dropout off, BatchNorm running statistics). */
  async validate(collect?: Prediction[]): Promise<ValidationResult> {
    const { numClasses, sampleShape } = this.network;
    const tally = new ValidationTally(numClasses);
    const per = this.sampleSize;
    let done = 0;
    for await (const batch of this.validDl.epoch(0)) {
      this.checkCancelled();
      const chunk = Math.min(this.microBatch, batch.n);
      for (let start = 0; start < batch.n; start += chunk) {
        const n = Math.min(chunk, batch.n - start);
        const [losses, probs] = tf.tidy(() => {
          const x = tf.tensor(batch.x.subarray(start * per, (start + n) * per), [n, ...sampleShape]);
          const logits = this.network.model.apply(x, { training: false }) as tf.Tensor2D;
          const y = tf.oneHot(tf.tensor1d(batch.y.subarray(start, start + n), 'int32'), numClasses);
          return [tf.losses.softmaxCrossEntropy(y, logits, undefined, 0, tf.Reduction.NONE), tf.softmax(logits)];
        });
        const lossValues = (await losses.data()) as Float32Array;
        const probValues = (await probs.data()) as Float32Array;
        tf.dispose([losses, probs]);
        const actual = batch.y.subarray(start, start + n);
        const predicted = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          let best = 0;
          for (let c = 1; c < numClasses; c++) if (probValues[i * numClasses + c] > probValues[i * numClasses + best]) best = c;
          predicted[i] = best;
          collect?.push({ relPath: batch.items[start + i].relPath, actual: actual[i], predicted: best, probability: probValues[i * numClasses + best], loss: lossValues[i] });
        }
        tally.addBatch(lossValues.reduce((a, b) => a + b, 0) / n, actual, predicted);
      }
      done += batch.n;
      this.onEvent({ type: 'validation', done, total: this.validDl.items.length });
      await yieldToEventLoop();
    }
    return { loss: tally.loss, errorRate: tally.errorRate, accuracy: tally.accuracy, confusion: tally.confusion, perClassAccuracy: tally.perClassAccuracy() };
  }

  /**
   * `lr_find()`: an exponential sweep of the learning rate over up to `numIt` training batches, on
   * the current freeze state. Weights (including BatchNorm statistics) and optimizer state are
   * restored afterwards, so the sweep leaves no trace.
   */
  async lrFind(options: LrFindOptions = {}): Promise<LrFindResult> {
    const sweep = new LrSweep(options);
    const saved = this.network.model.weights.map((w) => tf.keep(w.read().clone()));
    const savedOpt = await this.opt.snapshot();
    const nGroups = this.network.paramGroups.length;
    const smooth = new SmoothedLoss();
    let iter = 0;
    try {
      this.opt.reset();
      outer: for (let epoch = 0; ; epoch++) {
        for await (const batch of this.trainDl.epoch(this.epochsSeen + epoch)) {
          this.checkCancelled();
          const lr = sweep.lrAt(iter);
          const loss = this.trainStep(batch, new Array(nGroups).fill(lr), 0.95);
          const stop = sweep.record(iter, smooth.add(loss));
          this.onEvent({ type: 'lr-find', point: sweep.points[sweep.points.length - 1], iter, numIt: sweep.numIt });
          iter++;
          await yieldToEventLoop();
          if (stop) break outer;
        }
        if (this.trainDl.length === 0) break;
      }
    } finally {
      this.network.model.weights.forEach((w, i) => w.write(saved[i]));
      tf.dispose(saved);
      this.opt.restore(savedOpt);
    }
    return { points: sweep.points, suggestions: suggestLearningRates(sweep.points, sweep.numIt) };
  }

  /** Interpretation: every validation prediction, sorted by loss (the top losses first). */
  async topLosses(): Promise<{ validation: ValidationResult; predictions: Prediction[] }> {
    const predictions: Prediction[] = [];
    const validation = await this.validate(predictions);
    predictions.sort((a, b) => b.loss - a.loss);
    return { validation, predictions };
  }

  /** Optimizer moments by parameter position (for checkpoints, which outlive variable names). */
  async optimizerState(): Promise<OptimizerTensors[]> {
    const snapshot = await this.opt.snapshot();
    const out: OptimizerTensors[] = [];
    this.allParams.forEach((p, param) => {
      const s = snapshot.params[p.variable.name];
      if (s) out.push({ param, step: s.step, avg: s.avg, sqr: s.sqr, shape: s.shape });
    });
    return out;
  }

  restoreOptimizerState(state: OptimizerTensors[]): void {
    const params: AdamStateSnapshot['params'] = {};
    for (const s of state) {
      const p = this.allParams[s.param];
      if (!p) throw new Error(`Checkpoint optimizer state names parameter #${s.param}, which this model does not have.`);
      params[p.variable.name] = { avg: s.avg, sqr: s.sqr, shape: s.shape, step: s.step };
    }
    this.opt.restore({ params });
  }

  dispose(): void {
    this.opt.dispose();
  }
}

/** Lets progress messages and cancel requests through between batches. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
