/**
 * Feeds the entries of a .zip (read with yauzl, already a dependency) to the SafeWriter. Names are
 * decoded here rather than by yauzl so that an unsafe name reaches the SafeWriter and fails with
 * our message instead of yauzl's terse one.
 */
import yauzl from 'yauzl';
import type { Readable } from 'node:stream';
import { ArchiveFormatError } from './errors.js';
import type { SafeWriter } from './safe-writer.js';

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
/** Upper byte of "version made by": 3 is Unix, the only host whose external attributes carry a file type. */
const HOST_UNIX = 3;

export async function extractZipEntries(archive: string, writer: SafeWriter, onRead: (bytes: number) => void): Promise<void> {
  const zip = await yauzl.openPromise(archive, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
  let read = 0;
  try {
    for (;;) {
      const entry = await nextEntry(zip);
      if (!entry) break;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
      const unixMode = entry.versionMadeBy >> 8 === HOST_UNIX ? (entry.externalFileAttributes >>> 16) & S_IFMT : 0;
      if (name.endsWith('/') || unixMode === S_IFDIR) {
        await writer.directory(name);
      } else if (unixMode === S_IFLNK) {
        if (entry.uncompressedSize > 4096) throw new ArchiveFormatError(`${archive}: the link "${name}" has a ${entry.uncompressedSize}-byte target; the archive is damaged`);
        const target = Buffer.concat(await collect(await openStream(zip, entry))).toString('utf8');
        writer.symlink(name, target);
      } else {
        await writer.file(name, await openStream(zip, entry), entry.uncompressedSize);
      }
      read += entry.compressedSize + 46 + entry.fileNameLength; // approximate: data plus headers
      onRead(read);
    }
  } finally {
    zip.close();
  }
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const onEntry = (entry: yauzl.Entry) => done(() => resolve(entry));
    const onEnd = () => done(() => resolve(undefined));
    const onError = (err: Error) => done(() => reject(err));
    const done = (settle: () => void) => {
      zip.off('entry', onEntry).off('end', onEnd).off('error', onError);
      settle();
    };
    zip.on('entry', onEntry).on('end', onEnd).on('error', onError);
    zip.readEntry();
  });
}

function openStream(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Readable> {
  return new Promise((resolve, reject) => zip.openReadStream(entry, (err, stream) => (err ? reject(err) : resolve(stream))));
}

async function collect(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks;
}
