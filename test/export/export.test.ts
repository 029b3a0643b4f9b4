/**
 * Export end to end on real photos: a MobileNetV2-0.35 (real ImageNet weights) and a ResNet-18 (random
 * start) each fine-tuned on a small Pets subset at 32px, exported as TF.js and ONNX, then reloaded in
 * fresh Node processes by the README's own code (plain @tensorflow/tfjs / onnxruntime-node + sharp)
 * and compared with the app's in-memory model on real photos, including a GIF, an RGBA PNG and an
 * EXIF-rotated JPEG. Also: the model card's contents, malformed and foreign folders, the export
 * target rules, cancel, and the two CLI commands.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, mock, test, type TestContext } from 'node:test';
import sharp from 'sharp';
import ts from 'typescript';
import { exportCommand } from '../../src-main/cli/commands/export.js';
import { predictCommand } from '../../src-main/cli/commands/predict.js';
import { UsageError } from '../../src-main/cli/command.js';
import { selectBackend } from '../../src-main/engine/backend.js';
import { exportRun, type ExportResult } from '../../src-main/engine/export/export-run.js';
import { decodeOnnxModel } from '../../src-main/engine/export/onnx-proto.js';
import type { ModelCard } from '../../src-main/engine/export/model-card.js';
import { openPredictor, type ImagePrediction } from '../../src-main/engine/predict/predict.js';
import { runTraining, type RunRecord } from '../../src-main/engine/train/run-training.js';
import { makeTempDir } from '../helpers/images.js';
import { MOBILENET_V2_035, PETS_SAMPLE, petsSubset, REPO_ROOT, sharedSkipReason } from '../helpers/shared.js';

const SIZE = 32;
const TOLERANCE = 1e-4;
const dataSkip = sharedSkipReason('data', 'oxford-pets-sample');
const mobilenetSkip = sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top') || dataSkip;

interface Trained {
  runDir: string;
  record: RunRecord;
  exports: Record<'tfjs' | 'onnx', ExportResult>;
  exportSeconds: Record<'tfjs' | 'onnx', number>;
}

async function trainAndExport(dir: string, root: string, arch: string, weights: { path: string } | 'random'): Promise<Trained> {
  const runDir = path.join(dir, `run-${arch}`);
  const record = await runTraining({
    dataset: { root, label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.25, seed: 42 } },
    arch,
    weights,
    size: SIZE,
    epochs: 1,
    batchSize: 8,
    outDir: runDir,
    cacheDir: path.join(dir, 'cache'),
  });
  const exports = {} as Trained['exports'];
  const exportSeconds = {} as Trained['exportSeconds'];
  for (const format of ['tfjs', 'onnx'] as const) {
    const t0 = performance.now();
    exports[format] = await exportRun(runDir, { format, outDir: path.join(dir, `${arch}-${format}`) });
    exportSeconds[format] = (performance.now() - t0) / 1000;
  }
  return { runDir, record, exports, exportSeconds };
}

/** Real photos: validation images of the run plus the sample's format quirks and an EXIF-rotated copy. */
async function testPhotos(dir: string, root: string, record: RunRecord): Promise<string[]> {
  const rotated = path.join(dir, 'rotated-exif6.jpg');
  // Orientation 6 (rotate 90° clockwise to display): the crop must be taken after rotating.
  await sharp(path.join(PETS_SAMPLE, 'american_bulldog_10.jpg')).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toFile(rotated);
  const valid = record.topLosses.slice(0, 4).map((t) => path.join(root, t.relPath));
  return [...valid, path.join(PETS_SAMPLE, 'Abyssinian_34.jpg'), path.join(PETS_SAMPLE, 'Abyssinian_5.jpg'), rotated];
}

/** The code block after a README heading. */
function snippetAfter(readme: string, heading: string): { lang: string; code: string } {
  const at = readme.indexOf(`### ${heading}`);
  assert.ok(at >= 0, `README has a "${heading}" section`);
  const m = /```(\w+)\n([\s\S]*?)\n```/.exec(readme.slice(at));
  assert.ok(m, `a code block follows "${heading}"`);
  return { lang: m[1], code: m[2] };
}

