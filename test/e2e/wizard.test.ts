/**
 * The whole wizard in a real browser against browser mode (`npm run serve`'s code), on real Pets
 * photos with the real MobileNetV2 0.35 backbone at a small image size: folder + is-cat rule,
 * counts, a previewed batch, lr_find, 1+1 epochs with the table and charts filling in, a
 * prediction on a photo the model never saw, an export that loads again. Then: cancel mid-run, and
 * a folder with broken files. A screenshot of every step goes to test-results/e2e/.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/images.js';
import { PETS_SAMPLE, petsSubset, sharedSkipReason } from '../helpers/shared.js';
import { browserSkipReason, openBrowser, startServer, type BrowserSession, type Server } from './harness.js';

const skip = browserSkipReason() || sharedSkipReason('data', 'oxford-pets-sample') || sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top');
const TRAIN_TIMEOUT = 180_000;

describe('the wizard in a browser (browser mode)', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: Server;
  let s: BrowserSession;
  let photos: string;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('fs-e2e-'));
    photos = await petsSubset(dir, 16);
    server = await startServer(dir);
    s = await openBrowser();
  });
  after(async () => {
    await s?.close();
    await server?.stop();
    await cleanup?.();
  });

  /** The first 16 cats and dogs by name are the training folder; these come later in the sample. */
  async function unseenPhotos(): Promise<string[]> {
    const names = (await readdir(PETS_SAMPLE)).sort();
    const cat = names.filter((n) => /^[A-Z]/.test(n))[300];
    const dog = names.filter((n) => /^[a-z]/.test(n))[300];
    return [path.join(PETS_SAMPLE, cat), path.join(PETS_SAMPLE, dog)];
  }

  /** Runs a test body; on failure saves a screenshot of what the page showed and prints the server's log. */
  async function withShot(name: string, body: () => Promise<void>) {
    try {
      await body();
    } catch (err) {
      await s.shot(`FAILED-${name}`).catch(() => {});
      console.error(`The server's last output (engine worker included):\n${server.output().slice(-4000)}`);
      throw err;
    }
  }

  async function chooseFolder(folder: string) {
    const { page } = s;
    await page.getByRole('button', { name: /Data$/ }).click();
    await page.fill('#folder-path', folder);
    await page.press('#folder-path', 'Enter');
  }

  async function chooseModel(opts: { size: number; freeze: number; epochs: number }) {
    const { page } = s;
    await page.getByRole('button', { name: /Model$/ }).click();
    await page.getByRole('radio', { name: /mobilenet_v2_0\.35/ }).check();
    await page.fill('#size', String(opts.size));
    await page.fill('#freeze-epochs', String(opts.freeze));
    await page.fill('#epochs', String(opts.epochs));
  }

  test('the whole flow: data, preview, model, lr_find, train, test, export, recent runs', { timeout: 420_000 }, () => withShot('flow', async () => {
    const { page } = s;
    // The token in the URL is swapped for a cookie and leaves the address bar.
    await page.goto(server.url);
    assert.doesNotMatch(page.url(), /token=/);
    await page.getByRole('heading', { name: '1. Your photos' }).waitFor();
    await page.getByText(/WebAssembly|native CPU|GPU|JavaScript CPU/).first().waitFor();

    // 1. Data: folder, is-cat rule (the default), live counts with example names.
    await chooseFolder(photos);
    const classes = page.getByRole('table', { name: 'Classes' });
    await classes.getByRole('row', { name: /^cat 16 13 3 Abyssinian_/ }).waitFor();
    await classes.getByRole('row', { name: /^dog 16 13 3 american_bulldog_/ }).waitFor();
    await page.getByText('32 images found: 26 for training, 6 for validation').waitFor();
    // The label rule updates the counts live: by folder, no photo is in a class folder.
    await page.getByRole('radio', { name: /The name of the folder/ }).check();
    await page.getByText(/Cannot train: None of the 32 images could be used/).waitFor();
    await page.getByRole('radio', { name: /Cat if the file name starts/ }).check();
    await classes.getByRole('row', { name: /^cat 16/ }).waitFor();
    await s.shot('01-data');

    // 3 then 2: a small model and size first, so the preview decodes at the training size.
    await chooseModel({ size: 32, freeze: 1, epochs: 1 });
    await page.getByRole('button', { name: /Preview$/ }).click();
    const trainGrid = page.getByRole('list', { name: 'Training batch' });
    await trainGrid.getByRole('listitem').nth(11).waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('list', { name: 'Validation batch' }).getByRole('listitem').count(), 6);
    const labels = await trainGrid.locator('.cell-title').allTextContents();
    assert.ok(labels.every((l) => l === 'cat' || l === 'dog'), labels.join());
    const firstBefore = await trainGrid.locator('.cell-sub').allTextContents();
    await page.getByRole('button', { name: 'Reshuffle' }).click();
    await page.getByText('(epoch 2 order, 32×32 px)').waitFor();
    const firstAfter = await trainGrid.locator('.cell-sub').allTextContents();
    assert.notDeepEqual(firstAfter, firstBefore, 'reshuffle shows another batch');
    await page.getByRole('list', { name: 'Class balance' }).waitFor();
    await s.shot('02-preview');

    // 3. Model: backend shown, weights cached, lr_find plots and suggests; one click uses it.
    await page.getByRole('button', { name: 'Next: choose a model' }).click();
    await page.getByTestId('backend').getByText(/^Compute: /).waitFor();
    await page.getByRole('row', { name: /mobilenet_v2_0\.35.*ready/ }).waitFor();
    await page.getByRole('button', { name: 'Find a learning rate' }).click();
    const useValley = page.getByRole('button', { name: /^Use .* \(valley, fastai's default\)$/ });
    await useValley.waitFor({ timeout: 120_000 });
    await page.getByRole('img', { name: 'Loss against learning rate' }).waitFor();
    const suggested = /^Use (\S+) /.exec((await useValley.textContent()) ?? '')![1];
    await useValley.click();
    const lr = Number(await page.inputValue('#lr'));
    assert.ok(lr > 1e-7 && lr < 10, `the learning rate field took the suggestion ${suggested}: ${lr}`);
    await s.shot('03-model-lr-find');
    // Back to the lesson's rate so the run below is the lesson's recipe.
    await page.fill('#lr', '0.002');
    await page.press('#lr', 'Tab');

    // 4. Train 1+1 epochs: progress, both fastai tables, both charts, then interpretation.
    await page.getByRole('button', { name: 'Next: train' }).click();
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByRole('progressbar').first().waitFor();
    await page.getByTestId('run-result').waitFor({ timeout: TRAIN_TIMEOUT });
    const frozen = page.getByRole('table', { name: 'Epochs: frozen' });
    const unfrozen = page.getByRole('table', { name: 'Epochs: unfrozen' });
    assert.match((await frozen.getByRole('row').nth(1).textContent()) ?? '', /^0\d\.\d{6}\d\.\d{6}\d\.\d{6}\d\d:\d\d$/);
    assert.equal(await unfrozen.getByRole('row').count(), 2);
    await page.getByRole('img', { name: 'Smoothed training loss per batch' }).waitFor();
    await page.getByRole('img', { name: 'Loss and error rate per epoch' }).waitFor();
    await page.getByRole('table', { name: 'Confusion matrix' }).waitFor();
    await page.getByRole('list', { name: 'Top losses' }).getByRole('listitem').first().waitFor();
    await page.getByText(/^Finished$/).waitFor();
    await s.shot('04-train');

    const runs = await readdir(path.join(dir, 'data', 'runs'));
    assert.equal(runs.length, 1);
    const record = JSON.parse(await readFile(path.join(dir, 'data', 'runs', runs[0], 'run.json'), 'utf8'));
    assert.equal(record.status, 'completed');
    assert.equal(record.epochs.length, 2);

    // 5. Test: photos the model never saw, uploaded from the browser.
    await page.getByRole('button', { name: 'Next: test it on new photos' }).click();
    await page.getByTestId('file-input').setInputFiles(await unseenPhotos());
    const predictions = page.getByTestId('prediction');
    await predictions.nth(1).waitFor({ timeout: 60_000 });
    for (let i = 0; i < 2; i++) {
      const text = (await predictions.nth(i).textContent()) ?? '';
      assert.match(text, /(cat|dog) \d+\.\d%/, text);
      assert.equal(await predictions.nth(i).locator('.probs li').count(), 2, 'a probability for every class');
    }
    await s.shot('05-test');

    // 6. Export as TF.js, then check that the files load and predict.
    await page.getByRole('button', { name: 'Next: export' }).click();
    await page.getByRole('radio', { name: /TensorFlow\.js/ }).check();
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    const result = page.getByTestId('export-result');
    await result.waitFor({ timeout: 120_000 });
    const outDir = ((await result.locator('code').first().textContent()) ?? '').trim();
    const files = await readdir(outDir);
    assert.ok(files.includes('model.json'), files.join());
    await s.shot('06-export');
    // The download links serve the exported files to the browser (browser mode's "get the files").
    const link = result.getByRole('link', { name: 'model.json' });
    const response = await page.request.get(new URL((await link.getAttribute('href'))!, page.url()).href);
    assert.equal(response.status(), 200);
    assert.ok(JSON.parse(await response.text()).modelTopology, 'model.json downloads intact');
    const { openPredictor } = await import('../../src-main/engine/predict/predict.js');
    const predictor = await openPredictor(outDir);
    try {
      const [p] = await predictor.predict([(await unseenPhotos())[0]]);
      assert.ok(['cat', 'dog'].includes(p.label), JSON.stringify(p));
    } finally {
      predictor.dispose();
    }

    // Recent runs: the run is listed with its settings and reopens for testing.
    await page.getByRole('button', { name: 'Recent runs' }).click();
    const row = page.getByRole('table', { name: 'Recent runs' }).getByRole('row').nth(1);
    await row.getByText('mobilenet_v2_0.35').waitFor();
    await s.shot('07-recent-runs');
    await row.getByRole('button', { name: 'Test' }).click();
    await page.getByRole('heading', { name: '5. Test on new photos' }).waitFor();

    assert.deepEqual(s.errors, [], 'no console errors (CSP violations are console errors)');
  }));

  test('Cancel stops training within a batch and keeps the model', { timeout: 300_000 }, () => withShot('cancel', async () => {
    const { page } = s;
    await chooseModel({ size: 64, freeze: 1, epochs: 6 });
    await page.getByRole('button', { name: /Train$/ }).click();
    await page.getByRole('button', { name: /^(Start training|Train again)$/ }).click();
    // Wait until batches are running, then cancel.
    await page.getByText(/batch \d+ of \d+ .* images\/s .* left in this phase/).waitFor({ timeout: TRAIN_TIMEOUT });
    await s.shot('08-train-live');
    const cancelledAt = Date.now();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByText('Cancelled — the model so far was saved').waitFor({ timeout: 60_000 });
    const took = (Date.now() - cancelledAt) / 1000;
    assert.ok(took < 30, `cancel took ${took}s`);
    await s.shot('08b-train-cancelled');
    const runsDir = path.join(dir, 'data', 'runs');
    const records = await Promise.all((await readdir(runsDir)).map(async (r) => JSON.parse(await readFile(path.join(runsDir, r, 'run.json'), 'utf8'))));
    const cancelled = records.find((r) => r.status === 'cancelled');
    assert.ok(cancelled, 'a run.json with status cancelled');
    assert.ok(cancelled.epochs.length < 7, 'stopped before the last epoch');
    // The saved model still predicts.
    await page.getByRole('button', { name: 'Next: test it on new photos' }).click();
    await page.getByTestId('file-input').setInputFiles((await unseenPhotos()).slice(0, 1));
    await page.getByTestId('prediction').first().getByText(/(cat|dog) \d+\.\d%/).waitFor({ timeout: 60_000 });
    assert.deepEqual(s.errors, []);
  }));

  test('quick mode: features once, then head epochs on them', { timeout: 300_000 }, () => withShot('quick', async () => {
    const { page } = s;
    await page.getByRole('button', { name: /Model$/ }).click();
    await page.getByRole('radio', { name: /mobilenet_v2_0\.35/ }).check();
    await page.fill('#size', '32');
    await page.getByRole('radio', { name: /Quick \(head only, on cached features\)/ }).check();
    await page.getByText(/only the new head trains, in seconds per epoch/).waitFor();
    await page.fill('#quick-epochs', '3');
    await page.fill('#epochs', '0');
    const before = new Set(await readdir(path.join(dir, 'data', 'runs')));
    await page.getByRole('button', { name: /Train$/ }).click();
    await page.getByRole('button', { name: /^(Start training|Train again)$/ }).click();
    await page.getByText(/^Finished$/).waitFor({ timeout: TRAIN_TIMEOUT });
    const table = page.getByRole('table', { name: 'Epochs: quick' });
    assert.equal(await table.getByRole('row').count(), 4, 'header + 3 head epochs');
    await s.shot('10-train-quick');
    const added = (await readdir(path.join(dir, 'data', 'runs'))).filter((r) => !before.has(r));
    assert.equal(added.length, 1);
    const record = JSON.parse(await readFile(path.join(dir, 'data', 'runs', added[0], 'run.json'), 'utf8'));
    assert.equal(record.status, 'completed');
    assert.deepEqual(record.epochs.map((r: { phase: string }) => r.phase), ['quick', 'quick', 'quick']);
    assert.equal(record.config.mode, 'quick');
    assert.deepEqual(s.errors, []);
  }));

  test('a folder with broken files lists them as skipped, with the reason', { timeout: 120_000 }, () => withShot('broken', async () => {
    const { page } = s;
    const broken = await petsSubset(path.join(dir, 'broken'), 6);
    await writeFile(path.join(broken, 'Bengal_broken.jpg'), 'this is not a photo');
    const real = await readFile(path.join(PETS_SAMPLE, (await readdir(PETS_SAMPLE)).sort()[0]));
    await writeFile(path.join(broken, 'boxer_truncated.jpg'), real.subarray(0, 300));
    await writeFile(path.join(broken, 'pug_empty.jpg'), '');
    await chooseFolder(broken);
    await page.getByText('15 images found').waitFor();
    await page.getByRole('button', { name: /Preview$/ }).click();
    const skipped = page.locator('details.skipped').filter({ hasText: 'could not be decoded' });
    await skipped.waitFor({ timeout: 60_000 });
    const text = (await skipped.textContent()) ?? '';
    assert.match(text, /3 files could not be decoded/);
    assert.match(text, /Bengal_broken\.jpg: the file contains text, not image data/);
    assert.match(text, /boxer_truncated\.jpg: /);
    assert.match(text, /pug_empty\.jpg: /);
    await s.shot('09-broken-files');
    // The Data step lists them too, from now on.
    await page.getByRole('button', { name: /Data$/ }).click();
    await page.getByText('3 files skipped').waitFor();
    assert.deepEqual(s.errors, []);
  }));
});
