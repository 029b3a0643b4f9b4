/**
 * A real HTTP server on 127.0.0.1 for the download tests, with the misbehaviours the downloader
 * must survive: connections cut mid-body, slow bodies, stalls, 5xx, redirects, servers that ignore
 * Range. It logs every request and the body bytes it sent, so tests can prove what was (not) re-fetched.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

export interface FileRoute {
  body: Buffer;
  /** For the first `cutTimes` (default 1) requests, end the connection after this many body bytes. */
  cutAfter?: number;
  cutTimes?: number;
  /** Answer with this status (e.g. 500) for the first `failTimes` requests (Infinity: always). */
  failStatus?: number;
  failTimes?: number;
  /** Send headers, then nothing, for the first `stallTimes` requests. */
  stallTimes?: number;
  /** Serve 200 with the whole body even when a Range is asked for. */
  ignoreRange?: boolean;
  /** Send the body in chunks of this size with `chunkDelayMs` between them. */
  chunkSize?: number;
  chunkDelayMs?: number;
  /** Serve these bytes instead of `body` for the first `altTimes` requests (a corrupt copy). */
  altBody?: Buffer;
  altTimes?: number;
}
export type Route = FileRoute | { redirect: string; status?: number } | { status: number };

export interface RequestLog {
  path: string;
  range?: string;
  status: number;
  /** Body bytes written to the socket. */
  bytesSent: number;
}

export interface TestServer {
  base: string;
  url(p: string): string;
  requests: RequestLog[];
  /** Requests (not redirects) made for one path. */
  requestsFor(p: string): RequestLog[];
  bytesSentFor(p: string): number;
  routes: Map<string, Route>;
  close(): Promise<void>;
}

export async function startServer(routes: Record<string, Route> = {}): Promise<TestServer> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const requests: RequestLog[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    const n = (counts.get(p) ?? 0) + 1;
    counts.set(p, n);
    const log: RequestLog = { path: p, range: req.headers.range, status: 0, bytesSent: 0 };
    requests.push(log);
    const route = table.get(p);
    const reply = (status: number, headers: http.OutgoingHttpHeaders = {}, body?: Buffer) => {
      log.status = status;
      res.writeHead(status, headers);
      if (body) log.bytesSent += body.length;
      res.end(body);
    };
    if (!route) return reply(404, { 'content-type': 'text/plain' }, Buffer.from('not found'));
    if ('redirect' in route) return reply(route.status ?? 302, { location: route.redirect });
    if (!('body' in route)) return reply(route.status);

    if (route.failStatus && n <= (route.failTimes ?? Infinity)) return reply(route.failStatus, {}, Buffer.from('failing on purpose'));
    const full = route.altBody && n <= (route.altTimes ?? 1) ? route.altBody : route.body;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !route.ignoreRange) {
      start = Number(m[1]);
      if (start >= full.length) return reply(416, { 'content-range': `bytes */${full.length}` });
    }
    const slice = full.subarray(start);
    const status = start > 0 ? 206 : 200;
    log.status = status;
    res.writeHead(status, {
      'content-length': slice.length,
      'accept-ranges': 'bytes',
      etag: '"v1"',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${full.length - 1}/${full.length}` } : {}),
    });
    if (route.stallTimes && n <= route.stallTimes) {
      res.flushHeaders();
      return; // headers only; the client's idle timeout must fire
    }
    const cut = route.cutAfter !== undefined && n <= (route.cutTimes ?? 1) ? route.cutAfter : undefined;
    const toSend = cut === undefined ? slice : slice.subarray(0, cut);
    const chunkSize = route.chunkSize ?? toSend.length;
    let offset = 0;
    const pump = () => {
      if (res.destroyed) return;
      if (offset >= toSend.length) {
        // A cut: half-close after the bytes are flushed, so the client gets exactly `cut` bytes and then EOF short of Content-Length.
        if (cut !== undefined) res.socket?.end();
        else res.end();
        return;
      }
      const chunk = toSend.subarray(offset, offset + Math.max(1, chunkSize));
      offset += chunk.length;
      log.bytesSent += chunk.length;
      res.write(chunk, () => {
        if (route.chunkDelayMs) setTimeout(pump, route.chunkDelayMs);
        else pump();
      });
    };
    pump();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    url: (p) => `${base}${p}`,
    requests,
    requestsFor: (p) => requests.filter((r) => r.path === p),
    bytesSentFor: (p) => requests.filter((r) => r.path === p).reduce((sum, r) => sum + r.bytesSent, 0),
    routes: table,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
