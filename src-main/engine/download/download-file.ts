/**
 * Downloads one file the way fastai's lesson needs: into `<dest>.part`, resumed with HTTP Range
 * after an interruption or a cancel, retried with back-off on transient failures, checked for size
 * and checksum, and only then renamed to `dest`, so `dest` existing means "complete and verified".
 * A lock on `<dest>.lock` makes a second request for the same file (from this process or another)
 * wait for the first and then find the file there.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMismatch, type Checksum } from './checksum.js';
import { AbortError, DownloadError, errorMessage, isTransient, VerificationError } from './errors.js';
import { openUrl } from './http-get.js';
import { withLock } from './lock.js';
import { RateMeter } from './rate.js';
import { backoffDelay, sleep } from './sleep.js';

export interface DownloadProgress {
  /** Bytes in hand, including those already there from an earlier, interrupted download. */
  receivedBytes: number;
  totalBytes?: number;
  /** Speed of this session over the last few seconds. */
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Bytes that were already in `.part` and were not fetched again. */
  resumedFromBytes: number;
  /** What is happening; absent means 'downloading'. */
  phase?: 'waiting' | 'downloading' | 'retrying' | 'verifying';
  /** A sentence for the UI when the phase needs explaining (who holds the lock, why a retry). */
  message?: string;
}

export interface DownloadOptions {
  /** http:, https:, or file: (a local archive or mirror folder, copied with the same checks). */
  url: string;
  /** Final path; data goes to `${dest}.part` until verified, then renamed. */
  dest: string;
  expectedSize?: number;
  checksum?: Checksum;
  onProgress?: (p: DownloadProgress) => void;
  /** Abort rejects with an error whose name is 'AbortError'; the .part stays for resume. */
  signal?: AbortSignal;
  /** Transient failures in a row without progress before giving up; default 4, exponential back-off. */
  retries?: number;
  /** First back-off delay; default 1000 ms, doubling each retry up to 30 s. */
  retryBaseDelayMs?: number;
  /** No data for this long counts as a transient failure; default 30 s. */
  idleTimeoutMs?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  resumedFromBytes: number;
  /** False when dest already existed and verified. */
  downloaded: boolean;
}

const PROGRESS_INTERVAL_MS = 100;
const WRITE_BATCH_BYTES = 1 << 20;

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new DownloadError(`Not a valid URL: "${options.url}"`, false);
  }
  if (!['http:', 'https:', 'file:'].includes(url.protocol)) {
    throw new DownloadError(`Cannot download ${options.url}: only http:, https: and file: URLs are supported`, false);
  }
  const dest = path.resolve(options.dest);
  await mkdir(path.dirname(dest), { recursive: true });
  const job = new Job(options, url, dest);
  return withLock(`${dest}.lock`, () => job.run(), {
    signal: options.signal,
    onWait: (holder) =>
      job.report('waiting', holder ? `Waiting for another download of ${path.basename(dest)} (process ${holder.pid} on ${holder.host})` : undefined),
  });
}

class Job {
  readonly part: string;
  private meter = new RateMeter();
  private lastEmit = -Infinity;
  private received = 0;
  private total: number | undefined;
  /** Offset the current pass started from; set by the first response of the pass. */
  private resumedFrom: number | undefined;
  /** ETag or Last-Modified of the first response, sent as If-Range so a changed file restarts instead of being spliced. */
  private validator: string | undefined;

  constructor(
    private readonly options: DownloadOptions,
    private readonly url: URL,
    private readonly dest: string,
  ) {
    this.part = `${dest}.part`;
    this.total = options.expectedSize;
  }

