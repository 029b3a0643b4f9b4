/**
 * Where the app keeps its runs. Both hosts (the desktop app and browser mode) use the same folder,
 * so a model trained from a browser on a GPU box shows up in the desktop app on that box and the
 * other way round: Electron's userData folder for productName "Finetune Studio", computed here the
 * way Electron computes it, or `FINETUNE_STUDIO_DATA`. Runs are not cache: deleting the cache
 * folder (decoded images, downloads) never deletes a trained model.
 */
import os from 'node:os';
import path from 'node:path';
import { expandHome } from '../engine/paths.js';

export const PRODUCT_NAME = 'Finetune Studio';
export const DATA_ENV = 'FINETUNE_STUDIO_DATA';

/** Electron's `app.getPath('appData')` on each platform. */
function appDataDir(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'win32') return env.APPDATA ?? path.join(os.homedir(), 'AppData', 'Roaming');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Application Support');
  const xdg = env.XDG_CONFIG_HOME?.trim();
  return xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[DATA_ENV]?.trim();
  if (explicit) return path.resolve(expandHome(explicit));
  return path.join(appDataDir(env), PRODUCT_NAME);
}

export function runsDirIn(dataDir: string): string {
  return path.join(dataDir, 'runs');
}
