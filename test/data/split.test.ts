import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { MT19937, torchRandperm } from '../../src-main/engine/data/mt19937.js';
import { folderSplit, randomSplit, splitItems } from '../../src-main/engine/data/split.js';
import { sharedPath, sharedSkipReason } from '../helpers/shared.js';

describe('PyTorch randperm parity (fastai RandomSplitter)', () => {
  const skip = sharedSkipReason('fixtures', 'randperm.json');
  const fixture = () => JSON.parse(readFileSync(sharedPath('fixtures', 'randperm.json'), 'utf8'));

  test('torch.manual_seed(42); torch.randperm(n) matches the fixture exactly for every n', { skip }, () => {
    const { randperm, seed } = fixture();
    assert.equal(seed, 42);
    for (const [n, expected] of Object.entries(randperm)) assert.deepEqual(torchRandperm(Number(n), 42), expected, `n=${n}`);
  });

  test('seed 0 matches too', { skip }, () => {
    assert.deepEqual(torchRandperm(100, 0), fixture().seed0_n100);
  });

  test("fastai's Pets split (7390 images, 20%, seed 42): cut and first indices of each side", { skip }, () => {
    const f = fixture().fastai_pets_split;
    const split = randomSplit(f.n, f.valid_pct, 42);
    assert.equal(split.valid.length, f.cut);
    assert.equal(split.train.length, f.n - f.cut);
    assert.deepEqual(split.valid.slice(0, 10), f.valid_first10);
    assert.deepEqual(split.train.slice(0, 10), f.train_first10);
  });
});

describe('MT19937', () => {
  test('reference output of init_genrand(5489)', () => {
    // The first outputs of the reference implementation with its default seed.
    const mt = new MT19937(5489);
    assert.deepEqual([mt.nextUint32(), mt.nextUint32(), mt.nextUint32()], [3499211612, 581869302, 3890346734]);
  });

  test('the 10000th output for seed 5489 is 4123659995 (C++ std::mt19937 conformance value)', () => {
    const mt = new MT19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = mt.nextUint32();
    assert.equal(v, 4123659995);
  });
});

describe('random split', () => {
  test('cut is int(valid_pct * n), like Python, and the sides partition the items', () => {
    for (const [n, pct] of [[975, 0.2], [10, 0.25], [7, 0.5], [3, 0.1], [1, 0.2], [0, 0.2]] as const) {
      const { train, valid } = randomSplit(n, pct, 42);
      assert.equal(valid.length, Math.trunc(pct * n));
      assert.deepEqual([...train, ...valid].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    }
  });

  test('valid_pct 0 gives an empty validation set', () => {
    const { train, valid } = randomSplit(5, 0, 1);
    assert.equal(valid.length, 0);
    assert.equal(train.length, 5);
  });

  test('bad shares and seeds are rejected with a clear message', () => {
    assert.throws(() => splitItems(['a.jpg'], { kind: 'random', validPct: 1, seed: 1 }), /between 0 and 1/);
    assert.throws(() => splitItems(['a.jpg'], { kind: 'random', validPct: -0.1, seed: 1 }), /between 0 and 1/);
    assert.throws(() => splitItems(['a.jpg'], { kind: 'random', validPct: Number.NaN, seed: 1 }), /between 0 and 1/);
    assert.throws(() => splitItems(['a.jpg'], { kind: 'random', validPct: 0.2, seed: 1.5 }), /whole number/);
    assert.throws(() => splitItems(['a.jpg'], { kind: 'folder', trainName: 'x', validName: 'x' }), /two different folder names/);
  });
});

describe('folder split (GrandparentSplitter layout)', () => {
  test('assigns by top-level folder and reports the rest', () => {
    const rel = ['train/3/a.png', 'valid/3/b.png', 'train/7/c.png', 'test/7/d.png', 'e.png', 'valid.png'];
    const s = folderSplit(rel, 'train', 'valid');
    assert.deepEqual(s.train, [0, 2]);
    assert.deepEqual(s.valid, [1]);
    assert.deepEqual(s.unassigned.map((u) => u.index), [3, 4, 5]);
    assert.match(s.unassigned[0].reason, /not inside a "train\/" or "valid\/" folder/);
  });
});
