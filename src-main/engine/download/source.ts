/**
 * Where to fetch a file from when the internet is not the place: a mirror (a plain HTTP folder
 * holding the same files, e.g. `python -m http.server` on a class server) or local archives (a USB
 * stick, a shared drive). Usable for datasets and model weights alike.
 *
 * Precedence: explicit options (CLI flags, app settings) over environment variables
 * (`FINETUNE_ARCHIVE_DIR`, then `FINETUNE_MIRROR_URL`) over the original URL. A mirror or folder
 * is looked up by the file's name only (`<mirror>/oxford-iiit-pet.tgz`), so a flat folder of
 * archives serves every URL; fastai's archive names are unique.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expandHome } from '../paths.js';
import { archiveName } from './registry.js';

export interface SourceOptions {
  /** Base URL of a mirror; the file's name is appended. Overrides FINETUNE_MIRROR_URL. */
  mirrorBaseUrl?: string;
  /** A local archive file, or a folder holding it under its own name. Overrides FINETUNE_ARCHIVE_DIR. */
  localPath?: string;
  env?: NodeJS.ProcessEnv;
}

export type ResolvedSource =
  | { kind: 'local'; path: string; url: string; originalUrl: string }
  | { kind: 'mirror' | 'origin'; url: string; originalUrl: string };

export const MIRROR_ENV = 'FINETUNE_MIRROR_URL';
export const ARCHIVE_DIR_ENV = 'FINETUNE_ARCHIVE_DIR';

export function resolveSource(url: string, options: SourceOptions = {}): ResolvedSource {
  const env = options.env ?? process.env;
  const name = archiveName(url);

  if (options.localPath) {
    const local = path.resolve(expandHome(options.localPath));
    const file = isDirectory(local) ? path.join(local, name) : local;
    // An explicit choice must not silently fall back to the internet.
    if (!existsSync(file)) throw new Error(`The local archive ${file} does not exist (looked for ${name} for ${url}).`);
    return { kind: 'local', path: file, url: pathToFileURL(file).href, originalUrl: url };
  }
  const envDir = env[ARCHIVE_DIR_ENV]?.trim();
  if (envDir) {
    // A shared folder may hold only some archives; the rest come from the mirror or the origin.
    const file = path.join(path.resolve(expandHome(envDir)), name);
    if (existsSync(file)) return { kind: 'local', path: file, url: pathToFileURL(file).href, originalUrl: url };
  }
  const mirror = options.mirrorBaseUrl?.trim() || env[MIRROR_ENV]?.trim();
  if (mirror) return { kind: 'mirror', url: mirrorUrl(mirror, name), originalUrl: url };
  return { kind: 'origin', url, originalUrl: url };
}

export function mirrorUrl(base: string, name: string): string {
  let parsed: URL;
  try {
    parsed = new URL(base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new Error(`The mirror "${base}" is not a URL (expected something like http://server:8000/fastai/).`);
  }
  if (!['http:', 'https:', 'file:'].includes(parsed.protocol)) throw new Error(`The mirror ${base} must be an http:, https: or file: URL.`);
  return new URL(encodeURIComponent(name), parsed).href;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
