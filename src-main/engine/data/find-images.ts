/**
 * fastai's `get_image_files`: every file under a folder whose extension is an image type,
 * recursively, skipping hidden files and folders. Unlike `os.walk`, the order is the sorted
 * relative path, so the same folder gives the same list (and so the same split) everywhere.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** The image extensions Python's `mimetypes` knows (what fastai's `image_extensions` is built from). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.avif', '.bmp', '.gif', '.heic', '.heif', '.ico', '.ief', '.jfif', '.jpe', '.jpeg', '.jpg', '.pbm', '.pgm',
  '.png', '.pnm', '.ppm', '.ras', '.rgb', '.svg', '.tif', '.tiff', '.webp', '.xbm', '.xpm', '.xwd',
]);

export function hasImageExtension(fileName: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(fileName).toLowerCase());
}

export interface FoundImages {
  root: string;
  /** Paths relative to `root`, with `/` separators, sorted. */
  files: string[];
  /** Folders that could not be listed, with the reason. */
  unreadable: { path: string; reason: string }[];
}

/** Compares by Unicode code point, like Python's `sorted` on strings. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done || cb.done) return ca.done === cb.done ? 0 : ca.done ? -1 : 1;
    const d = ca.value.codePointAt(0)! - cb.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

export async function findImageFiles(root: string): Promise<FoundImages> {
  const absRoot = path.resolve(root);
  let stat;
  try {
    stat = await fs.stat(absRoot);
  } catch (err) {
    throw new Error(`The folder ${absRoot} does not exist or cannot be read (${(err as NodeJS.ErrnoException).code}). Pick an existing folder of images.`);
  }
  if (!stat.isDirectory()) throw new Error(`${absRoot} is a file, not a folder. Pick the folder that holds the images.`);

  const files: string[] = [];
  const unreadable: FoundImages['unreadable'] = [];
  // Real paths already walked: symlinked folders are followed (as fastai does) but never twice.
  const visited = new Set<string>();

  async function walk(dir: string, rel: string): Promise<void> {
    let real: string;
    let entries;
    try {
      real = await fs.realpath(dir);
      if (visited.has(real)) return;
      visited.add(real);
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      unreadable.push({ path: dir, reason: `cannot list this folder (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
      return;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const abs = path.join(dir, entry.name);
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        // A dangling link with an image name is still listed: decoding it later reports it clearly.
        const target = await fs.stat(abs).catch(() => undefined);
        isDir = target?.isDirectory() ?? false;
        isFile = !isDir;
      }
      if (isDir) await walk(abs, relPath);
      else if (isFile && hasImageExtension(entry.name)) files.push(relPath);
    }
  }

  await walk(absRoot, '');
  files.sort(compareCodePoints);
  return { root: absRoot, files, unreadable };
}
