/**
 * Browser mode's host: the built wizard over HTTP and the API over a WebSocket, on 127.0.0.1 only,
 * for training on a remote or headless machine (reach it through an SSH tunnel) and for testing the
 * UI in a real browser.
 *
 * Security, since any local process and any web page in the user's browser can reach a loopback port:
 * - A random token (printed in the URL) is required. Opening `/?token=…` sets an HttpOnly,
 *   SameSite=Strict cookie and redirects to a URL without it, so the token leaves the address bar.
 *   Every other request (files, uploads, the WebSocket) needs that cookie; none is served without.
 * - The Host header must name the loopback address and this port (defeats DNS rebinding), and
 *   state-changing requests and the WebSocket must come from this origin (defeats cross-site use).
 * - Static files are served from the renderer folder only; uploads are size-limited and stored
 *   under random names; downloads are limited to files inside the runs folder.
 * - Every WebSocket request is validated (validate.ts) before anything runs.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { CONTENT_SECURITY_POLICY, LIMITS, type AppEvent, type WsServerFrame } from '../api/contract.js';
import { RENDERER_MIME_TYPES } from '../api/mime-types.js';

export interface ApiHandler {
  handle(channel: unknown, payload: unknown): Promise<unknown>;
  onEvent(listener: (e: AppEvent) => void): () => void;
}

export interface WebHostOptions {
  /** Built renderer (index.html and assets/). */
  rendererDir: string;
  /** Where uploaded test images are kept while the server runs. */
  uploadsDir: string;
  /** Files under this folder may be downloaded (exports). */
  downloadsRoot: string;
  port?: number;
  token?: string;
  /** The API, created once the upload resolver exists. */
  createApi(resolveUpload: (id: string) => string | undefined): ApiHandler;
}

export interface WebHost {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}


const BASE_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function sameToken(a: string | undefined, b: string): boolean {
  if (!a) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function send(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...BASE_HEADERS, 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
  res.end(body);
}

/** Keeps a file name readable but harmless: no separators, no leading dots, bounded length. */
export function safeFileName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  const cleaned = base.replace(/[^\p{L}\p{N}._ -]/gu, '_').replace(/^\.+/, '').slice(-120);
  return cleaned || 'image';
}

