/**
 * Transfer rate over a sliding window, so the ETA follows the current speed (a resumed download or
 * a network that slows down) instead of the average since the start.
 */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];

  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records that `bytes` (a running count) had been transferred by now. */
  add(bytes: number): void {
    const t = this.now();
    this.samples.push({ t, bytes });
    // Keep one sample older than the window as the baseline.
    while (this.samples.length > 2 && t - this.samples[1].t > this.windowMs) this.samples.shift();
  }

  /** Bytes per second across the window; 0 until two samples at least 50 ms apart exist. */
  bytesPerSecond(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 50) return 0;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  }

  /** Seconds left for `remaining` bytes at the current rate; undefined when the rate is unknown. */
  etaSeconds(remaining: number): number | undefined {
    const rate = this.bytesPerSecond();
    return rate > 0 ? Math.max(0, remaining) / rate : undefined;
  }
}
