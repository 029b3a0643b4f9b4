import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, solidJpeg, writeFiles } from '../helpers/images.js';

describe('finetune-studio dataset inspect', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir());
    root = path.join(dir, 'photos');
    const files: Record<string, Buffer | string> = { 'dog_bad.jpg': 'not really a jpeg' };
    for (let i = 0; i < 5; i++) files[`Cat_${i}.jpg`] = await solidJpeg(20, 16);
    for (let i = 0; i < 5; i++) files[`dog_${i}.jpg`] = await solidJpeg(16, 20);
    await writeFiles(root, files);
  });
  after(() => cleanup());

  test('prints classes, split sizes, skipped files with reasons and the time taken', async () => {
    const r = await runCli(['dataset', 'inspect', root, '--label', 'is-cat', '--valid-pct', '0.2', '--seed', '42', '--size', '32', '--cache-dir', path.join(dir, 'cache')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Split:\s+random, 20% validation, seed 42/);
    assert.match(r.stdout, /Found 11 image files; \d+ for training, \d+ for validation\./);
    assert.match(r.stdout, /^cat\s+5\s+\d+\s+\d+\s+Cat_\d\.jpg/m);
    assert.match(r.stdout, /^dog\s+5\s+/m);
    assert.match(r.stdout, /Skipped 1 file\(s\):\n {2}dog_bad\.jpg: the file contains text, not image data/);
    assert.match(r.stdout, /Time: \d\d:\d\d \([\d.]+ s\)/);
    assert.match(r.stderr, /Decoding\s+done in/);
  });

  test('--json gives the same report as data', async () => {
    const r = await runCli(['dataset', 'inspect', root, '--label', 'is-cat', '--no-decode', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.classes.map((c: { name: string; count: number }) => [c.name, c.count]), [['cat', 5], ['dog', 6]]);
    assert.equal(report.train + report.valid, 11);
  });

  test('argument mistakes exit 2 with the reason and the usage', async () => {
    for (const [args, message] of [
      [['dataset', 'inspect', root], /Say how images are labelled with --label/],
      [['dataset', 'inspect', root, '--label', 'is-cat', '--valid-pct', '1.5'], /validation share must be between 0 and 1/],
      [['dataset', 'inspect', root, '--label', 'regex', '--pattern', '^.+$'], /has no group/],
      [['dataset', 'inspect', root, '--label', 'is-cat', '--size', 'big'], /image size must be a whole number/],
      [['dataset', 'inspect', root, '--label', 'is-cat', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['dataset', 'inspect', '--label', 'is-cat'], /Name the folder of images/],
    ] as const) {
      const r = await runCli([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage|finetune-studio dataset inspect <folder>/);
    }
  });

  test('a missing folder or an empty one exits 1 with a message saying what to do', async () => {
    const missing = await runCli(['dataset', 'inspect', path.join(dir, 'nope'), '--label', 'is-cat']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist or cannot be read.*Pick an existing folder/);
    const emptyDir = path.join(dir, 'empty');
    await writeFiles(emptyDir, { 'notes.txt': 'x' });
    const empty = await runCli(['dataset', 'inspect', emptyDir, '--label', 'is-cat', '--no-decode']);
    assert.equal(empty.code, 1);
    assert.match(empty.stdout, /Error: No images were found/);
  });
});
