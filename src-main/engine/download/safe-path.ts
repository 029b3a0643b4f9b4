/**
 * The rules that keep an archive inside its target folder ("zip slip"). Archive names are split into
 * segments and checked without touching the disk; link targets are walked segment by segment so
 * that neither `..` nor another link can carry them out.
 */
import { UnsafeArchiveError } from './errors.js';

/**
 * Splits an entry name into path segments below the target folder. Throws UnsafeArchiveError for
 * absolute names, drive letters, UNC paths and any `..` segment. Backslashes count as separators,
 * because on Windows they are, and `a\..\..\x` must not get through there.
 * Returns [] for the archive's own root (`./`), which has nothing to create.
 */
export function entrySegments(name: string): string[] {
  if (name.includes('\0')) throw new UnsafeArchiveError(`its name contains a NUL byte`);
  const normalized = name.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[a-zA-Z]:/.test(normalized)) {
    throw new UnsafeArchiveError(`it is an absolute path`);
  }
  const segments = normalized.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new UnsafeArchiveError(`it contains ".."`);
  // On Windows, "name:stream" writes an alternate data stream and "CON" a device; neither is a dataset file.
  if (process.platform === 'win32' && segments.some((s) => /[<>:"|?*]/.test(s) || /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i.test(s))) {
    throw new UnsafeArchiveError(`its name is not a valid Windows file name`);
  }
  return segments;
}

/**
 * Where a symlink at `linkSegments` pointing at `target` lands, as segments below the root.
 * Throws when the target is absolute, climbs above the root, or passes through a link (`isLink`)
 * on the way: `a -> .` then `b -> a/..` would otherwise escape although each looks harmless.
 * The final segment may be a link; that link's own target is checked on its own.
 */
export function linkTargetSegments(linkSegments: string[], target: string, isLink: (segments: string[]) => boolean): string[] {
  if (target === '') throw new UnsafeArchiveError(`the link has an empty target`);
  const normalized = target.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[a-zA-Z]:/.test(normalized)) {
    throw new UnsafeArchiveError(`the link points at the absolute path "${target}"`);
  }
  const stack = linkSegments.slice(0, -1);
  const parts = normalized.split('/').filter((s) => s !== '' && s !== '.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === '..') {
      if (stack.length === 0) throw new UnsafeArchiveError(`the link points at "${target}", outside the target folder`);
      stack.pop();
      continue;
    }
    stack.push(part);
    if (i < parts.length - 1 && isLink(stack)) {
      throw new UnsafeArchiveError(`the link points at "${target}", through the link "${stack.join('/')}"`);
    }
  }
  return stack;
}
