/**
 * A terminal progress bar with rate and ETA. On a TTY it redraws one line; otherwise (CI logs,
 * pipes) it prints a line at most every few seconds so logs stay readable.
 */
export interface ProgressBarOptions {
  label: string;
  total?: number;
  /** Formats a count for display, e.g. bytes as MiB. Defaults to the plain number. */
  format?: (n: number) => string;
  /** Unit shown in the rate, e.g. "img" gives "123 img/s". */
  unit?: string;
  /** Off when the caller's note already carries a rate and ETA of its own (e.g. images/s while counting batches). */
  showRate?: boolean;
  stream?: NodeJS.WriteStream;
}

export interface ProgressBar {
  update(done: number, total?: number, note?: string): void;
  /** Ends the bar: with a summary, prints a closing line; without, just clears it. */
  finish(summary?: string): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${String(m).padStart(2, '0')}:${sec}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const WIDTH = 28;
const NON_TTY_INTERVAL_MS = 5000;

export function createProgressBar(options: ProgressBarOptions): ProgressBar {
  const stream = options.stream ?? process.stderr;
  const fmt = options.format ?? ((n: number) => String(n));
  const unit = options.unit ?? '';
  const start = performance.now();
  let total = options.total;
  let lastPrint = 0;
  let lastLine = '';

  function render(done: number, note?: string): string {
    const elapsed = (performance.now() - start) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const rateText = unit === 'B' ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)} ${unit}/s`.trim();
    const parts = [options.label];
    if (total && total > 0) {
      const frac = Math.min(1, done / total);
      const filled = Math.round(frac * WIDTH);
      const eta = rate > 0 ? (total - done) / rate : NaN;
      parts.push(`[${'█'.repeat(filled)}${'░'.repeat(WIDTH - filled)}]`, `${(frac * 100).toFixed(0).padStart(3)}%`, `${fmt(done)}/${fmt(total)}`);
      if (options.showRate !== false) parts.push(rateText, `ETA ${formatDuration(eta)}`);
    } else {
      parts.push(fmt(done), rateText, formatDuration(elapsed));
    }
    if (note) parts.push(note);
    return parts.join('  ');
  }

  return {
    update(done, newTotal, note) {
      if (newTotal !== undefined) total = newTotal;
      const now = performance.now();
      if (stream.isTTY) {
        if (now - lastPrint < 80) return;
        lastPrint = now;
        lastLine = render(done, note);
        stream.write(`\r\x1b[2K${lastLine}`);
      } else if (now - lastPrint >= NON_TTY_INTERVAL_MS) {
        lastPrint = now;
        stream.write(`${render(done, note)}\n`);
      }
    },
    finish(summary) {
      // Without a summary the bar just goes away: the caller prints its own result (e.g. a table row).
      if (summary === undefined) {
        if (stream.isTTY) stream.write('\r\x1b[2K');
        return;
      }
      const elapsed = (performance.now() - start) / 1000;
      const line = `${options.label}  done in ${formatDuration(elapsed)}  ${summary}`;
      stream.write(stream.isTTY ? `\r\x1b[2K${line}\n` : `${line}\n`);
    },
  };
}