  async run(): Promise<DownloadResult> {
    const expected = { expectedSize: this.options.expectedSize, checksum: this.options.checksum };
    const existing = await fileSize(this.dest);
    if (existing !== undefined) {
      this.report('verifying');
      if (!(await findMismatch(this.dest, expected))) {
        return { path: this.dest, bytes: existing, resumedFromBytes: 0, downloaded: false };
      }
      // A damaged copy, or an older version of the file: fetch it again.
      await rm(this.dest, { force: true });
      this.report('retrying', `${this.dest} did not verify; downloading it again`);
    }

    for (let pass = 1; ; pass++) {
      this.resumedFrom = undefined;
      let mismatch: string | undefined;
      try {
        await this.fetchWithRetries();
        this.report('verifying');
        mismatch = await findMismatch(this.part, expected);
      } catch (err) {
        if (!(err instanceof VerificationError)) throw err;
        mismatch = err.message;
      }
      if (!mismatch) {
        await rename(this.part, this.dest);
        const bytes = (await fileSize(this.dest)) ?? 0;
        return { path: this.dest, bytes, resumedFromBytes: this.resumedFrom ?? 0, downloaded: true };
      }
      await rm(this.part, { force: true });
      if (pass >= 2) {
        throw new VerificationError(
          `${this.url.href} failed verification twice (${mismatch}), so it was deleted. The file served there is not the one ` +
            `this app expects: if you set a mirror or a local archive, replace its copy with the original; otherwise the ` +
            `upstream file has changed and the app's expected size/checksum need updating.`,
        );
      }
      this.received = 0;
      this.report('retrying', `${path.basename(this.dest)} did not verify (${mismatch}); downloading it again from the start`);
    }
  }

  private async fetchWithRetries(): Promise<void> {
    const retries = this.options.retries ?? 4;
    let failuresInARow = 0;
    for (;;) {
      const before = (await fileSize(this.part)) ?? 0;
      try {
        await this.fetchOnce();
        return;
      } catch (err) {
        const kept = (await fileSize(this.part)) ?? 0;
        if (this.options.signal?.aborted) {
          throw new AbortError(`Download of ${this.url.href} cancelled; ${kept.toLocaleString('en-US')} bytes are kept in ${this.part} and the next try resumes from there`);
        }
        if (!isTransient(err)) throw err;
        const why = this.describe(err);
        // A long download over a flaky line may break many times; only breaks that got nothing count against `retries`.
        failuresInARow = kept > before ? 1 : failuresInARow + 1;
        if (failuresInARow > retries) {
          throw new DownloadError(
            `Gave up on ${this.url.href} after ${failuresInARow} failed tries in a row (last: ${why}). ` +
              (kept > 0 ? `${kept.toLocaleString('en-US')} bytes are kept in ${this.part}; run again to resume. ` : '') +
              `Check the network connection, or set a mirror (FINETUNE_MIRROR_URL) or a local archive.`,
            true,
            { url: this.url.href, cause: err },
          );
        }
        const retryAfter = err instanceof DownloadError ? err.details.retryAfterMs : undefined;
        const delay = Math.max(backoffDelay(failuresInARow, this.options.retryBaseDelayMs ?? 1000), Math.min(retryAfter ?? 0, 60_000));
        this.report('retrying', `${why}; trying again in ${(delay / 1000).toFixed(1)} s (${failuresInARow}/${retries})`);
        await sleep(delay, this.options.signal, `Download of ${this.url.href} cancelled`);
      }
    }
  }

  /** Node calls a response cut short just "aborted"; say what happened. */
  private describe(err: unknown): string {
    const message = errorMessage(err);
    return /^(aborted|socket hang up)\b/i.test(message) ? `the connection to ${this.url.host} broke (${message})` : message;
  }

  /** One request: resumes from the bytes in `.part`, appends what arrives. */
  private async fetchOnce(): Promise<void> {
    const expectedSize = this.options.expectedSize;
    let offset = (await fileSize(this.part)) ?? 0;
    if (expectedSize !== undefined && offset > expectedSize) {
      await truncate(this.part, 0);
      offset = 0;
    }
    if (expectedSize !== undefined && offset === expectedSize && offset > 0) {
      this.resumedFrom ??= offset; // all there already (cancelled during verification); verification decides
      this.received = offset;
      return;
    }
    if (this.url.protocol === 'file:') return this.copyLocal(offset);

    const headers: Record<string, string> = {};
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      if (this.validator) headers['if-range'] = this.validator;
    }
    const { response, status } = await openUrl(this.url.href, {
      headers,
      signal: this.options.signal,
      idleTimeoutMs: this.options.idleTimeoutMs,
    });

    if (status === 416) {
      response.resume();
      const total = parseContentRange(response.headers['content-range'])?.total;
      if (total !== undefined && total === offset) {
        this.resumedFrom ??= offset;
        this.received = offset;
        return;
      }
      await truncate(this.part, 0);
      throw new DownloadError(`${this.url.host} cannot resume ${path.basename(this.dest)} at byte ${offset}; starting it over`, true, { url: this.url.href });
    }

