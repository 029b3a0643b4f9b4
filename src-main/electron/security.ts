/**
 * The Electron window's security rules as plain functions (tested without Electron): the app
 * serves its UI from `app://studio/`, may navigate only there, and the protocol handler maps
 * URLs to files inside the built renderer folder and nowhere else.
 */
import path from 'node:path';

export const APP_SCHEME = 'app';
export const APP_HOST = 'studio';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_URL = `${APP_ORIGIN}/index.html`;

/** In-app navigation only; everything else (links, drops of URLs, redirects) is refused. */
export function isAllowedNavigation(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/** External links a person clicked may open in their browser: web pages only, never file: or custom schemes. */
export function isSafeExternalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

/** The file for an `app://studio/…` request, or undefined when it would leave the renderer folder. */
export function appUrlToFile(url: string, rendererDir: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return undefined;
  let rel: string;
  try {
    rel = decodeURIComponent(u.pathname);
  } catch {
    return undefined;
  }
  // Decoded `..` segments (from %2e%2e or %2f) are refused outright rather than normalised away.
  if (rel.includes('\0') || rel.split(/[\\/]/).includes('..')) return undefined;
  if (rel === '/' || rel === '') rel = '/index.html';
  const root = path.resolve(rendererDir);
  const file = path.resolve(root, `.${path.posix.normalize(rel)}`);
  return file.startsWith(root + path.sep) ? file : undefined;
}