export async function startWebHost(options: WebHostOptions): Promise<WebHost> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const rendererDir = path.resolve(options.rendererDir);
  const downloadsRoot = path.resolve(options.downloadsRoot);
  await fs.access(path.join(rendererDir, 'index.html')).catch(() => {
    throw new Error(`The built app is missing: ${path.join(rendererDir, 'index.html')} does not exist. Run \`npm run build\` first.`);
  });
  await fs.mkdir(options.uploadsDir, { recursive: true });
  const uploads = new Map<string, string>();
  const api = options.createApi((id) => uploads.get(id));

  let port = 0;
  let cookieName = 'fs_session';
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
  const hostOk = (req: http.IncomingMessage) => allowedHosts().has(req.headers.host ?? '');
  /** Browsers send Origin on cross-origin requests, POSTs and WebSocket handshakes; it must be us. */
  const originOk = (req: http.IncomingMessage) => {
    const origin = req.headers.origin;
    return origin === undefined ? req.method === 'GET' || req.method === 'HEAD' : origin === `http://${req.headers.host}`;
  };
  const authed = (req: http.IncomingMessage) => sameToken(cookieValue(req.headers.cookie, cookieName), token);

  const refuse = (res: http.ServerResponse) =>
    send(res, 401, `<!doctype html><meta charset="utf-8"><title>Finetune Studio</title><p>This Finetune Studio server needs its access token. Open the full URL that <code>npm run serve</code> printed (it ends in <code>?token=…</code>).</p>`, 'text/html; charset=utf-8');

  async function serveStatic(res: http.ServerResponse, urlPath: string): Promise<void> {
    let rel: string;
    try {
      rel = decodeURIComponent(urlPath);
    } catch {
      return send(res, 400, 'Bad path');
    }
    if (rel.includes('\0') || rel.split(/[\\/]/).includes('..')) return send(res, 404, 'Not found');
    if (rel === '/' || rel === '') rel = '/index.html';
    const file = path.resolve(rendererDir, `.${path.posix.normalize(rel)}`);
    if (!file.startsWith(rendererDir + path.sep)) return send(res, 404, 'Not found');
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat?.isFile()) return send(res, 404, 'Not found');
    res.writeHead(200, {
      ...BASE_HEADERS,
      'Content-Type': RENDERER_MIME_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': stat.size,
      // Vite names assets by content hash; index.html must always be fresh.
      'Cache-Control': file.endsWith('index.html') ? 'no-store' : 'private, max-age=31536000, immutable',
    });
    createReadStream(file).pipe(res);
  }

  async function receiveUpload(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > LIMITS.uploadBytes) {
      // The body is not read: close the connection after answering so it cannot be reused half-read.
      return send(res, 413, JSON.stringify({ error: `The file is larger than ${LIMITS.uploadBytes / 1024 / 1024} MB; use a smaller image.` }), 'application/json', { Connection: 'close' });
    }
    let name: string;
    try {
      name = safeFileName(decodeURIComponent(String(req.headers['x-file-name'] ?? 'image')));
    } catch {
      name = 'image';
    }
    const id = randomUUID();
    const file = path.join(options.uploadsDir, `${id}-${name}`);
    let received = 0;
    const limiter = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        received += chunk.length;
        if (received > LIMITS.uploadBytes) throw Object.assign(new Error('too large'), { code: 'TOO_LARGE' });
        yield chunk;
      }
    };
    try {
      await pipeline(req, limiter, createWriteStream(file, { flags: 'wx' }));
    } catch (err) {
      await fs.rm(file, { force: true });
      const tooLarge = (err as { code?: string }).code === 'TOO_LARGE';
      return send(res, tooLarge ? 413 : 400, JSON.stringify({ error: tooLarge ? `The file is larger than ${LIMITS.uploadBytes / 1024 / 1024} MB.` : 'The upload was interrupted; try again.' }), 'application/json');
    }
    uploads.set(id, file);
    send(res, 200, JSON.stringify({ id, name, bytes: received }), 'application/json');
  }

  async function sendDownload(res: http.ServerResponse, requested: string | null): Promise<void> {
    const file = path.resolve(requested ?? '');
    if (!requested || !file.startsWith(downloadsRoot + path.sep)) return send(res, 403, 'Only files of training runs can be downloaded.');
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat?.isFile()) return send(res, 404, 'Not found');
    res.writeHead(200, {
      ...BASE_HEADERS,
      'Content-Type': 'application/octet-stream',
      'Content-Length': stat.size,
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(path.basename(file))}`,
      'Cache-Control': 'no-store',
    });
    createReadStream(file).pipe(res);
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      if (!hostOk(req)) return send(res, 421, 'This server answers only on its loopback address.');
      const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
      const queryToken = url.searchParams.get('token');
      if (queryToken !== null && req.method === 'GET') {
        if (!sameToken(queryToken, token)) return refuse(res);
        url.searchParams.delete('token');
        const location = `${url.pathname}${url.search}`;
        res.writeHead(303, { ...BASE_HEADERS, Location: location, 'Set-Cookie': `${cookieName}=${token}; HttpOnly; SameSite=Strict; Path=/`, 'Cache-Control': 'no-store' });
        return res.end();
      }
      if (!authed(req)) return refuse(res);
      if (!originOk(req)) return send(res, 403, 'Cross-origin requests are refused.');
      if (req.method === 'POST' && url.pathname === '/api/upload') return receiveUpload(req, res);
      if (req.method === 'GET' && url.pathname === '/api/download') return sendDownload(res, url.searchParams.get('path'));
      if (req.method === 'GET' || req.method === 'HEAD') return serveStatic(res, url.pathname);
      send(res, 405, 'Method not allowed');
    })().catch((err: Error) => {
      if (!res.headersSent) send(res, 500, `Internal error: ${err.message}`);
      else res.destroy();
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.wsFrameBytes });
  const sockets = new Set<WebSocket>();
  const unsubscribe = api.onEvent((event) => {
    const frame = JSON.stringify({ event } satisfies WsServerFrame);
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(frame);
  });

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/ws' || !hostOk(req) || !authed(req) || req.headers.origin !== `http://${req.headers.host}`) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', (data, isBinary) => {
        let frame: { id?: unknown; channel?: unknown; payload?: unknown };
        try {
          if (isBinary) throw new Error('binary');
          frame = JSON.parse(String(data));
        } catch {
          ws.send(JSON.stringify({ id: -1, ok: false, error: { name: 'PayloadError', message: 'Invalid request: not a JSON text frame.' } }));
          return;
        }
        const id = typeof frame?.id === 'number' && Number.isSafeInteger(frame.id) ? frame.id : -1;
        if (id < 0) {
          ws.send(JSON.stringify({ id: -1, ok: false, error: { name: 'PayloadError', message: 'Invalid request: id must be a whole number.' } }));
          return;
        }
        api.handle(frame.channel, frame.payload).then(
          (result) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ id, ok: true, result } satisfies WsServerFrame)),
          (err: Error) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ id, ok: false, error: { name: err.name ?? 'Error', message: err.message ?? String(err) } } satisfies WsServerFrame)),
        );
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  // Per-port cookie names: two servers on one machine do not overwrite each other's session.
  cookieName = `fs_session_${port}`;

  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    async close() {
      unsubscribe();
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(options.uploadsDir, { recursive: true, force: true });
    },
  };
}