    let start = 0;
    let total: number | undefined;
    if (status === 206) {
      const range = parseContentRange(response.headers['content-range']);
      if (!range || range.start !== offset) {
        response.destroy();
        await truncate(this.part, 0);
        throw new DownloadError(`${this.url.host} answered a resume at byte ${offset} with the wrong range (${response.headers['content-range'] ?? 'none'}); starting over`, true, { url: this.url.href });
      }
      start = offset;
      total = range.total;
    } else {
      // 200: the server ignored Range (or If-Range said the file changed): the whole file comes again.
      const length = Number(response.headers['content-length']);
      total = Number.isFinite(length) && response.headers['content-length'] !== undefined ? length : undefined;
    }
    if (start === 0) this.resumedFrom = 0;
    else this.resumedFrom ??= start;
    const etag = response.headers.etag;
    this.validator ??= etag && !etag.startsWith('W/') ? etag : response.headers['last-modified'];

    if (expectedSize !== undefined && total !== undefined && total !== expectedSize) {
      response.destroy();
      throw new VerificationError(`the server says it is ${total.toLocaleString('en-US')} bytes, expected ${expectedSize.toLocaleString('en-US')}`);
    }
    await this.receive(response, start, total ?? expectedSize);
  }

  private async copyLocal(offset: number): Promise<void> {
    const source = fileURLToPath(this.url);
    const size = await fileSize(source);
    if (size === undefined) throw new DownloadError(`Local file ${source} does not exist`, false, { url: this.url.href });
    const start = offset <= size ? offset : 0;
    this.resumedFrom ??= start;
    await this.receive(createReadStream(source, { start, highWaterMark: 1 << 20 }), start, size);
  }

  /**
   * Streams `body` into `.part` from `start` (appending when resuming), counting for progress.
   * Written by hand rather than with pipeline(): when the connection breaks, pipeline() destroys the
   * file stream and drops what it buffered, whereas here every byte received is on disk before the
   * error propagates, so the resume starts exactly where the data stopped.
   */
  private async receive(body: AsyncIterable<Buffer>, start: number, total: number | undefined): Promise<void> {
    this.total = total;
    this.received = start;
    this.meter = new RateMeter(); // the rate of this connection, not one averaged with a dead one
    this.meter.add(start);
    this.emit(true);
    const expectedSize = this.options.expectedSize;
    const file = await open(this.part, start > 0 ? 'a' : 'w');
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      for (let off = 0; off < buf.length; ) off += (await file.write(buf, off)).bytesWritten;
    };
    try {
      for await (const chunk of body) {
        this.received += chunk.length;
        if (expectedSize !== undefined && this.received > expectedSize) {
          throw new VerificationError(`more than the expected ${expectedSize.toLocaleString('en-US')} bytes arrived`);
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        // Batching writes to 1 MiB keeps syscalls few; losing at most that much to a crash is fine.
        if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
        this.meter.add(this.received);
        this.emit(false);
      }
    } finally {
      try {
        await flush();
      } finally {
        await file.close();
      }
    }
    if (total !== undefined && this.received < total) {
      throw new DownloadError(
        `The connection to ${this.url.host} closed after ${this.received.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} bytes`,
        true,
        { url: this.url.href },
      );
    }
    this.emit(true);
  }

  report(phase: DownloadProgress['phase'], message?: string): void {
    this.options.onProgress?.({ ...this.snapshot(), phase, message });
  }

  private emit(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastEmit < PROGRESS_INTERVAL_MS) return;
    this.lastEmit = now;
    this.options.onProgress?.({ ...this.snapshot(), phase: 'downloading' });
  }

  private snapshot(): DownloadProgress {
    const total = this.total;
    return {
      receivedBytes: this.received,
      totalBytes: total,
      bytesPerSecond: this.meter.bytesPerSecond(),
      etaSeconds: total === undefined ? undefined : this.meter.etaSeconds(total - this.received),
      resumedFromBytes: this.resumedFrom ?? 0,
    };
  }
}

/** `bytes 100-199/1000` → {start: 100, end: 199, total: 1000}; `bytes *\/1000` (an unsatisfiable range) → {total: 1000}. */
export function parseContentRange(value: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!value) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (!m) return undefined;
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    end: m[2] === undefined ? undefined : Number(m[2]),
    total: m[3] === '*' ? undefined : Number(m[3]),
  };
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
