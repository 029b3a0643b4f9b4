/**
 * fastai's learning-rate finder: an exponential sweep from 1e-7 to 10 over 100 batches that stops
 * when the smoothed loss passes 4x the best seen, and four ways to suggest a rate from the curve
 * (`valley` is fastai's default). The sweep's training loop lives in the learner; this module is
 * the schedule, the stopping rule and the suggestions, so they can be checked on their own.
 */
import { schedExp } from './schedule.js';

export interface LrFindOptions {
  startLr?: number;
  endLr?: number;
  numIt?: number;
  stopDiv?: boolean;
}

export interface LrFindPoint {
  lr: number;
  /** Smoothed loss after the batch at this rate. */
  loss: number;
}

export interface Suggestion {
  lr: number;
  /** Where to mark it on the curve. */
  point: { lr: number; loss: number };
}

export type SuggestionName = 'valley' | 'slide' | 'minimum' | 'steep';

/** The sweep's bookkeeping: rate for each batch, and when to stop. */
export class LrSweep {
  readonly startLr: number;
  readonly endLr: number;
  readonly numIt: number;
  readonly stopDiv: boolean;
  readonly points: LrFindPoint[] = [];
  private best = Infinity;

  constructor(options: LrFindOptions = {}) {
    this.startLr = options.startLr ?? 1e-7;
    this.endLr = options.endLr ?? 10;
    this.numIt = Math.max(6, options.numIt ?? 100);
    this.stopDiv = options.stopDiv ?? true;
  }

  /** Learning rate for batch `iter` (0-based). */
  lrAt(iter: number): number {
    return schedExp(this.startLr, this.endLr, iter / this.numIt);
  }

  /** Records a batch's smoothed loss; returns true when the sweep should stop. */
  record(iter: number, smoothLoss: number): boolean {
    this.points.push({ lr: this.lrAt(iter), loss: smoothLoss });
    if (smoothLoss < this.best) this.best = smoothLoss;
    if (this.stopDiv && (smoothLoss > 4 * this.best || Number.isNaN(smoothLoss))) return true;
    return iter + 1 >= this.numIt;
  }
}

/** `valley`: the steepest point about 2/3 of the way down the longest descending run. */
export function valley(lrs: number[], losses: number[]): Suggestion {
  const n = losses.length;
  let maxStart = 0;
  let maxEnd = 0;
  const lds = new Array<number>(n).fill(1);
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      if (losses[i] < losses[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
      if (lds[maxEnd] < lds[i]) {
        maxEnd = i;
        maxStart = maxEnd - lds[maxEnd];
      }
    }
  }
  const sections = (maxEnd - maxStart) / 3;
  const idx = maxStart + Math.trunc(sections) + Math.trunc(sections / 2);
  return { lr: lrs[idx], point: { lr: lrs[idx], loss: losses[idx] } };
}

/** numpy's `gradient` with unit spacing: central differences inside, one-sided at the ends. */
function npGradient(v: number[]): number[] {
  const n = v.length;
  if (n < 2) return v.map(() => 0);
  return v.map((_, i) => (i === 0 ? v[1] - v[0] : i === n - 1 ? v[n - 1] - v[n - 2] : (v[i + 1] - v[i - 1]) / 2));
}

/** numpy's `interp` for increasing xp, clamped at the ends. */
function npInterp(x: number, xp: number[], fp: number[]): number {
  if (x <= xp[0]) return fp[0];
  if (x >= xp[xp.length - 1]) return fp[fp.length - 1];
  let i = 1;
  while (xp[i] < x) i++;
  return fp[i - 1] + ((fp[i] - fp[i - 1]) * (x - xp[i - 1])) / (xp[i] - xp[i - 1]);
}

/** `slide`: walk left from the end until the loss slope settles (interval slide rule). */
export function slide(lrs: number[], losses: number[], lrDiff = 15, thresh = 0.005, adjustValue = 1): Suggestion {
  const n = losses.length;
  const at = <T>(a: T[], negIdx: number) => a[n + negIdx];
  const grad = npGradient(losses);
  let rIdx = -1;
  let lIdx = rIdx - lrDiff;
  let localMin = at(lrs, Math.max(lIdx, -n));
  while (lIdx >= -n && Math.abs(at(grad, rIdx) - at(grad, lIdx)) > thresh) {
    localMin = at(lrs, lIdx);
    rIdx--;
    lIdx--;
  }
  const lr = localMin * adjustValue;
  return { lr, point: { lr, loss: npInterp(Math.log10(lr), lrs.map(Math.log10), losses) } };
}

function nearestLoss(lrs: number[], losses: number[], lr: number): number {
  let best = 0;
  for (let i = 1; i < lrs.length; i++) if (Math.abs(lrs[i] - lr) < Math.abs(lrs[best] - lr)) best = i;
  return losses[best];
}

/** `minimum`: a tenth of the rate at the lowest loss. */
export function minimum(lrs: number[], losses: number[]): Suggestion {
  let idx = 0;
  for (let i = 1; i < losses.length; i++) if (losses[i] < losses[idx]) idx = i;
  const lrMin = lrs[idx];
  return { lr: lrMin / 10, point: { lr: lrMin, loss: nearestLoss(lrs, losses, lrMin) } };
}

/** `steep`: the rate where the loss falls fastest per log-step. */
export function steep(lrs: number[], losses: number[]): Suggestion {
  let idx = 0;
  let best = Infinity;
  for (let i = 0; i + 1 < losses.length; i++) {
    const g = (losses[i + 1] - losses[i]) / (Math.log(lrs[i + 1]) - Math.log(lrs[i]));
    if (g < best) {
      best = g;
      idx = i;
    }
  }
  return { lr: lrs[idx], point: { lr: lrs[idx], loss: nearestLoss(lrs, losses, lrs[idx]) } };
}

/**
 * fastai's post-processing before suggesting: drop the first numIt/10 and the last 5 points,
 * and everything from the first NaN on. Returns undefined when too few points remain.
 */
export function suggestLearningRates(points: LrFindPoint[], numIt = 100): Record<SuggestionName, Suggestion> | undefined {
  let kept = points.slice(Math.trunc(numIt / 10), Math.max(Math.trunc(numIt / 10), points.length - 5));
  const firstNaN = kept.findIndex((p) => Number.isNaN(p.loss));
  if (firstNaN >= 0) kept = kept.slice(0, firstNaN);
  if (kept.length < 2) return undefined;
  const lrs = kept.map((p) => p.lr);
  const losses = kept.map((p) => p.loss);
  return { valley: valley(lrs, losses), slide: slide(lrs, losses), minimum: minimum(lrs, losses), steep: steep(lrs, losses) };
}
