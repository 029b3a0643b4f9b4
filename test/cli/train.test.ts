import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/images.js';
import { MOBILENET_V2_035, petsSubset, sharedSkipReason } from '../helpers/shared.js';

describe('finetune-studio train', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('fs-cli-train-')));
  after(() => cleanup());

  const skip = sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') || sharedSkipReason('data', 'oxford-pets-sample');
  test('small real run through the worker: both fastai tables, summary, model and run.json', { skip }, async () => {
    const root = await petsSubset(dir, 12);
    const out = path.join(dir, 'run');
    const r = await runCli(['train', root, '--label', 'is-cat', '--arch', 'mobilenet_v2_0.35', '--weights', MOBILENET_V2_035, '--size', '32', '--epochs', '1', '--out', out, '--cache-dir', path.join(dir, 'cache')]);
    assert.equal(r.code, 0, r.stderr);
    const tables = r.stdout.match(/^epoch {2}train_loss {2}valid_loss {2}error_rate {2}time$/gm) ?? [];
    assert.equal(tables.length, 2, r.stdout);
    assert.match(r.stdout, /Frozen body[^\n]*\n[^\n]*\n0 {6}\d+\.\d{6} {4}\d+\.\d{6} {4}\d\.\d{6} {4}\d\d:\d\d/);
    assert.match(r.stdout, /Validation: error_rate [\d.]+% \(accuracy [\d.]+%\) on 4 images/);
    assert.match(r.stdout, /Confusion matrix/);
    assert.match(r.stderr, /» fine_tune\(1\) with 1 frozen epoch/);
    const record = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8'));
    assert.equal(record.status, 'completed');
    assert.equal(record.epochs.length, 2);
    await access(path.join(out, 'model', 'checkpoint.json'));
  });

  test('argument mistakes exit 2 naming the fix', async () => {
    for (const [args, message] of [
      [['train', dir, '--label', 'is-cat', '--arch', 'vgg16'], /Unknown --arch "vgg16"\. Choose one of: resnet18, resnet34/],
      [['train', dir, '--label', 'is-cat', '--epochs=-1'], /--epochs must be a whole number of at least 0/],
      [['train', dir, '--label', 'is-cat', '--lr', 'fast'], /--lr must be a positive learning rate/],
      [['train', '--label', 'is-cat'], /Name the folder of images/],
    ] as const) {
      const r = await runCli([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
