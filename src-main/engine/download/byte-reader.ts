/**
 * Pull-style reading of exact byte counts from a stream of chunks, which is what a tar parser
 * needs (512-byte headers, then N bytes of body) without buffering whole entries.
 */
import { ArchiveFormatError } from './errors.js';

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private readonly iterator: AsyncIterator<Buffer>;
  /** Bytes handed out so far (the offset in the stream), for error messages. */
  position = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    if (next.value.length > 0) {
      this.chunks.push(next.value);
      this.buffered += next.value.length;
    }
    return true;
  }

  /** Removes and returns up to `max` buffered bytes (at least 1; the caller ensures some are buffered). */
  private takeUpTo(max: number): Buffer {
    const head = this.chunks[0];
    let out: Buffer;
    if (head.length <= max) {
      out = head;
      this.chunks.shift();
    } else {
      out = head.subarray(0, max);
      this.chunks[0] = head.subarray(max);
    }
    this.buffered -= out.length;
    this.position += out.length;
    return out;
  }

  /** Exactly `n` bytes; `null` if the stream ended before the first byte; throws if it ends midway. */
  async readExact(n: number, what: string): Promise<Buffer | null> {
    while (this.buffered < n) {
      if (!(await this.fill())) {
        if (this.buffered === 0) return null;
        throw new ArchiveFormatError(`The archive ends in the middle of ${what} (offset ${this.position}); it is truncated`);
      }
    }
    if (this.chunks[0].length >= n) return this.takeUpTo(n);
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const part = this.takeUpTo(left);
      parts.push(part);
      left -= part.length;
    }
    return Buffer.concat(parts, n);
  }

  /** Yields exactly `n` bytes as they arrive; throws if the stream ends first. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill())) {
        throw new ArchiveFormatError(`The archive ends in the middle of ${what} (offset ${this.position}); it is truncated`);
      }
      if (this.buffered === 0) continue;
      const part = this.takeUpTo(left);
      left -= part.length;
      yield part;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.stream(n, what)) {
      // discard
    }
  }

  /** Reads to the end, so whatever produces the chunks (gunzip) gets to check its trailer. */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.fill()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }
}
