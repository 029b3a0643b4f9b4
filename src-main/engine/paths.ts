/**
 * Where the app keeps files it can fetch again (datasets, archives, pretrained weights).
 * Shared by the engine, the CLI and the Electron main process, so all three find the same cache.
 */
import os from 'node:os';
import path from 'node:path';

/**
 * `$FINETUNE_STUDIO_CACHE`, else `$XDG_CACHE_HOME/finetune-studio`, else `~/.cache/finetune-studio`.
 * The XDG fallback is used on every platform (like fastai's `~/.fastai`), so a user who moves the
 * cache once with the env var gets the same place from the CLI and the app.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.FINETUNE_STUDIO_CACHE?.trim();
  if (explicit) return path.resolve(expandHome(explicit));
  const xdg = env.XDG_CACHE_HOME?.trim();
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'finetune-studio');
  return path.join(os.homedir(), '.cache', 'finetune-studio');
}

/** `~/x` → `<home>/x`: shells do not expand `~` inside `VAR=~/x` or values typed into settings. */
export function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return path.join(os.homedir(), p.slice(2));
  return p;
}
