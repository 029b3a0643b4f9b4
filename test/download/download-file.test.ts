import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { downloadFile, type DownloadProgress } from '../../src-main/engine/download/download-file.js';
import { md5FirstMib } from './support/archives.js';
import { startServer, type TestServer } from './support/http-server.js';

// 1.5 MiB of random bytes: bigger than the 1 MiB that md5-first-mib hashes, so a corrupt tail differs only in full checks.
const BODY = randomBytes(1.5 * (1 << 20));
const CHECK = { algorithm: 'md5-first-mib' as const, value: md5FirstMib(BODY) };
const FAST = { retryBaseDelayMs: 10, idleTimeoutMs: 2000 };

let server: TestServer;
let dir: string;
let n = 0;
/** A fresh route and destination per test, so tests share one server without seeing each other's requests. */
function fresh(route: Parameters<TestServer['routes']['set']>[1]): { p: string; url: string; dest: string } {
  const p = `/files/f${++n}.tgz`;
  server.routes.set(p, route);
  return { p, url: server.url(p), dest: path.join(dir, `f${n}.tgz`) };
}

before(async () => {
  server = await startServer();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ft-download-'));
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('downloadFile', () => {
  test('happy path: verified file at dest, .part and lock gone, progress reaches the total', async () => {
    const { p, url, dest } = fresh({ body: BODY, chunkSize: 256 << 10 });
    const events: DownloadProgress[] = [];
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, onProgress: (e) => events.push(e) });
    assert.deepEqual(result, { path: dest, bytes: BODY.length, resumedFromBytes: 0, downloaded: true });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(existsSync(`${dest}.part`), false);
    assert.equal(existsSync(`${dest}.lock`), false);
    assert.equal(server.requestsFor(p).length, 1);
    const downloading = events.filter((e) => e.phase === 'downloading');
    assert.ok(downloading.length >= 2, 'reports progress while downloading');
    for (let i = 1; i < downloading.length; i++) assert.ok(downloading[i].receivedBytes >= downloading[i - 1].receivedBytes);
    assert.equal(downloading.at(-1)?.receivedBytes, BODY.length);
    assert.equal(downloading.at(-1)?.totalBytes, BODY.length);
    assert.ok(events.some((e) => e.phase === 'verifying'));
  });

  test('a second call finds the verified file and makes no request', async () => {
    const { p, url, dest } = fresh({ body: BODY });
    await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK });
    const again = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK });
    assert.equal(again.downloaded, false);
    assert.equal(server.requestsFor(p).length, 1);
  });

  test('a connection cut mid-file is resumed with Range; no byte is fetched twice', async () => {
    const cut = 400_000;
    const { p, url, dest } = fresh({ body: BODY, cutAfter: cut });
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, ...FAST });
    assert.ok((await readFile(dest)).equals(BODY));
    const reqs = server.requestsFor(p);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[1].range, `bytes=${cut}-`);
    assert.equal(reqs[1].status, 206);
    assert.equal(server.bytesSentFor(p), BODY.length, 'server sent each byte exactly once');
    assert.equal(result.resumedFromBytes, 0, 'this call started from nothing');
  });

  test('a .part left by an earlier run is resumed by the next call', async () => {
    const cut = 700_000;
    const { p, url, dest } = fresh({ body: BODY, cutAfter: cut });
    await assert.rejects(downloadFile({ url, dest, expectedSize: BODY.length, retries: 0, ...FAST }), /Gave up.*run again to resume/s);
    assert.equal((await stat(`${dest}.part`)).size, cut);
    assert.equal(existsSync(`${dest}.lock`), false, 'a failed download releases its lock');
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, ...FAST });
    assert.equal(result.resumedFromBytes, cut);
    assert.equal(server.requestsFor(p)[1].range, `bytes=${cut}-`);
    assert.equal(server.bytesSentFor(p), BODY.length);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('a server that ignores Range still yields the right file', async () => {
    const { url, dest } = fresh({ body: BODY, cutAfter: 300_000, ignoreRange: true });
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, ...FAST });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(result.resumedFromBytes, 0);
  });

  test('wrong size: downloaded twice, then a clear error; nothing left behind', async () => {
    const { p, url, dest } = fresh({ body: BODY.subarray(0, BODY.length - 10) });
    await assert.rejects(downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, ...FAST }), (err: Error) => {
      assert.equal(err.name, 'VerificationError');
      assert.match(err.message, new RegExp(`failed verification twice.*${BODY.length.toLocaleString('en-US')}`, 's'));
      assert.ok(err.message.includes(url));
      return true;
    });
    assert.equal(server.requestsFor(p).length, 2, 're-downloads once');
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  test('wrong checksum: downloaded twice, then an error naming both hashes', async () => {
    const other = Buffer.from(BODY);
    other[10] ^= 0xff;
    const { p, url, dest } = fresh({ body: other });
    await assert.rejects(downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, ...FAST }), (err: Error) => {
      assert.equal(err.name, 'VerificationError');
      assert.ok(err.message.includes(CHECK.value));
      assert.ok(err.message.includes(md5FirstMib(other)));
      return true;
    });
    assert.equal(server.requestsFor(p).length, 2);
    assert.equal(existsSync(dest), false);
  });

  test('a corrupt first copy is replaced by the second download', async () => {
    const corrupt = Buffer.from(BODY);
    corrupt[BODY.length - 1] ^= 0xff; // past the first MiB: only a whole-file hash sees it
    const sha256 = createHash('sha256').update(BODY).digest('hex');
    const { p, url, dest } = fresh({ body: BODY, altBody: corrupt, altTimes: 1 });
    const events: DownloadProgress[] = [];
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: { algorithm: 'sha256', value: sha256 }, onProgress: (e) => events.push(e), ...FAST });
    assert.equal(result.downloaded, true);
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(server.requestsFor(p).length, 2);
    assert.ok(events.some((e) => e.phase === 'retrying' && /did not verify/.test(e.message ?? '')));
  });

  test('404 fails at once with the URL in the message, without retries', async () => {
    const url = server.url('/files/missing.tgz');
    const dest = path.join(dir, 'missing.tgz');
    await assert.rejects(downloadFile({ url, dest, ...FAST }), (err: Error) => {
      assert.equal(err.name, 'DownloadError');
      assert.match(err.message, /HTTP 404/);
      assert.ok(err.message.includes(url));
      return true;
    });
    assert.equal(server.requestsFor('/files/missing.tgz').length, 1);
    assert.equal(existsSync(`${dest}.lock`), false);
  });

  test('500 is retried with back-off and succeeds when the server recovers', async () => {
    const { p, url, dest } = fresh({ body: BODY, failStatus: 500, failTimes: 2 });
    const events: DownloadProgress[] = [];
    await downloadFile({ url, dest, expectedSize: BODY.length, onProgress: (e) => events.push(e), ...FAST });
    assert.equal(server.requestsFor(p).length, 3);
    assert.equal(events.filter((e) => e.phase === 'retrying').length, 2);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('a server that keeps failing with 500 is given up after `retries`', async () => {
    const { p, url, dest } = fresh({ body: BODY, failStatus: 500 });
    await assert.rejects(downloadFile({ url, dest, retries: 2, ...FAST }), /Gave up on .* after 3 failed tries in a row \(last: HTTP 500/);
    assert.equal(server.requestsFor(p).length, 3);
  });

  test('a stalled body times out and is resumed', async () => {
    const { p, url, dest } = fresh({ body: BODY, stallTimes: 1 });
    await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK, retryBaseDelayMs: 10, idleTimeoutMs: 300 });
    assert.equal(server.requestsFor(p).length, 2);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('redirects are followed (relative and absolute)', async () => {
    const { p, dest } = fresh({ body: BODY });
    server.routes.set('/r/one', { redirect: '/r/two', status: 301 });
    server.routes.set('/r/two', { redirect: server.url(p), status: 307 });
    await downloadFile({ url: server.url('/r/one'), dest, expectedSize: BODY.length, checksum: CHECK });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(server.requestsFor(p).length, 1);
  });

  test('a redirect loop fails with a clear message', async () => {
    server.routes.set('/loop', { redirect: '/loop' });
    await assert.rejects(downloadFile({ url: server.url('/loop'), dest: path.join(dir, 'loop') }), /More than 10 redirects/);
  });

  test('cancel mid-download: AbortError, .part kept, and the next call resumes from it', async () => {
    const { p, url, dest } = fresh({ body: BODY, chunkSize: 32 << 10, chunkDelayMs: 5 });
    const controller = new AbortController();
    const first = downloadFile({
      url,
      dest,
      expectedSize: BODY.length,
      checksum: CHECK,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.receivedBytes >= 300_000) controller.abort();
      },
    });
    await assert.rejects(first, (err: Error) => err.name === 'AbortError' && /cancelled.*kept in/s.test(err.message));
    const kept = (await stat(`${dest}.part`)).size;
    assert.ok(kept > 0 && kept < BODY.length, `kept ${kept} bytes`);
    assert.equal(existsSync(`${dest}.lock`), false);

    server.routes.set(p, { body: BODY }); // full speed now
    const result = await downloadFile({ url, dest, expectedSize: BODY.length, checksum: CHECK });
    assert.equal(result.resumedFromBytes, kept);
    assert.equal(server.requestsFor(p).at(-1)?.range, `bytes=${kept}-`);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('an already-aborted signal rejects before any request', async () => {
    const { p, url, dest } = fresh({ body: BODY });
    await assert.rejects(downloadFile({ url, dest, signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(server.requestsFor(p).length, 0);
  });

  test('two concurrent downloads of the same file make one request', async () => {
    const { p, url, dest } = fresh({ body: BODY, chunkSize: 128 << 10, chunkDelayMs: 2 });
    const options = { url, dest, expectedSize: BODY.length, checksum: CHECK };
    // Either caller may take the lock first; the other must wait for it and download nothing.
    const waits: DownloadProgress[][] = [[], []];
    const callers = [0, 1].map((i) => downloadFile({ ...options, onProgress: (e) => e.phase === 'waiting' && waits[i].push(e) }));
    const results = await Promise.all(callers);
    assert.equal(server.requestsFor(p).length, 1);
    assert.deepEqual(results.map((r) => r.downloaded).sort(), [false, true]);
    const waiter = results.findIndex((r) => !r.downloaded);
    assert.equal(waits[waiter].length, 1, 'the caller that waits is told so');
    assert.equal(waits[1 - waiter].length, 0, 'the caller that downloads does not wait');
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('file: URLs are copied with the same checks', async () => {
    const source = path.join(dir, 'local-source.bin');
    await writeFile(source, BODY);
    const dest = path.join(dir, 'copied.bin');
    const result = await downloadFile({ url: pathToFileURL(source).href, dest, expectedSize: BODY.length, checksum: CHECK });
    assert.equal(result.downloaded, true);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  test('unsupported URLs are refused with a message naming them', async () => {
    await assert.rejects(downloadFile({ url: 'ftp://example.com/x.tgz', dest: path.join(dir, 'x') }), /ftp:\/\/example\.com\/x\.tgz.*only http:, https: and file:/);
    await assert.rejects(downloadFile({ url: 'not a url', dest: path.join(dir, 'x') }), /Not a valid URL/);
  });
});
