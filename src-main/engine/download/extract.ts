/**
 * Extracts a .tgz/.tar.gz/.tar or .zip into `dest`, streamed to disk with progress. Everything
 * goes into a temporary sibling folder first, which is renamed to `dest` only once complete, so
 * `dest` existing means a whole dataset: a crash or cancel leaves only `.<name>.partial-*`.
 *
 * Like fastai's `untar_dir`, an archive holding a single top-level folder (oxford-iiit-pet.tgz holds
 * `oxford-iiit-pet/`) is unwrapped: that folder becomes `dest`.
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AbortError, ArchiveFormatError, isAbortError } from './errors.js';
import { RateMeter } from './rate.js';
import { SafeWriter } from './safe-writer.js';
import { readTar } from './tar.js';
import { extractZipEntries } from './zip.js';

export type ArchiveFormat = 'tar.gz' | 'tar' | 'zip';

export interface ExtractProgress {
  /** Bytes of the archive file consumed so far (compressed), against `archiveTotalBytes`: drives the bar and ETA. */
  archiveBytesRead: number;
  archiveTotalBytes: number;
  entries: number;
  /** Uncompressed bytes written. */
  bytesWritten: number;
  bytesPerSecond: number;
  etaSeconds?: number;
}

export interface ExtractOptions {
  signal?: AbortSignal;
  onProgress?: (p: ExtractProgress) => void;
  /** When the archive holds one folder at the top, make that folder `dest` (default true, as fastai does). */
  unwrapSingleFolder?: boolean;
}

export interface ExtractResult {
  path: string;
  entries: number;
  bytesWritten: number;
  /** Things skipped without failing (symlinks where the OS forbids them). */
  warnings: string[];
}

/** Folder names left by macOS zips next to the real content; not a second top-level folder. */
const IGNORED_TOP_LEVEL = new Set(['__MACOSX', '.DS_Store']);

/** Decides the format from the first bytes, not the name: a mirror may serve any name. */
export async function detectArchiveFormat(file: string): Promise<ArchiveFormat> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip'; // PK\3\4
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'zip'; // PK\5\6: an empty zip
    if (bytesRead === 512 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  } finally {
    await handle.close();
  }
  throw new ArchiveFormatError(`${file} is not a .tgz, .tar or .zip archive (unrecognised first bytes)`);
}

/** The prefix of the temporary folders `extractArchive(…, dest)` uses, so callers holding the dataset lock can clear crashed leftovers. */
export function partialPrefix(dest: string): string {
  return `.${path.basename(dest)}.partial-`;
}

export async function removeStalePartials(dest: string): Promise<void> {
  const parent = path.dirname(dest);
  const prefix = partialPrefix(dest);
  const names = await readdir(parent).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(path.join(parent, n), { recursive: true, force: true })));
}

export async function extractArchive(archive: string, dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  dest = path.resolve(dest);
  if (await exists(dest)) throw new Error(`Cannot extract ${archive} to ${dest}: that folder already exists. Delete it first.`);
  const format = await detectArchiveFormat(archive);
  const total = (await stat(archive)).size;
  await mkdir(path.dirname(dest), { recursive: true });
  const temp = await mkdtemp(path.join(path.dirname(dest), partialPrefix(dest)));
  const writer = new SafeWriter(temp, archive, options.signal);
  const progress = new ProgressReporter(total, writer, options.onProgress);
  progress.update(0, true); // lets a UI show the phase before the first MiB is read
  try {
    try {
      if (format === 'zip') await extractZipEntries(archive, writer, (read) => progress.update(read));
      else await extractTarEntries(archive, format === 'tar.gz', writer, (read) => progress.update(read), options.signal);
      await writer.finish();
    } catch (err) {
      if (options.signal?.aborted && !isAbortError(err)) throw new AbortError(`Extraction of ${archive} cancelled`);
      throw describeFormatError(err, archive);
    }
    progress.update(total, true);

    let source = temp;
    if (options.unwrapSingleFolder ?? true) {
      const top = (await readdir(temp, { withFileTypes: true })).filter((d) => !IGNORED_TOP_LEVEL.has(d.name));
      if (top.length === 1 && top[0].isDirectory()) source = path.join(temp, top[0].name);
    }
    await renameWithRetry(source, dest);
    return { path: dest, entries: writer.entries, bytesWritten: writer.bytesWritten, warnings: writer.warnings };
  } finally {
    // After success this removes only the emptied wrapper (or nothing); after a failure, everything extracted.
    await rm(temp, { recursive: true, force: true });
  }
}

async function extractTarEntries(
  archive: string,
  gzipped: boolean,
  writer: SafeWriter,
  onRead: (bytes: number) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  let read = 0;
  const file = createReadStream(archive, { highWaterMark: 1 << 20 });
  const counted = async function* () {
    for await (const chunk of file) {
      read += (chunk as Buffer).length;
      onRead(read);
      yield chunk as Buffer;
    }
  };
  const gunzip = gzipped ? createGunzip({ chunkSize: 256 << 10 }) : undefined;
  // A truncated or corrupt gzip fails the gunzip iterator we read from; this promise must only not go unhandled.
  const gunzipping = gunzip ? pipeline(counted(), gunzip).catch(() => {}) : undefined;
  const source: AsyncIterable<Buffer> = gunzip ?? counted();
  try {
    for await (const { entry, body } of readTar(source)) {
      if (signal?.aborted) throw new AbortError(`Extraction of ${archive} cancelled`);
      switch (entry.type) {
        case 'directory':
          await writer.directory(entry.path);
          break;
        case 'file':
          await writer.file(entry.path, body, entry.size);
          break;
        case 'symlink':
          writer.symlink(entry.path, entry.linkTarget ?? '');
          break;
        case 'hardlink':
          await writer.hardlink(entry.path, entry.linkTarget ?? '');
          break;
        default:
          // Devices, FIFOs, sparse or volume headers: nothing a dataset needs, and devices are unsafe.
          writer.warnings.push(`Skipped "${entry.path}" (tar type '${entry.typeflag}')`);
      }
    }
    await gunzipping;
  } finally {
    file.destroy();
    gunzip?.destroy();
  }
}

function describeFormatError(err: unknown, archive: string): unknown {
  const code = (err as { code?: string }).code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    const reason = (err as Error).message;
    return new ArchiveFormatError(
      `${archive} is damaged or incomplete (gzip: ${reason}); delete it and download it again`,
      { cause: err },
    );
  }
  return err;
}

class ProgressReporter {
  private readonly meter = new RateMeter();
  private last = -Infinity;
  constructor(
    private readonly total: number,
    private readonly writer: SafeWriter,
    private readonly onProgress?: (p: ExtractProgress) => void,
  ) {}

  update(read: number, force = false): void {
    if (!this.onProgress) return;
    this.meter.add(read);
    const now = performance.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    this.onProgress({
      archiveBytesRead: read,
      archiveTotalBytes: this.total,
      entries: this.writer.entries,
      bytesWritten: this.writer.bytesWritten,
      bytesPerSecond: this.meter.bytesPerSecond(),
      etaSeconds: this.meter.etaSeconds(this.total - read),
    });
  }
}

/** Windows virus scanners and indexers briefly hold new folders open, failing a rename with EPERM/EBUSY. */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (process.platform !== 'win32' || attempt >= 10 || (code !== 'EPERM' && code !== 'EBUSY' && code !== 'EACCES')) throw err;
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
