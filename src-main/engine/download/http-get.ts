/**
 * One HTTP(S) GET that follows redirects and turns HTTP and socket failures into DownloadErrors
 * that say whether a retry can help. The body is left unread for the caller to stream.
 */
import http from 'node:http';
import https from 'node:https';
import { AbortError, DownloadError } from './errors.js';

export interface OpenUrlOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** No bytes for this long (connecting or mid-body) counts as a transient failure. */
  idleTimeoutMs?: number;
  maxRedirects?: number;
}

export interface OpenedUrl {
  response: http.IncomingMessage;
  /** The URL that answered, after redirects. */
  url: string;
  status: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
export const USER_AGENT = 'finetune-studio/0.1 (node)';

/**
 * Resolves with a 200, 206 or 416 response (the caller handles ranges); rejects with a
 * DownloadError for everything else, after following up to `maxRedirects` redirects.
 */
export async function openUrl(url: string, options: OpenUrlOptions = {}): Promise<OpenedUrl> {
  const maxRedirects = options.maxRedirects ?? 10;
  let current = url;
  for (let hop = 0; ; hop++) {
    const { response, status } = await requestOnce(current, options);
    if (REDIRECTS.has(status)) {
      response.resume(); // discard the redirect's body so the socket can be reused
      const location = response.headers.location;
      if (!location) throw new DownloadError(`HTTP ${status} from ${current} without a Location header`, false, { status, url: current });
      if (hop >= maxRedirects) throw new DownloadError(`More than ${maxRedirects} redirects starting at ${url}`, false, { url });
      const next = new URL(location, current);
      // A redirect from https to http would let anyone on the path swap the file; refuse it.
      if (new URL(current).protocol === 'https:' && next.protocol !== 'https:') {
        throw new DownloadError(`Refusing the redirect from ${current} to insecure ${next.href}`, false, { url: current });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new DownloadError(`Redirect from ${current} to unsupported ${next.href}`, false, { url: current });
      }
      current = next.href;
      continue;
    }
    if (status === 200 || status === 206 || status === 416) return { response, url: current, status };
    response.resume();
    throw httpStatusError(status, response.statusMessage, current, response.headers['retry-after']);
  }
}

export function httpStatusError(status: number, statusText: string | undefined, url: string, retryAfter?: string): DownloadError {
  // 408 Request Timeout and 429 Too Many Requests are the 4xx that mean "later", not "never".
  const transient = status >= 500 || status === 408 || status === 429;
  const hint =
    status === 404 || status === 410
      ? ' The file is not at that address; if you set a mirror (FINETUNE_MIRROR_URL), check that it holds this file.'
      : status === 401 || status === 403
        ? ' The server refused access; a mirror or proxy may need configuring.'
        : '';
  return new DownloadError(`HTTP ${status}${statusText ? ` ${statusText}` : ''} for ${url}.${hint}`, transient, {
    status,
    url,
    retryAfterMs: parseRetryAfter(retryAfter),
  });
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

function requestOnce(url: string, options: OpenUrlOptions): Promise<{ response: http.IncomingMessage; status: number }> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!client) return reject(new DownloadError(`Unsupported URL ${url}: only http: and https: can be downloaded`, false, { url }));
    const signal = options.signal;
    if (signal?.aborted) return reject(new AbortError(`Download of ${url} cancelled`));

    const request = client.get(parsed, {
      headers: {
        'user-agent': USER_AGENT,
        // Byte offsets for Range must be offsets into the file itself, not into a compressed transfer.
        'accept-encoding': 'identity',
        ...options.headers,
      },
    });
    const onAbort = () => request.destroy(new AbortError(`Download of ${url} cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => signal?.removeEventListener('abort', onAbort);

    const idle = options.idleTimeoutMs ?? 30_000;
    // Socket-level: fires while connecting and whenever the body stalls, for the life of the request.
    request.setTimeout(idle, () => {
      request.destroy(new DownloadError(`No data from ${parsed.host} for ${Math.round(idle / 1000)} s`, true, { url }));
    });
    request.on('response', (response) => {
      // The abort listener stays until the body ends or fails, so a cancel mid-body still destroys it.
      response.once('close', cleanup);
      resolve({ response, status: response.statusCode ?? 0 });
    });
    request.on('error', (err) => {
      cleanup();
      reject(err);
    });
  });
}
