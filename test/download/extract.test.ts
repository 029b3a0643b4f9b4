import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { extractArchive, type ExtractProgress } from '../../src-main/engine/download/extract.js';
import { buildTar, buildTgz, buildZip, miniPets, type TarSpec } from './support/archives.js';
import { gzipSync } from 'node:zlib';

let work: string;
let n = 0;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ft-extract-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** A sandbox (where extraction happens: `<sandbox>/cache/data`) and the archive, kept outside the sandbox. */
async function setup(archive: Buffer, ext = 'tgz') {
  const id = ++n;
  const sandbox = path.join(work, `sandbox${id}`);
  await mkdir(path.join(sandbox, 'cache'), { recursive: true });
  const file = path.join(work, `archive${id}.${ext}`);
  await writeFile(file, archive);
  return { sandbox, file, dest: path.join(sandbox, 'cache', 'data') };
}

/** Every path under `dir`, links not followed, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((e) => path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))).sort();
}

describe('extractArchive', () => {
  test('a .tgz with one top folder is unwrapped into dest, with progress, leaving no temp folder', async () => {
    const { tgz, names } = miniPets(12, 32 << 10);
    const { sandbox, file, dest } = await setup(tgz);
    const events: ExtractProgress[] = [];
    const result = await extractArchive(file, dest, { onProgress: (e) => events.push(e) });
    assert.equal(result.path, dest);
    const images = (await readdir(path.join(dest, 'images'))).sort();
    assert.deepEqual(images, [...names, 'Abyssinian_100.mat', 'Abyssinian_101.mat', 'Abyssinian_102.mat'].sort());
    assert.equal((await readFile(path.join(dest, 'images', names[0]))).length, 32 << 10);
    assert.ok(existsSync(path.join(dest, 'annotations', 'list.txt')));
    assert.deepEqual(await readdir(path.join(sandbox, 'cache')), ['data'], 'no .partial folder left');
    assert.equal(events.at(-1)?.archiveBytesRead, tgz.length);
    assert.equal(events.at(-1)?.archiveTotalBytes, tgz.length);
    assert.equal(result.bytesWritten, 12 * (32 << 10) + 3 * 100 + 33);
  });

  test('an archive with several top-level entries becomes dest as is', async () => {
    const { file, dest } = await setup(buildTgz([{ name: 'a/x.txt', data: 'x' }, { name: 'b.txt', data: 'b' }]));
    await extractArchive(file, dest);
    assert.deepEqual(await tree(dest), ['a', 'a/x.txt', 'b.txt']);
  });

  test('links inside the archive that stay inside are created', async () => {
    const { file, dest } = await setup(
      buildTgz([
        { name: 'd/images/a.jpg', data: 'A' },
        { name: 'd/latest', type: 'symlink', linkTarget: 'images/a.jpg' },
        { name: 'd/images/up', type: 'symlink', linkTarget: '../images' },
        { name: 'd/copy.jpg', type: 'hardlink', linkTarget: 'd/images/a.jpg' },
      ]),
    );
    await extractArchive(file, dest);
    assert.equal(await readlink(path.join(dest, 'latest')), 'images/a.jpg');
    assert.equal(await readFile(path.join(dest, 'latest'), 'utf8'), 'A');
    assert.equal(await readFile(path.join(dest, 'copy.jpg'), 'utf8'), 'A');
  });

  test('a .zip is extracted, deflated and stored entries alike', async () => {
    const big = randomBytes(100_000);
    const { file, dest } = await setup(
      buildZip([
        { name: 'mnist/' },
        { name: 'mnist/train/3/1.png', data: big },
        { name: 'mnist/labels.csv', data: 'name,label\n' + 'train/3/1.png,3\n'.repeat(20) },
        { name: 'mnist/link', symlinkTarget: 'labels.csv' },
      ]),
      'zip',
    );
    await extractArchive(file, dest);
    assert.ok((await readFile(path.join(dest, 'train', '3', '1.png'))).equals(big));
    assert.match(await readFile(path.join(dest, 'labels.csv'), 'utf8'), /^name,label\n/);
    assert.equal(await readlink(path.join(dest, 'link')), 'labels.csv');
  });

  test('a truncated gzip fails clearly, and neither dest nor a temp folder remains', async () => {
    const { tgz } = miniPets(8, 32 << 10);
    const { sandbox, file, dest } = await setup(tgz.subarray(0, Math.floor(tgz.length * 0.6)));
    await assert.rejects(extractArchive(file, dest), (err: Error) => {
      assert.equal(err.name, 'ArchiveFormatError');
      assert.ok(err.message.includes(file), 'names the archive');
      assert.match(err.message, /damaged or incomplete \(gzip: unexpected end of file\)/);
      return true;
    });
    assert.deepEqual(await tree(sandbox), ['cache']);
  });

  test('a gzip damaged in the middle fails (CRC), leaving nothing', async () => {
    const { tgz } = miniPets(8, 32 << 10);
    const bad = Buffer.from(tgz);
    bad[Math.floor(bad.length / 2)] ^= 0x55;
    const { sandbox, file, dest } = await setup(bad);
    await assert.rejects(extractArchive(file, dest), { name: 'ArchiveFormatError' });
    assert.deepEqual(await tree(sandbox), ['cache']);
  });

  test('a file that is no archive is named in the error', async () => {
    const { file, dest } = await setup(Buffer.from('<html>Access denied</html>'));
    await assert.rejects(extractArchive(file, dest), { name: 'ArchiveFormatError', message: new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a .tgz, .tar or .zip`) });
  });

  test('refuses to overwrite an existing dest', async () => {
    const { file, dest } = await setup(buildTgz([{ name: 'a.txt', data: 'a' }]));
    await mkdir(dest);
    await assert.rejects(extractArchive(file, dest), /already exists/);
  });

  test('cancel during extraction: AbortError, and the half-extracted folder is removed', async () => {
    const { tgz } = miniPets(40, 64 << 10);
    const { sandbox, file, dest } = await setup(tgz);
    const controller = new AbortController();
    await assert.rejects(
      extractArchive(file, dest, {
        signal: controller.signal,
        // The first report comes after the first MiB of a ~2.6 MB archive is read: mid-extraction.
        onProgress: (p) => p.archiveBytesRead < p.archiveTotalBytes && controller.abort(),
      }),
      { name: 'AbortError' },
    );
    assert.deepEqual(await tree(sandbox), ['cache']);
  });
});

describe('extractArchive refuses entries that would land outside the target', () => {
  // Each archive first holds a harmless file, so a refusal must also undo what was already written.
  const cases: [string, (sandbox: string) => TarSpec[]][] = [
    ['a ../ entry', () => [{ name: '../evil.txt', data: 'pwned' }]],
    ['a ../../ entry in the middle of a path', () => [{ name: 'data/images/../../../evil.txt', data: 'pwned' }]],
    ['a Windows-style ..\\ entry', () => [{ name: '..\\..\\evil.txt', data: 'pwned' }]],
    ['an absolute entry', (sandbox) => [{ name: path.join(sandbox, 'abs-evil.txt'), data: 'pwned' }]],
    ['a pax path with ..', () => [{ name: `../${'x'.repeat(120)}/evil.txt`, data: 'pwned', longNames: 'pax' }]],
    [
      'a symlink pointing out, then a file written through it',
      () => [
        { name: 'data/escape', type: 'symlink', linkTarget: '../../..' },
        { name: 'data/escape/evil.txt', data: 'pwned' },
      ],
    ],
    ['a symlink pointing out (even with nothing written through it)', () => [{ name: 'data/escape', type: 'symlink', linkTarget: '../../../outside' }]],
    ['an absolute symlink', (sandbox) => [{ name: 'data/escape', type: 'symlink', linkTarget: sandbox }]],
    [
      'a chain of links that escapes although each looks inside',
      () => [
        { name: 'data/here', type: 'symlink', linkTarget: '.' },
        { name: 'data/sub/x', data: 'x' },
        { name: 'data/up', type: 'symlink', linkTarget: 'here/../..' },
      ],
    ],
    ['a hard link to a file outside', () => [{ name: 'data/h', type: 'hardlink', linkTarget: '../../outside/secret.txt' }]],
  ];

  for (const [label, entries] of cases) {
    test(label, async () => {
      const id = ++n;
      const sandbox = path.join(work, `sandbox${id}`);
      await mkdir(path.join(sandbox, 'cache'), { recursive: true });
      await mkdir(path.join(sandbox, 'outside'));
      await writeFile(path.join(sandbox, 'outside', 'secret.txt'), 'secret');
      const file = path.join(work, `evil${id}.tgz`);
      await writeFile(file, gzipSync(buildTar([{ name: 'data/ok.txt', data: 'fine' }, ...entries(sandbox)])));
      const before = await tree(sandbox);

      await assert.rejects(extractArchive(file, path.join(sandbox, 'cache', 'data')), (err: Error) => {
        assert.equal(err.name, 'UnsafeArchiveError');
        assert.match(err.message, /^Refusing to extract .*: its entry ".+" could write outside the target folder/);
        return true;
      });
      assert.deepEqual(await tree(sandbox), before, 'nothing was written anywhere, inside or outside');
      assert.equal(await readFile(path.join(sandbox, 'outside', 'secret.txt'), 'utf8'), 'secret');
    });
  }

  test('a zip with a ../ entry', async () => {
    const { sandbox, file, dest } = await setup(buildZip([{ name: 'ok.txt', data: 'ok' }, { name: '../evil.txt', data: 'pwned' }]), 'zip');
    await assert.rejects(extractArchive(file, dest), { name: 'UnsafeArchiveError', message: /"\.\.\/evil\.txt".*contains "\.\."/ });
    assert.deepEqual(await tree(sandbox), ['cache']);
  });

  test('a zip with a symlink pointing out', async () => {
    const { sandbox, file, dest } = await setup(buildZip([{ name: 'ok.txt', data: 'ok' }, { name: 'ln', symlinkTarget: '../../../etc' }]), 'zip');
    await assert.rejects(extractArchive(file, dest), { name: 'UnsafeArchiveError', message: /"ln".*outside the target folder/ });
    assert.deepEqual(await tree(sandbox), ['cache']);
  });
});