/** Runs a Node.js snippet in a fresh process (resolving packages from the repo); parses its output lines. */
function runSnippet(code: string, args: string[]): Promise<Map<string, number[]>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-', ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) return reject(new Error(`snippet exited with ${status}: ${stderr.slice(-2000)}`));
      const out = new Map<string, number[]>();
      for (const line of stdout.split('\n')) {
        const m = /^(\S+) (\S+) (\[.*\])$/.exec(line.trim());
        if (m) out.set(m[1], JSON.parse(m[3]));
      }
      resolve(out);
    });
    child.stdin.end(code);
  });
}

/** Probabilities in label order. */
function vector(p: ImagePrediction, labels: string[]): number[] {
  assert.equal(p.error, undefined, `${p.file}: ${p.error}`);
  return labels.map((l) => p.probabilities.find((c) => c.label === l)!.probability);
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i])));
}

/** Every exported format, run by its README's Node.js code in a fresh process, against the app. */
async function assertSnippetParity(t: TestContext, trained: Trained, photos: string[]): Promise<void> {
  const app = await openPredictor(trained.runDir);
  const reference = await app.predict(photos);
  app.dispose();
  const labels = trained.record.vocab;
  // Parity means little on saturated outputs (everything 0 or 1): say what the probabilities were.
  const top = reference.map((r) => r.probability);
  t.diagnostic(`${trained.record.model.arch}: app's top probabilities ${Math.min(...top).toFixed(3)}..${Math.max(...top).toFixed(3)}`);
  assert.ok(Math.min(...top) < 0.999, 'not every prediction is saturated');
  for (const format of ['tfjs', 'onnx'] as const) {
    const { outDir } = trained.exports[format];
    const readme = await readFile(path.join(outDir, 'README.md'), 'utf8');
    const { code } = snippetAfter(readme, format === 'tfjs' ? 'TF.js in Node.js' : 'ONNX Runtime in Node.js');
    const t0 = performance.now();
    const got = await runSnippet(code, [outDir, ...photos]);
    const seconds = (performance.now() - t0) / 1000;
    let worst = 0;
    for (const r of reference) {
      const probs = got.get(r.file);
      assert.ok(probs, `the ${format} snippet printed no result for ${r.file}`);
      worst = Math.max(worst, maxDiff(probs, vector(r, labels)));
    }
    t.diagnostic(`${trained.record.model.arch} ${format}: max |p_exported - p_app| = ${worst.toExponential(2)} over ${photos.length} photos x ${labels.length} classes (fresh process ${seconds.toFixed(1)} s, export ${trained.exportSeconds[format].toFixed(1)} s)`);
    assert.ok(worst <= TOLERANCE, `${format}: ${worst} > ${TOLERANCE}`);
  }
}

async function captureOutput<T>(fn: () => Promise<T>): Promise<{ result: T; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
  const error = mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
  try {
    return { result: await fn(), out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

const KERAS_LAYERS = new Set(['Model', 'Functional', 'InputLayer', 'DepthwiseConv2D', 'Conv2D', 'BatchNormalization', 'ReLU', 'ZeroPadding2D', 'Add', 'GlobalMaxPooling2D', 'GlobalAveragePooling2D', 'Concatenate', 'Dropout', 'Dense', 'Activation', 'MaxPooling2D']);

function layerClasses(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => layerClasses(n, out));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.class_name === 'string' && o.config && typeof o.config === 'object' && 'name' in (o.config as object)) out.add(o.class_name);
    Object.values(o).forEach((v) => layerClasses(v, out));
  }
  return out;
}

