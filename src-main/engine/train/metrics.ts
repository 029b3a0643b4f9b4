/**
 * What fastai's Recorder reports: the smoothed training loss (an exponentially weighted moving
 * average, beta 0.98, debiased, reset at the start of each fit), and on the validation set the
 * loss and error rate weighted by batch size, plus a confusion matrix for interpretation.
 */

export class SmoothedLoss {
  private val = 0;
  private count = 0;
  constructor(readonly beta = 0.98) {}

  /** Adds a batch's mean loss; returns the debiased smoothed loss. */
  add(loss: number): number {
    // torch.lerp(loss, val, beta) = loss + beta * (val - loss)
    this.val = loss + this.beta * (this.val - loss);
    this.count++;
    return this.value;
  }

  get value(): number {
    return this.count === 0 ? Number.NaN : this.val / (1 - this.beta ** this.count);
  }

  reset(): void {
    this.val = 0;
    this.count = 0;
  }
}

/** Accumulates validation results batch by batch. */
export class ValidationTally {
  private lossSum = 0;
  private n = 0;
  private wrong = 0;
  readonly confusion: number[][];

  constructor(readonly numClasses: number) {
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  }

  /** `meanLoss` is the batch's mean cross-entropy; `actual`/`predicted` are class indices. */
  addBatch(meanLoss: number, actual: ArrayLike<number>, predicted: ArrayLike<number>): void {
    const size = actual.length;
    this.lossSum += meanLoss * size;
    this.n += size;
    for (let i = 0; i < size; i++) {
      if (actual[i] !== predicted[i]) this.wrong++;
      this.confusion[actual[i]][predicted[i]]++;
    }
  }

  get count(): number {
    return this.n;
  }

  get loss(): number {
    return this.n === 0 ? Number.NaN : this.lossSum / this.n;
  }

  get errorRate(): number {
    return this.n === 0 ? Number.NaN : this.wrong / this.n;
  }

  get accuracy(): number {
    return 1 - this.errorRate;
  }

  /** Accuracy of each actual class (NaN for a class absent from the validation set). */
  perClassAccuracy(): number[] {
    return this.confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total === 0 ? Number.NaN : row[c] / total;
    });
  }
}
