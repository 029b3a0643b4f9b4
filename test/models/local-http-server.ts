/**
 * A tiny HTTP server on 127.0.0.1 that serves chosen files under chosen URL paths, so the real
 * download code can be tested without the internet. Supports `Range: bytes=N-` (resume), counts
 * requests per path, and can serve a file cut short to imitate a broken upstream.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Route {
  file: string;
  /** Serve only this many bytes, announced as the whole file. */
  truncateTo?: number;
}

export interface LocalServer {
  baseUrl: string;
  /** Requests that reached each path (including 404s). */
  hits: Map<string, number>;
  totalHits(): number;
  close(): Promise<void>;
}

export async function startLocalServer(routes: Record<string, Route>): Promise<LocalServer> {
  const hits = new Map<string, number>();
  const server = http.createServer(async (req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    hits.set(urlPath, (hits.get(urlPath) ?? 0) + 1);
    const route = routes[urlPath];
    const size = route && (await stat(route.file).catch(() => undefined))?.size;
    if (!route || size === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no ${urlPath}`);
      return;
    }
    const total = route.truncateTo ?? size;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= total && total > 0) {
      res.writeHead(416, { 'content-range': `bytes */${total}` }).end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = { 'content-length': total - start, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (range) headers['content-range'] = `bytes ${start}-${total - 1}/${total}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || total === 0) {
      res.end();
      return;
    }
    createReadStream(route.file, { start, end: total - 1 }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    hits,
    totalHits: () => [...hits.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
