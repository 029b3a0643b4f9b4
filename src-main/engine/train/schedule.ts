/**
 * fastai's hyper-parameter schedules, formula for formula: `fit_one_cycle` (cosine warm-up and
 * anneal of the learning rate, inverse for beta1), the learning-rate ranges that `slice(a, b)`
 * spreads over parameter groups, `fine_tune`'s two phases and `lr_find`'s exponential sweep.
 * Position is `batch index / total training batches`, evaluated before each batch.
 */

/** `sched_cos`: cosine from start to end as pos goes 0 → 1. */
export function schedCos(start: number, end: number, pos: number): number {
  return start + ((1 + Math.cos(Math.PI * (1 - pos))) * (end - start)) / 2;
}

/** `combined_cos(pct, start, middle, end)`: cosine start→middle over [0, pct), middle→end after. */
export function combinedCos(pct: number, start: number, middle: number, end: number): (pos: number) => number {
  return (pos) => (pos < pct ? schedCos(start, middle, pos / pct) : schedCos(middle, end, (pos - pct) / (1 - pct)));
}

/** `SchedExp(start, end)`: exponential interpolation, used by lr_find. */
export function schedExp(start: number, end: number, pos: number): number {
  return start * (end / start) ** pos;
}

/** `even_mults(start, stop, n)`: n values spaced geometrically from start to stop. */
export function evenMults(start: number, stop: number, n: number): number[] {
  if (n === 1) return [stop];
  const step = (stop / start) ** (1 / (n - 1));
  return Array.from({ length: n }, (_, i) => start * step ** i);
}

/**
 * A learning rate for each of `nGroups` parameter groups, as fastai's `lr_range`:
 * a number applies to every group; `{ start, stop }` (`slice(start, stop)`) is spread
 * geometrically; `{ stop }` alone (`slice(stop)`) gives stop/10 to the body groups and stop to the head.
 */
export type LearningRate = number | { start?: number; stop: number };

export function lrRange(lr: LearningRate, nGroups: number): number[] {
  if (typeof lr === 'number') return Array(nGroups).fill(lr);
  if (lr.start === undefined) return [...Array(nGroups - 1).fill(lr.stop / 10), lr.stop];
  return evenMults(lr.start, lr.stop, nGroups);
}

export interface HyperParams {
  /** One learning rate per parameter group. */
  lrs: number[];
  /** Adam's beta1 (fastai's "mom"). */
  mom: number;
}

export interface OneCycleOptions {
  lrMax: number[];
  pctStart?: number;
  div?: number;
  divFinal?: number;
  moms?: readonly [number, number, number];
}

/** `fit_one_cycle`'s hyper-parameters at a position in [0, 1). */
export function oneCycleAt(options: OneCycleOptions, pos: number): HyperParams {
  const { lrMax, pctStart = 0.25, div = 25, divFinal = 1e5, moms = [0.95, 0.85, 0.95] } = options;
  return {
    lrs: lrMax.map((l) => combinedCos(pctStart, l / div, l, l / divFinal)(pos)),
    mom: combinedCos(pctStart, moms[0], moms[1], moms[2])(pos),
  };
}

/** The whole one-cycle schedule for `totalIters` batches. */
export function oneCycleSchedule(options: OneCycleOptions, totalIters: number): HyperParams[] {
  return Array.from({ length: totalIters }, (_, i) => oneCycleAt(options, i / totalIters));
}

export interface FineTunePhase {
  name: 'frozen' | 'unfrozen';
  epochs: number;
  /** Body frozen (only the head and BatchNorm layers train). */
  frozen: boolean;
  oneCycle: OneCycleOptions;
}

export interface FineTuneOptions {
  epochs: number;
  baseLr?: number;
  freezeEpochs?: number;
  lrMult?: number;
  pctStart?: number;
  div?: number;
  nGroups: number;
}

/**
 * `fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5.0)`:
 * freeze, one cycle at slice(base_lr) with pct_start 0.99; then halve base_lr, unfreeze and run
 * one cycle over slice(base_lr/lr_mult, base_lr).
 */
export function fineTunePhases(options: FineTuneOptions): FineTunePhase[] {
  const { epochs, freezeEpochs = 1, lrMult = 100, pctStart = 0.3, div = 5, nGroups } = options;
  let baseLr = options.baseLr ?? 2e-3;
  const phases: FineTunePhase[] = [];
  if (freezeEpochs > 0) {
    phases.push({ name: 'frozen', epochs: freezeEpochs, frozen: true, oneCycle: { lrMax: lrRange({ stop: baseLr }, nGroups), pctStart: 0.99 } });
  }
  baseLr /= 2;
  if (epochs > 0) {
    phases.push({ name: 'unfrozen', epochs, frozen: false, oneCycle: { lrMax: lrRange({ start: baseLr / lrMult, stop: baseLr }, nGroups), pctStart, div } });
  }
  return phases;
}
