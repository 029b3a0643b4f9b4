import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile, link } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readTar, type TarEntry } from '../../src-main/engine/download/tar.js';
import { buildTar, ustarPrefixed } from './support/archives.js';

/** Reads a whole tar from `buf`, delivered in small uneven chunks to exercise header/body boundaries. */
async function list(buf: Buffer, chunk = 333): Promise<{ entry: TarEntry; data: string }[]> {
  async function* chunks() {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  const out: { entry: TarEntry; data: string }[] = [];
  for await (const { entry, body } of readTar(chunks())) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    out.push({ entry, data: Buffer.concat(parts).toString('utf8') });
  }
  return out;
}

const LONG = `deep/${'a-very-long-folder-name/'.repeat(6)}Abyssinian_1.jpg`; // > 100 bytes

describe('readTar', () => {
  test('files, folders, and both kinds of link', async () => {
    const tar = buildTar([
      { name: 'top/', type: 'dir' },
      { name: 'top/a.txt', data: 'hello' },
      { name: 'top/empty.txt', data: '' },
      { name: 'top/link', type: 'symlink', linkTarget: 'a.txt' },
      { name: 'top/hard', type: 'hardlink', linkTarget: 'top/a.txt' },
    ]);
    const entries = await list(tar);
    assert.deepEqual(
      entries.map((e) => [e.entry.path, e.entry.type, e.entry.linkTarget, e.data]),
      [
        ['top/', 'directory', undefined, ''],
        ['top/a.txt', 'file', undefined, 'hello'],
        ['top/empty.txt', 'file', undefined, ''],
        ['top/link', 'symlink', 'a.txt', ''],
        ['top/hard', 'hardlink', 'top/a.txt', ''],
      ],
    );
  });

  test('GNU long names and long link targets', async () => {
    const entries = await list(buildTar([
      { name: LONG, data: 'x'.repeat(1000), longNames: 'gnu' },
      { name: 'l', type: 'symlink', linkTarget: LONG, longNames: 'gnu' },
    ]));
    assert.equal(entries[0].entry.path, LONG);
    assert.equal(entries[0].data.length, 1000);
    assert.equal(entries[1].entry.linkTarget, LONG);
  });

  test('pax path headers, including UTF-8 names', async () => {
    const name = `${LONG}/Ünïcødé-猫.jpg`;
    const entries = await list(buildTar([{ name, data: 'meow', longNames: 'pax' }, { name: 'after.txt', data: 'next' }]));
    assert.deepEqual(entries.map((e) => [e.entry.path, e.data]), [[name, 'meow'], ['after.txt', 'next']]);
  });

  test('ustar prefix + name', async () => {
    const tar = Buffer.concat([ustarPrefixed('some/prefix/dir', 'file.txt', 'data'), Buffer.alloc(1024)]);
    const entries = await list(tar);
    assert.equal(entries[0].entry.path, 'some/prefix/dir/file.txt');
  });

  test('skips bodies the consumer does not read', async () => {
    const tar = buildTar([{ name: 'a', data: 'x'.repeat(5000) }, { name: 'b', data: 'second' }]);
    async function* one() {
      yield tar;
    }
    const names: string[] = [];
    let data = '';
    for await (const { entry, body } of readTar(one())) {
      names.push(entry.path);
      if (entry.path === 'b') for await (const c of body) data += c.toString();
    }
    assert.deepEqual(names, ['a', 'b']);
    assert.equal(data, 'second');
  });

  test('a damaged header is reported, not misread', async () => {
    const tar = buildTar([{ name: 'a.txt', data: 'hello' }]);
    tar[10] ^= 0xff;
    await assert.rejects(list(tar), { name: 'ArchiveFormatError', message: /Bad tar header checksum at offset 0/ });
  });

  test('a tar cut inside a body is reported as truncated', async () => {
    const tar = buildTar([{ name: 'a.bin', data: 'y'.repeat(3000) }]).subarray(0, 1500);
    await assert.rejects(list(tar), { name: 'ArchiveFormatError', message: /ends in the middle of "a\.bin".*truncated/ });
  });
});

// Cross-check against a real tar implementation: archives written by the system's GNU tar or bsdtar.
let hasTar = false;
try {
  execFileSync('tar', ['--version'], { stdio: 'ignore' });
  hasTar = true;
} catch {
  hasTar = false;
}

describe('readTar on archives made by the system tar', { skip: hasTar ? false : 'no `tar` command on this machine' }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ft-systar-'));
    const root = path.join(dir, 'src', 'dataset');
    await mkdir(path.join(root, LONG, '..'), { recursive: true });
    await writeFile(path.join(root, LONG), 'long one');
    await mkdir(path.join(root, 'images'), { recursive: true });
    await writeFile(path.join(root, 'images', 'Bengal_7.jpg'), Buffer.alloc(70_000, 1));
    await writeFile(path.join(root, 'images', 'Ünïcødé-猫.jpg'), 'utf8 name');
    await symlink('images/Bengal_7.jpg', path.join(root, 'first'));
    await link(path.join(root, 'images', 'Bengal_7.jpg'), path.join(root, 'hard.jpg'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    test(`--format=${format}`, async (t) => {
      const out = path.join(dir, `${format}.tar`);
      try {
        // ustar cannot store the 200-byte name; leave it out there.
        const exclude = format === 'ustar' ? ['--exclude', 'dataset/deep'] : [];
        execFileSync('tar', ['--format', format, ...exclude, '-cf', out, '-C', path.join(dir, 'src'), 'dataset'], { stdio: 'pipe' });
      } catch (err) {
        t.skip(`this tar cannot write --format=${format}: ${(err as Error).message.split('\n')[0]}`);
        return;
      }
      const entries = await list(await readFile(out), 4096);
      const byPath = new Map(entries.map((e) => [e.entry.path.replace(/\/$/, ''), e]));
      assert.equal(byPath.get('dataset/images/Ünïcødé-猫.jpg')?.data, 'utf8 name');
      assert.equal(byPath.get('dataset/first')?.entry.type, 'symlink');
      assert.equal(byPath.get('dataset/first')?.entry.linkTarget, 'images/Bengal_7.jpg');
      // Whichever of the two names tar met first holds the data; the other is a hard link to it.
      const hardPair = [byPath.get('dataset/hard.jpg')?.entry.type, byPath.get('dataset/images/Bengal_7.jpg')?.entry.type].sort();
      assert.deepEqual(hardPair, ['file', 'hardlink']);
      const withData = [byPath.get('dataset/hard.jpg'), byPath.get('dataset/images/Bengal_7.jpg')].find((e) => e?.entry.type === 'file');
      assert.equal(withData?.data.length, 70_000);
      if (format !== 'ustar') assert.equal(byPath.get(`dataset/${LONG}`)?.data, 'long one');
    });
  }
});
