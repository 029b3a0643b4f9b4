/**
 * Browser mode's HTTP/WebSocket host, with a stub API (no engine): the token and cookie, the
 * loopback Host check, cross-origin refusal, static files confined to the renderer folder,
 * uploads, downloads confined to the runs folder, and WebSocket framing.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { AppEvent } from '../../src-main/api/contract.js';
import { validateRequest } from '../../src-main/api/validate.js';
import { safeFileName, startWebHost, type WebHost } from '../../src-main/web/server.js';
import { makeTempDir, writeFiles } from '../helpers/images.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, opts: { path?: string; method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: false, path: opts.path ?? '/', method: opts.method ?? 'GET', headers: { host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('browser-mode web host', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let host: WebHost;
  let cookie: string;
  let uploaded: (id: string) => string | undefined;
  const listeners = new Set<(e: AppEvent) => void>();
  const calls: { channel: unknown; payload: unknown }[] = [];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('fs-web-'));
    await writeFiles(dir, {
      'renderer/index.html': '<!doctype html><title>app</title>',
      'renderer/assets/app.js': 'console.log(1)',
      'secret.txt': 'not for the browser',
      'runs/r1/export-tfjs/model.json': '{"ok":true}',
    });
    host = await startWebHost({
      rendererDir: path.join(dir, 'renderer'),
      uploadsDir: path.join(dir, 'uploads'),
      downloadsRoot: path.join(dir, 'runs'),
      createApi: (resolveUpload) => {
        uploaded = resolveUpload;
        return {
          // The real dispatcher validates; so does this stub, so framing errors can be seen.
          handle: async (channel, payload) => {
            calls.push({ channel, payload });
            const r = validateRequest(channel, payload);
            return { echo: r.channel };
          },
          onEvent: (l) => {
            listeners.add(l);
            return () => listeners.delete(l);
          },
        };
      },
    });
    const login = await request(host.port, { path: `/?token=${host.token}` });
    cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0];
  });
  after(async () => {
    await host.close();
    await cleanup();
  });

  test('the printed URL is loopback with a long random token', () => {
    assert.match(host.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/);
  });

  test('nothing is served without the token; the token becomes an HttpOnly SameSite cookie', async () => {
    for (const p of ['/', '/index.html', '/assets/app.js', '/?token=wrong']) {
      const r = await request(host.port, { path: p });
      assert.equal(r.status, 401, p);
      assert.match(r.body, /needs its access token/);
    }
    const login = await request(host.port, { path: `/?token=${host.token}` });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/', 'the token leaves the address bar');
    assert.match(String(login.headers['set-cookie']), /^fs_session_\d+=[\w-]+; HttpOnly; SameSite=Strict; Path=\/$/);
    const page = await request(host.port, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>app<\/title>/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
  });

  test('a foreign Host header is refused even with the cookie (DNS rebinding)', async () => {
    const r = await request(host.port, { headers: { cookie, host: `evil.example:${host.port}` } });
    assert.equal(r.status, 421);
  });

  test('static files never leave the renderer folder', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/%00']) {
      const r = await request(host.port, { path: p, headers: { cookie } });
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(r.body, /not for the browser/);
    }
  });

  test('uploads need our origin, are size-checked, and resolve to a stored file', async () => {
    const origin = `http://127.0.0.1:${host.port}`;
    const cross = await request(host.port, { method: 'POST', path: '/api/upload', headers: { cookie, origin: 'http://evil.example' }, body: 'x' });
    assert.equal(cross.status, 403);
    const big = await request(host.port, { method: 'POST', path: '/api/upload', headers: { cookie, origin, 'content-length': String(60 * 1024 * 1024) } }).catch(() => ({ status: 413 }) as Reply);
    assert.equal(big.status, 413);
    const ok = await request(host.port, { method: 'POST', path: '/api/upload', headers: { cookie, origin, 'x-file-name': encodeURIComponent('../../my cat.jpg') }, body: 'JPEGDATA' });
    assert.equal(ok.status, 200, ok.body);
    const { id, name } = JSON.parse(ok.body);
    assert.equal(name, 'my cat.jpg');
    const file = uploaded(id)!;
    assert.equal(path.dirname(file), path.join(dir, 'uploads'));
    assert.equal(await readFile(file, 'utf8'), 'JPEGDATA');
    assert.equal(uploaded('00000000-0000-0000-0000-000000000000'), undefined);
  });

  test('downloads are limited to the runs folder', async () => {
    const inside = await request(host.port, { path: `/api/download?path=${encodeURIComponent(path.join(dir, 'runs/r1/export-tfjs/model.json'))}`, headers: { cookie } });
    assert.equal(inside.status, 200);
    assert.equal(inside.body, '{"ok":true}');
    assert.match(String(inside.headers['content-disposition']), /attachment; filename\*=UTF-8''model\.json/);
    for (const p of [path.join(dir, 'secret.txt'), path.join(dir, 'runs', '..', 'secret.txt'), '/etc/passwd']) {
      const r = await request(host.port, { path: `/api/download?path=${encodeURIComponent(p)}`, headers: { cookie } });
      assert.equal(r.status, 403, p);
    }
  });

  function connect(headers: Record<string, string>): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${host.port}/ws`, { headers });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  test('the WebSocket needs the cookie and our origin', async () => {
    const origin = `http://127.0.0.1:${host.port}`;
    await assert.rejects(connect({ origin }), /403|Unexpected server response/);
    await assert.rejects(connect({ cookie, origin: 'http://evil.example' }), /403|Unexpected server response/);
    await assert.rejects(connect({ cookie }), /403|Unexpected server response/);
    const ws = await connect({ cookie, origin });
    ws.close();
  });

  test('WebSocket requests are answered by id; bad frames get a PayloadError; events reach every client', async () => {
    const ws = await connect({ cookie, origin: `http://127.0.0.1:${host.port}` });
    const frames: unknown[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d))));
    const next = async (n: number) => {
      for (let i = 0; i < 100 && frames.length < n; i++) await new Promise((r) => setTimeout(r, 20));
      return frames[n - 1] as Record<string, unknown>;
    };
    ws.send(JSON.stringify({ id: 7, channel: 'app:info', payload: {} }));
    assert.deepEqual(await next(1), { id: 7, ok: true, result: { echo: 'app:info' } });
    ws.send('not json');
    assert.deepEqual(await next(2), { id: -1, ok: false, error: { name: 'PayloadError', message: 'Invalid request: not a JSON text frame.' } });
    ws.send(JSON.stringify({ id: 8, channel: 'fs:readFile', payload: {} }));
    const unknown = await next(3);
    assert.equal(unknown.ok, false);
    assert.match(JSON.stringify(unknown.error), /unknown channel/);
    ws.send(JSON.stringify({ id: 9, channel: 'runs:get', payload: { runId: '../../etc' } }));
    assert.match(JSON.stringify(await next(4)), /runId has an unexpected form/);
    for (const l of listeners) l({ type: 'worker-restarted', message: 'hello' });
    assert.deepEqual(await next(5), { event: { type: 'worker-restarted', message: 'hello' } });
    ws.close();
  });

  test('uploaded names are made harmless', () => {
    assert.equal(safeFileName('../../etc/passwd'), 'passwd');
    assert.equal(safeFileName('..\\..\\win.ini'), 'win.ini');
    assert.equal(safeFileName('.hidden'), 'hidden');
    assert.equal(safeFileName('chat noir <1>.jpg'), 'chat noir _1_.jpg');
    assert.equal(safeFileName(''), 'image');
  });
});
