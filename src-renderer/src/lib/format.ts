/** Numbers as people read them. Pure functions (tested in test/renderer). */

/** 75 -> "01:15", 3725 -> "1:02:05" (fastai's table style). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${two(m)}:${two(sec)}`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** fastai prints losses with 6 decimals. */
export function formatLoss(v: number): string {
  return Number.isFinite(v) ? v.toFixed(6) : 'nan';
}

export function formatPercent(fraction: number, digits = 1): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(digits)}%` : '–';
}

/** Learning rates: 0.002 -> "2.0e-3", as the lr_find plot labels them. */
export function formatLr(lr: number): string {
  if (!Number.isFinite(lr) || lr <= 0) return '?';
  const [mant, exp] = lr.toExponential(1).split('e');
  return `${mant}e${Number(exp)}`;
}

export function pluralize(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}
