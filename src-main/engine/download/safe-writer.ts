/**
 * Writes archive entries below one root folder, refusing anything that would land outside it.
 * Format readers (tar, zip) hand it entries; it owns every rule about the filesystem:
 *
 * - names go through `entrySegments` (no absolute paths, no `..`);
 * - nothing is written through a symlink from the archive: symlinks are only created at the end,
 *   once all their targets can be checked against the complete set of links (what GNU tar does too);
 * - hard links may only point at regular files extracted earlier from the same archive.
 *
 * File modes from the archive are ignored: datasets need no executable bits, and a read-only folder
 * inside the cache would make it undeletable for the user.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, link, lstat, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AbortError, ArchiveFormatError, UnsafeArchiveError } from './errors.js';
import { entrySegments, linkTargetSegments } from './safe-path.js';

/** Files up to this size are buffered and written in one call: faster than a stream per photo. */
const SMALL_FILE_BYTES = 4 << 20;

export class SafeWriter {
  private readonly madeDirs = new Set<string>();
  private readonly files = new Set<string>();
  /** Symlinks to create in finish(): key → {segments, target}. */
  private readonly links = new Map<string, { segments: string[]; target: string; name: string }>();
  entries = 0;
  bytesWritten = 0;
  readonly warnings: string[] = [];

  constructor(
    readonly root: string,
    /** Names the archive in error messages. */
    private readonly archiveLabel: string,
    private readonly signal?: AbortSignal,
  ) {}

  async directory(name: string): Promise<void> {
    const segments = this.checked(name);
    if (segments.length === 0) return;
    this.links.delete(key(segments));
    await this.ensureDir(segments);
    this.entries++;
  }

  async file(name: string, body: AsyncIterable<Buffer>, size: number): Promise<void> {
    const segments = this.checked(name);
    if (segments.length === 0) throw new ArchiveFormatError(`${this.archiveLabel} has a file entry without a name`);
    const k = key(segments);
    const abs = this.abs(segments);
    await this.ensureDir(segments.slice(0, -1));
    this.links.delete(k);
    // A repeated name replaces the earlier entry; unlinking first keeps a hard link to it unchanged.
    if (this.files.has(k)) await rm(abs, { force: true });
    if (size <= SMALL_FILE_BYTES) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      this.throwIfAborted();
      await writeFile(abs, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    } else {
      const signal = this.signal;
      const guarded = async function* () {
        for await (const chunk of body) {
          if (signal?.aborted) throw new AbortError('Extraction cancelled');
          yield chunk;
        }
      };
      await pipeline(Readable.from(guarded()), createWriteStream(abs));
    }
    this.files.add(k);
    this.bytesWritten += size;
    this.entries++;
  }

  /** Recorded now, created in finish(), after every other entry is on disk. */
  symlink(name: string, target: string): void {
    const segments = this.checked(name);
    if (segments.length === 0) throw this.unsafe(name, 'a link cannot replace the target folder itself');
    this.links.set(key(segments), { segments, target, name });
    this.files.delete(key(segments)); // a later hard link must not pick up the file this link replaces
    this.entries++;
  }

  async hardlink(name: string, target: string): Promise<void> {
    const segments = this.checked(name);
    let targetSegments: string[];
    try {
      targetSegments = entrySegments(target);
    } catch (err) {
      throw this.unsafe(name, `its hard link target "${target}": ${(err as Error).message}`);
    }
    this.guardParents(targetSegments, name);
    const targetKey = key(targetSegments);
    if (!this.files.has(targetKey)) {
      throw this.unsafe(name, `it is a hard link to "${target}", which is not a file extracted earlier from this archive`);
    }
    await this.ensureDir(segments.slice(0, -1));
    const abs = this.abs(segments);
    await rm(abs, { force: true });
    try {
      await link(this.abs(targetSegments), abs);
    } catch {
      await copyFile(this.abs(targetSegments), abs); // filesystems without hard links (FAT, some network shares)
    }
    this.files.add(key(segments));
    this.entries++;
  }

  /** Checks and creates the recorded symlinks. */
  async finish(): Promise<void> {
    const isLink = (segments: string[]) => this.links.has(key(segments));
    for (const { segments, target, name } of this.links.values()) {
      try {
        linkTargetSegments(segments, target, isLink);
      } catch (err) {
        throw this.unsafe(name, (err as Error).message);
      }
    }
    for (const { segments, target, name } of this.links.values()) {
      this.throwIfAborted();
      const abs = this.abs(segments);
      await this.ensureDir(segments.slice(0, -1));
      const existing = await lstat(abs).catch(() => undefined);
      if (existing?.isDirectory()) throw new ArchiveFormatError(`${this.archiveLabel}: "${name}" is both a folder and a link`);
      if (existing) await rm(abs, { force: true });
      try {
        await symlink(target.replace(/\\/g, '/'), abs);
      } catch (err) {
        // Windows without Developer Mode cannot create symlinks; image datasets do not need them.
        if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
        this.warnings.push(`Skipped the link "${name}" -> "${target}": this system does not allow creating symlinks`);
      }
    }
  }

  private checked(name: string): string[] {
    let segments: string[];
    try {
      segments = entrySegments(name);
    } catch (err) {
      throw this.unsafe(name, (err as Error).message);
    }
    this.guardParents(segments, name);
    this.throwIfAborted();
    return segments;
  }

  /** Refuses entries below a symlink from the archive: writing through it could land anywhere. */
  private guardParents(segments: string[], name: string): void {
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i);
      if (this.links.has(key(parent))) throw this.unsafe(name, `it would be written through the link "${parent.join('/')}"`);
    }
  }

  private async ensureDir(segments: string[]): Promise<void> {
    const k = key(segments);
    if (segments.length === 0 || this.madeDirs.has(k)) return;
    await mkdir(this.abs(segments), { recursive: true });
    for (let i = 1; i <= segments.length; i++) this.madeDirs.add(key(segments.slice(0, i)));
  }

  private abs(segments: string[]): string {
    return path.join(this.root, ...segments);
  }

  private unsafe(name: string, why: string): UnsafeArchiveError {
    return new UnsafeArchiveError(
      `Refusing to extract ${this.archiveLabel}: its entry "${name}" could write outside the target folder (${why}). ` +
        `Nothing from it was kept. The archive is damaged or malicious; delete it and get it from a trusted source.`,
    );
  }

  private throwIfAborted(): void {
    if (this.signal?.aborted) throw new AbortError(`Extraction of ${this.archiveLabel} cancelled`);
  }
}

function key(segments: string[]): string {
  return segments.join('/');
}
