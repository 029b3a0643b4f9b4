import { AbortError } from './errors.js';

/** Waits `ms`, or rejects with AbortError as soon as `signal` fires (and then drops its timer). */
export function sleep(ms: number, signal?: AbortSignal, abortMessage = 'Cancelled'): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(abortMessage));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError(abortMessage));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Delay before retry number `attempt` (1-based): `base * 2^(attempt-1)`, capped, with ±25 % jitter
 * so several clients cut off by the same outage do not all come back in the same instant.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs = 30_000, random = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.75 + 0.5 * random()));
}
