/**
 * Error types the download and extraction code throws, so callers (CLI, UI) can tell a cancel
 * from a failure, and a failure worth retrying from one that is not.
 */

/** Thrown when the caller's AbortSignal fires. `name` is 'AbortError' like the DOM's, so `err.name === 'AbortError'` works everywhere. */
export class AbortError extends Error {
  override name = 'AbortError';
}

/** A network or HTTP failure. `transient` says whether trying again later may succeed (resets, timeouts, 5xx). */
export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    message: string,
    readonly transient: boolean,
    readonly details: { status?: number; url?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

/** The bytes arrived but are not the expected file (size or checksum differ). */
export class VerificationError extends Error {
  override name = 'VerificationError';
}

/** An archive entry that would land outside the target folder (absolute, `..`, or a link pointing out). */
export class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

/** The archive is damaged or not in a format we read (bad tar header, truncated gzip, unknown magic). */
export class ArchiveFormatError extends Error {
  override name = 'ArchiveFormatError';
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

export function throwIfAborted(signal: AbortSignal | undefined, message: string): void {
  if (signal?.aborted) throw new AbortError(message);
}

/** Network error codes that mean "the connection broke", worth a retry with back-off. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'ENOTFOUND', // often a flaky resolver or a laptop waking up; a typo in a URL fails the same way every retry, which is only a few seconds lost
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

export function isTransient(err: unknown): boolean {
  if (err instanceof DownloadError) return err.transient;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  // Node reports a response cut mid-body as `Error: aborted` (code ECONNRESET on recent versions).
  return err instanceof Error && /^(aborted|socket hang up)$/i.test(err.message);
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
