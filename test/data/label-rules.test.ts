import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseCsv } from '../../src-main/engine/data/csv.js';
import { createLabelRule, LABEL_RULE_CHOICES, type LabelOutcome } from '../../src-main/engine/data/label-rules.js';
import { makeTempDir, writeFiles } from '../helpers/images.js';

const labelOf = (o: LabelOutcome) => (o.ok ? o.label : `SKIP: ${o.reason}`);

describe('is-cat (fastai is_cat: x[0].isupper())', () => {
  test('uppercase first letter of the file name is a cat, anything else a dog', async () => {
    const rule = await createLabelRule({ kind: 'is-cat' });
    assert.equal(labelOf(rule.label('Abyssinian_1.jpg')), 'cat');
    assert.equal(labelOf(rule.label('images/Siamese_109.jpg')), 'cat');
    assert.equal(labelOf(rule.label('american_bulldog_10.jpg')), 'dog');
    // The folder name does not matter, only the file name.
    assert.equal(labelOf(rule.label('Cats/pug_1.jpg')), 'dog');
    // Python: '1'.isupper() and '_'.isupper() are False; 'É'.isupper() is True.
    assert.equal(labelOf(rule.label('1cat.jpg')), 'dog');
    assert.equal(labelOf(rule.label('_X.jpg')), 'dog');
    assert.equal(labelOf(rule.label('Égyptien_1.jpg')), 'cat');
  });

  test('every rule kind has a plain-language title', () => {
    assert.deepEqual(LABEL_RULE_CHOICES.map((c) => c.kind).sort(), ['csv', 'folder', 'is-cat', 'regex']);
    for (const c of LABEL_RULE_CHOICES) assert.ok(c.title.length > 10 && !/[_\\^$]/.test(c.title), c.title);
  });
});

describe('regex on the file name (fastai RegexLabeller)', () => {
  test('the breed pattern takes the first group', async () => {
    const rule = await createLabelRule({ kind: 'regex', pattern: '^(.+)_\\d+\\.' });
    assert.equal(labelOf(rule.label('images/great_pyrenees_173.jpg')), 'great_pyrenees');
    assert.equal(labelOf(rule.label('British_Shorthair_2.jpg')), 'British_Shorthair');
  });

  test('a name the pattern does not match is skipped with the pattern in the reason', async () => {
    const rule = await createLabelRule({ kind: 'regex', pattern: '^(.+)_\\d+\\.' });
    assert.match(labelOf(rule.label('README.jpg')), /^SKIP: the file name does not match the label pattern \^\(\.\+\)_\\d\+\\\./);
  });

  test('like re.search, the pattern may match anywhere in the name', async () => {
    const rule = await createLabelRule({ kind: 'regex', pattern: '-(\\w+)\\.png$' });
    assert.equal(labelOf(rule.label('img-0001-zebra.png')), 'zebra');
  });

  test('an invalid pattern or one without a group is refused before any file is read', async () => {
    await assert.rejects(createLabelRule({ kind: 'regex', pattern: '^(.+' }), /not a valid regular expression/);
    await assert.rejects(createLabelRule({ kind: 'regex', pattern: '^.+_\\d+' }), /has no group: put parentheses/);
    await assert.rejects(createLabelRule({ kind: 'regex', pattern: '(?:x)' }), /has no group/);
  });

  test('an empty capture is a skip, not an empty label', async () => {
    const rule = await createLabelRule({ kind: 'regex', pattern: '^(a*)b' });
    assert.match(labelOf(rule.label('b.jpg')), /captured nothing/);
  });
});

describe('parent folder (fastai parent_label)', () => {
  test('the label is the folder the image is directly in', async () => {
    const rule = await createLabelRule({ kind: 'folder' });
    assert.equal(labelOf(rule.label('train/dogs/rex.jpg')), 'dogs');
    assert.equal(labelOf(rule.label('cats/tom.jpg')), 'cats');
    assert.match(labelOf(rule.label('loose.jpg')), /directly in the chosen folder/);
  });
});

describe('CSV of name,label', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir()));
  after(() => cleanup());

  test('header, quotes, BOM, CRLF, paths and bare names', async () => {
    await writeFiles(dir, {
      'labels.csv': '\ufeffname,label\r\na.jpg,cat\r\n"sub/b, with comma.jpg","big ""dog"""\r\n./c.png,cat\r\n',
    });
    const rule = await createLabelRule({ kind: 'csv', csvPath: path.join(dir, 'labels.csv') });
    assert.equal(labelOf(rule.label('x/a.jpg')), 'cat');
    assert.equal(labelOf(rule.label('sub/b, with comma.jpg')), 'big "dog"');
    assert.equal(labelOf(rule.label('c.png')), 'cat');
    assert.match(labelOf(rule.label('d.jpg')), /not listed in labels\.csv/);
    assert.deepEqual(rule.notes(new Set(['x/a.jpg', 'c.png'])), ['1 name(s) in labels.csv match no image in the folder (e.g. sub/b, with comma.jpg).']);
  });

  test('conflicting duplicates, missing columns, empty files and missing files are clear errors', async () => {
    await writeFiles(dir, { 'dup.csv': 'a.jpg,cat\nb.jpg,dog\na.jpg,dog\n', 'one.csv': 'a.jpg\n', 'empty.csv': 'name,label\n' });
    await assert.rejects(createLabelRule({ kind: 'csv', csvPath: path.join(dir, 'dup.csv') }), /lists a\.jpg twice with different labels \(line 1: "cat", line 3: "dog"\)/);
    await assert.rejects(createLabelRule({ kind: 'csv', csvPath: path.join(dir, 'one.csv') }), /line 1: expected two columns/);
    await assert.rejects(createLabelRule({ kind: 'csv', csvPath: path.join(dir, 'empty.csv') }), /has no rows/);
    await assert.rejects(createLabelRule({ kind: 'csv', csvPath: path.join(dir, 'nope.csv') }), /Cannot read the labels file .*nope\.csv \(ENOENT\)/);
  });

  test('parser: quoted newlines keep line numbers right; unterminated quotes are reported', () => {
    const rows = parseCsv('a,"x\ny"\nb,z\n');
    assert.deepEqual(rows, [{ line: 1, fields: ['a', 'x\ny'] }, { line: 3, fields: ['b', 'z'] }]);
    assert.throws(() => parseCsv('a,"oops\n'), /unterminated quoted field starting on line 1/);
  });
});