describe('export: MobileNetV2-0.35 fine-tuned on real photos', { skip: mobilenetSkip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let root: string;
  let trained: Trained;
  let photos: string[];

  before(async () => {
    await selectBackend();
    ({ dir, cleanup } = await makeTempDir('fs-export-'));
    root = await petsSubset(dir, 16);
    trained = await trainAndExport(dir, root, 'mobilenet_v2_0.35', { path: MOBILENET_V2_035 });
    photos = await testPhotos(dir, root, trained.record);
  });
  after(() => cleanup?.());

  test('writes the model files, metadata.json and README.md', async () => {
    const { record } = trained;
    const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    for (const format of ['tfjs', 'onnx'] as const) {
      const { outDir, files, card } = trained.exports[format];
      assert.deepEqual((await readdir(outDir)).sort(), [...files].sort());
      const onDisk: ModelCard = JSON.parse(await readFile(path.join(outDir, 'metadata.json'), 'utf8'));
      assert.deepEqual(onDisk, card);
      assert.equal(card.modelFormat, format);
      assert.deepEqual(card.labels, record.vocab);
      assert.deepEqual(card.input, { name: 'pixels', layout: 'NHWC', shape: ['batch', SIZE, SIZE, 3], dtype: 'float32', size: SIZE, channels: 'RGB', range: [0, 255] });
      assert.deepEqual(card.output.shape, ['batch', 2]);
      assert.deepEqual(card.preprocessing.normalization.mean, [0.5, 0.5, 0.5]);
      assert.equal(card.architecture.arch, 'mobilenet_v2_0.35');
      assert.match(card.pretrained.licence, /Apache-2.0/);
      assert.deepEqual(card.split, { kind: 'random', validPct: 0.25, seed: 42 });
      assert.deepEqual([card.dataset.found, card.dataset.train, card.dataset.valid], [32, record.dataset.train, record.dataset.valid]);
      assert.deepEqual(card.epochTable.map((r) => r.phase), ['frozen', 'unfrozen']);
      assert.equal(card.validation!.confusion.flat().reduce((a, b) => a + b), record.dataset.valid);
      assert.equal(card.app.version, pkg.version);
      assert.ok(Math.abs(Date.parse(card.exportedAt) - Date.now()) < 10 * 60_000);
      assert.ok(card.verification.maxAbsDiff <= TOLERANCE && card.verification.images.length >= 4, JSON.stringify(card.verification));
      assert.ok(card.verification.images.every((f) => record.topLosses.some((t) => t.relPath === f)), 'verified on the run\'s own validation photos');

      const readme = await readFile(path.join(outDir, 'README.md'), 'utf8');
      for (const needle of ['## Input and output', 'NHWC', '0..255', '## Labels', '| 0 | cat |', '## Training', '| frozen | 0 |', 'Confusion matrix', `seed 42`, pkg.version, card.exportedAt.slice(0, 10)]) {
        assert.ok(readme.includes(needle), `${format} README mentions ${needle}`);
      }
    }
    const modelJson = JSON.parse(await readFile(path.join(trained.exports.tfjs.outDir, 'model.json'), 'utf8'));
    assert.deepEqual(modelJson.userDefinedMetadata.labels, record.vocab);
    const custom = [...layerClasses(modelJson.modelTopology)].filter((c) => !KERAS_LAYERS.has(c));
    assert.deepEqual(custom, [], 'only stock Keras layers: plain TF.js loads it without registering anything');

    const onnx = decodeOnnxModel(await readFile(path.join(trained.exports.onnx.outDir, 'model.onnx')));
    assert.equal(onnx.opsetVersion, 13);
    assert.deepEqual(onnx.graph.inputs[0], { name: 'pixels', elemType: 1, shape: ['batch', SIZE, SIZE, 3] });
    assert.deepEqual(onnx.graph.outputs[0].shape, ['batch', 2]);
    assert.deepEqual(JSON.parse(onnx.metadata.labels), record.vocab);
    assert.equal(onnx.graph.nodes.filter((n) => n.opType === 'BatchNormalization').length, 0, 'BatchNorm folded');
  });

  test('fresh processes running the README code match the app to 1e-4 on real photos', async (t) => {
    await assertSnippetParity(t, trained, photos);
  });

  test('openPredictor reads all three folders alike; an unreadable file gets an error, not an exception', async () => {
    const bad = path.join(dir, 'not-an-image.jpg');
    await writeFile(bad, 'plain text, not a JPEG');
    const files = [...photos.slice(0, 3), bad, path.join(dir, 'missing.jpg')];
    const results: Record<string, ImagePrediction[]> = {};
    for (const [name, folder] of [['run', trained.runDir], ['tfjs', trained.exports.tfjs.outDir], ['onnx', trained.exports.onnx.outDir]] as const) {
      const p = await openPredictor(folder);
      assert.equal(p.format, name);
      assert.deepEqual([p.labels, p.inputSize], [trained.record.vocab, SIZE]);
      results[name] = await p.predict(files);
      p.dispose();
      await assert.rejects(p.predict(files), /disposed/);
    }
    for (const name of ['tfjs', 'onnx']) {
      results[name].slice(0, 3).forEach((r, i) => {
        assert.ok(maxDiff(vector(r, trained.record.vocab), vector(results.run[i], trained.record.vocab)) <= TOLERANCE);
        assert.equal(r.label, results.run[i].label);
        assert.ok(r.probabilities[0].probability >= r.probabilities[1].probability, 'sorted, highest first');
      });
      assert.match(results[name][3].error ?? '', /not an image|text/i);
      assert.equal(results[name][3].label, '');
      assert.match(results[name][4].error ?? '', /does not exist/);
    }
  });

  test('the browser and Python snippets are well-formed code', async (t) => {
    const tfjsReadme = await readFile(path.join(trained.exports.tfjs.outDir, 'README.md'), 'utf8');
    const html = snippetAfter(tfjsReadme, 'TF.js in a browser').code;
    const script = /<script type="module">([\s\S]*)<\/script>/.exec(html)![1];
    const { diagnostics } = ts.transpileModule(script, { reportDiagnostics: true, fileName: 'browser.mjs', compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, allowJs: true } });
    assert.deepEqual(diagnostics?.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), []);
    const onnxReadme = await readFile(path.join(trained.exports.onnx.outDir, 'README.md'), 'utf8');
    const python = snippetAfter(onnxReadme, 'ONNX Runtime in Python');
    assert.equal(python.lang, 'python');
    const ok = await new Promise<boolean | string>((resolve) => {
      const child = spawn('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('error', () => resolve('python3 not found'));
      child.on('close', (code) => resolve(code === 0 || err));
      child.stdin.end(python.code);
    });
    if (ok === 'python3 not found') t.diagnostic('python3 is not installed: the Python snippet was not parsed');
    else assert.equal(ok, true, `the Python snippet parses: ${ok}`);
  });

  test('malformed and foreign folders give errors that name the file and say what to do', async () => {
    const bad = path.join(dir, 'bad');
    await mkdir(bad);
    const fresh = async (name: string, from?: string) => {
      const d = path.join(bad, name);
      if (from) await cp(from, d, { recursive: true });
      else await mkdir(d);
      return d;
    };
    const rejects = (p: string, re: RegExp) => assert.rejects(openPredictor(p), (err: Error) => (assert.match(err.message, re), true));

    await rejects(path.join(bad, 'nope'), /nope does not exist/);
    await rejects(await fresh('empty'), /neither a training run \(no run\.json\) nor an exported model \(no metadata\.json\)/);
    await rejects(photos[0], /is a file\. Pick the folder/);

    const foreignTfjs = await fresh('foreign-tfjs');
    await cp(path.join(MOBILENET_V2_035, 'model.json'), path.join(foreignTfjs, 'model.json'));
    await rejects(foreignTfjs, /holds a TF\.js model\.json but no metadata\.json.*finetune-studio export <run> --format tfjs/);
    const foreignOnnx = await fresh('foreign-onnx');
    await writeFile(path.join(foreignOnnx, 'resnet.onnx'), 'x');
    await rejects(foreignOnnx, /holds an ONNX file but no metadata\.json/);

    const notJson = await fresh('not-json', trained.exports.onnx.outDir);
    await writeFile(path.join(notJson, 'metadata.json'), '{ "format": ');
    await rejects(notJson, /not-json\/metadata\.json is not valid JSON .*Export the run again/);
    const otherCard = await fresh('other-card', trained.exports.onnx.outDir);
    await writeFile(path.join(otherCard, 'metadata.json'), JSON.stringify({ format: 'keras-metadata', labels: ['a'] }));
    await rejects(otherCard, /is not a Finetune Studio model card/);
    const noLabels = await fresh('no-labels', trained.exports.tfjs.outDir);
    const card = JSON.parse(await readFile(path.join(noLabels, 'metadata.json'), 'utf8'));
    await writeFile(path.join(noLabels, 'metadata.json'), JSON.stringify({ ...card, labels: [] }));
    await rejects(noLabels, /metadata\.json is damaged: bad or missing labels/);
    const escape = await fresh('escape', trained.exports.tfjs.outDir);
    await writeFile(path.join(escape, 'metadata.json'), JSON.stringify({ ...card, files: { model: '../../model.json', weights: [] } }));
    await rejects(escape, /damaged: bad or missing files/);

    const cutWeights = await fresh('cut-weights', trained.exports.tfjs.outDir);
    await truncate(path.join(cutWeights, 'weights.bin'), 1000);
    await rejects(cutWeights, /TF\.js model in .*cut-weights does not load: .*weights\.bin.*hold 1000 bytes/);
    const cutOnnx = await fresh('cut-onnx', trained.exports.onnx.outDir);
    await truncate(path.join(cutOnnx, 'model.onnx'), 5000);
    await rejects(cutOnnx, /ONNX Runtime could not load .*cut-onnx\/model\.onnx .*damaged/);
    const moreLabels = await fresh('more-labels', trained.exports.onnx.outDir);
    const onnxCard = JSON.parse(await readFile(path.join(moreLabels, 'metadata.json'), 'utf8'));
    await writeFile(path.join(moreLabels, 'metadata.json'), JSON.stringify({ ...onnxCard, labels: ['cat', 'dog', 'hamster'] }));
    await rejects(moreLabels, /does not match the model file: the ONNX output is \[batch,2\] for 3 labels/);

    await rejects(path.join(trained.runDir, 'model'), /saved weights inside a training run; pick the run folder/);
    const brokenRun = await fresh('broken-run', trained.runDir);
    await writeFile(path.join(brokenRun, 'run.json'), '{');
    await rejects(brokenRun, /run\.json is not valid JSON/);
    const unsavedRun = await fresh('unsaved-run', trained.runDir);
    await rm(path.join(unsavedRun, 'model'), { recursive: true });
    await rejects(unsavedRun, /no saved model .*did not finish saving/);
    await assert.rejects(exportRun(trained.exports.onnx.outDir, { format: 'onnx', outDir: path.join(bad, 'x') }), /not a training run folder: it has no run\.json/);

    // A run whose recorded backbone path is gone still rebuilds from the weights its settings name.
    const movedRun = await fresh('moved-run', trained.runDir);
    const movedRecord = JSON.parse(await readFile(path.join(movedRun, 'run.json'), 'utf8'));
    await writeFile(path.join(movedRun, 'run.json'), JSON.stringify({ ...movedRecord, model: { ...movedRecord.model, weights: path.join(bad, 'gone', 'model.json') } }));
    const moved = await openPredictor(movedRun);
    assert.equal((await moved.predict(photos.slice(0, 1)))[0].error, undefined);
    moved.dispose();

    // A known file inside the folder is accepted for the folder.
    const p = await openPredictor(path.join(trained.exports.onnx.outDir, 'metadata.json'));
    assert.equal(p.format, 'onnx');
    p.dispose();
  });

  test('export target: refuses a folder of other files, replaces an earlier export, leaves nothing behind when cancelled', async () => {
    const busy = path.join(dir, 'busy');
    await mkdir(busy);
    await writeFile(path.join(busy, 'holiday.jpg'), 'x');
    await assert.rejects(exportRun(trained.runDir, { format: 'onnx', outDir: busy }), /busy already holds other files \(holiday\.jpg\); choose a new or empty folder/);
    assert.deepEqual(await readdir(busy), ['holiday.jpg']);
    await assert.rejects(exportRun(trained.runDir, { format: 'onnx', outDir: trained.runDir }), /is the run folder itself/);

    const again = await exportRun(trained.runDir, { format: 'onnx', outDir: trained.exports.onnx.outDir });
    assert.deepEqual((await readdir(again.outDir)).sort(), ['README.md', 'metadata.json', 'model.onnx']);

    // The dataset has moved away: verification falls back to generated images, and says so.
    const orphan = path.join(dir, 'orphan-run');
    await cp(trained.runDir, orphan, { recursive: true });
    const orphanRecord = JSON.parse(await readFile(path.join(orphan, 'run.json'), 'utf8'));
    await writeFile(path.join(orphan, 'run.json'), JSON.stringify({ ...orphanRecord, dataset: { ...orphanRecord.dataset, root: path.join(dir, 'moved-away') } }));
    const orphanExport = await exportRun(orphan, { format: 'onnx', outDir: path.join(dir, 'orphan-onnx') });
    assert.deepEqual(orphanExport.card.verification.images, ['generated image 1', 'generated image 2']);
    assert.ok(orphanExport.card.verification.maxAbsDiff <= TOLERANCE);

    const cancelledDir = path.join(dir, 'cancelled');
    const controller = new AbortController();
    const stages: string[] = [];
    const job = exportRun(trained.runDir, {
      format: 'tfjs',
      outDir: cancelledDir,
      signal: controller.signal,
      onProgress: (p) => {
        stages.push(p.stage);
        if (p.done === 2) controller.abort();
      },
    });
    await assert.rejects(job, { name: 'AbortError' });
    assert.ok(stages.length >= 3);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('cancelled')), [], 'no folder, no temporary folder');
  });

  test('CLI: export and predict', async () => {
    const out = path.join(dir, 'cli-onnx');
    const exported = await captureOutput(() => exportCommand.run([trained.runDir, '--format', 'onnx', '--out', out]));
    assert.equal(exported.result, 0, exported.err);
    assert.match(exported.out, /Exported mobilenet_v2_0\.35 \(2 labels: cat, dog\) as ONNX/);
    assert.match(exported.out, /Verified with onnxruntime-node .* on \d+ image\(s\): largest probability difference from the app/);
    await assert.rejects(exportCommand.run([trained.runDir]), (e: Error) => e instanceof UsageError && /--format tfjs or --format onnx/.test(e.message));
    await assert.rejects(exportCommand.run([trained.runDir, '--format', 'keras']), UsageError);

    const predicted = await captureOutput(() => predictCommand.run([out, photos[0], path.join(dir, 'missing.jpg')]));
    assert.equal(predicted.result, 1, 'one image could not be read');
    assert.match(predicted.out, new RegExp(`${path.basename(photos[0])}\\s+(cat|dog)\\s+0\\.\\d{4}\\s+\\((cat|dog) 0\\.\\d{4}, (cat|dog) 0\\.\\d{4}\\)`));
    assert.match(predicted.out, /missing\.jpg\s+✘ the file does not exist/);
    assert.match(predicted.err, /1 of 2 image\(s\) could not be classified/);

    const asJson = await captureOutput(() => predictCommand.run([trained.exports.tfjs.outDir, root, '--json']));
    assert.equal(asJson.result, 0);
    const parsed = JSON.parse(asJson.out) as { model: { format: string }; predictions: ImagePrediction[] };
    assert.equal(parsed.model.format, 'tfjs');
    assert.equal(parsed.predictions.length, 32, 'a folder argument means every image in it');
    await assert.rejects(predictCommand.run([out]), UsageError);
  });
});

describe('export: ResNet-18 (random start) fine-tuned on real photos', { skip: dataSkip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    await selectBackend();
    ({ dir, cleanup } = await makeTempDir('fs-export-resnet-'));
  });
  after(() => cleanup?.());

  test('TF.js and ONNX, reloaded in fresh processes, match the app to 1e-4 on real photos', async (t) => {
    const root = await petsSubset(dir, 12);
    const trained = await trainAndExport(dir, root, 'resnet18', 'random');
    const onnx = trained.exports.onnx.card.architecture.onnx!;
    assert.equal(onnx.keptBatchNorms, 0);
    assert.equal(onnx.foldedBatchNorms, 22, '20 in the body, 2 in the head');
    assert.equal(onnx.opCounts.Pad, undefined, 'every ZeroPadding2D folded into its convolution or the max-pool');
    await assertSnippetParity(t, trained, await testPhotos(dir, root, trained.record));
  });
});
