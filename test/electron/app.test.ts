/**
 * The real desktop app through Playwright's Electron driver: the sandboxed window exposes only
 * `window.studio`, and the wizard trains, predicts and exports through IPC and the utilityProcess
 * worker. Needs Electron's binary, which CI does not download (ELECTRON_SKIP_BINARY_DOWNLOAD=1):
 * there the test reports itself skipped and why.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { _electron as electron, type ElectronApplication, type Page } from 'playwright-core';
import { makeTempDir } from '../helpers/images.js';
import { PETS_SAMPLE, petsSubset, REPO_ROOT, SHARED_DIR, sharedSkipReason } from '../helpers/shared.js';
import { SCREENSHOTS } from '../e2e/harness.js';

/** The Electron executable, or why there is none. */
function electronBinary(): { path?: string; skip: string | false } {
  const pkg = path.join(REPO_ROOT, 'node_modules', 'electron');
  const pathTxt = path.join(pkg, 'path.txt');
  if (!existsSync(pathTxt)) {
    return { skip: `Electron's binary is not installed (${pathTxt} is missing: npm was run with ELECTRON_SKIP_BINARY_DOWNLOAD=1, as CI does, or offline). Run \`npm install\` with network access to add it` };
  }
  const exe = path.join(pkg, 'dist', readFileSync(pathTxt, 'utf8').trim());
  if (!existsSync(exe)) return { skip: `Electron's binary ${exe} is missing; reinstall electron` };
  if (!existsSync(path.join(REPO_ROOT, 'dist', 'src-main', 'electron', 'main.js'))) return { skip: 'the app is not built: run `npm run build`' };
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return { skip: 'no display: run under xvfb-run to test the desktop app' };
  return { path: exe, skip: false };
}

const binary = electronBinary();
const skip = binary.skip || sharedSkipReason('data', 'oxford-pets-sample') || sharedSkipReason('weights', 'mobilenet_v2_0.35_224_no_top');

describe('the desktop app (Electron)', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let app: ElectronApplication;
  let page: Page;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('fs-electron-'));
    app = await electron.launch({
      executablePath: binary.path,
      args: [REPO_ROOT],
      env: { ...process.env, FINETUNE_STUDIO_DATA: path.join(dir, 'data'), FINETUNE_STUDIO_CACHE: path.join(dir, 'cache'), FINETUNE_WEIGHTS_DIR: path.join(SHARED_DIR, 'weights') },
    });
    page = await app.firstWindow();
  });
  after(async () => {
    await app?.close();
    await cleanup?.();
  });

  test('the renderer is sandboxed and sees only the narrow API', async () => {
    const exposed = await page.evaluate(() => {
      const w = globalThis as unknown as { studio: object; require?: unknown; process?: unknown };
      return { studio: Object.keys(w.studio).sort(), require: typeof w.require, process: typeof w.process };
    });
    assert.deepEqual(exposed, { studio: ['invoke', 'onEvent', 'pathForFile'], require: 'undefined', process: 'undefined' });
    await assert.rejects(page.evaluate(() => (globalThis as unknown as { studio: { invoke(c: string, p: unknown): Promise<unknown> } }).studio.invoke('fs:read', {})), /unknown channel/);
    // Navigation away from the app is blocked.
    await page.evaluate(() => ((globalThis as unknown as { location: { href: string } }).location.href = 'https://example.com/'));
    await page.waitForTimeout(500);
    assert.match(page.url(), /^app:\/\/studio\//);
  });

  test('data, model, train 1+1, test and export through IPC and the utilityProcess worker', { timeout: 300_000 }, async () => {
    const photos = await petsSubset(dir, 16);
    await page.fill('#folder-path', photos);
    await page.press('#folder-path', 'Enter');
    await page.getByText('32 images found: 26 for training, 6 for validation').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: /Model$/ }).click();
    await page.getByRole('radio', { name: /mobilenet_v2_0\.35/ }).check();
    await page.fill('#size', '32');
    await page.getByRole('button', { name: 'Next: train' }).click();
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByTestId('run-result').waitFor({ timeout: 180_000 });
    assert.equal(await page.getByRole('table', { name: 'Epochs: unfrozen' }).getByRole('row').count(), 2);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'electron-train.png') });
    await page.getByRole('button', { name: 'Next: test it on new photos' }).click();
    const unseen = path.join(PETS_SAMPLE, (await readdir(PETS_SAMPLE)).sort().filter((n) => /^[A-Z]/.test(n))[300]);
    await page.getByTestId('file-input').setInputFiles(unseen);
    await page.getByTestId('prediction').first().getByText(/(cat|dog) \d+\.\d%/).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Next: export' }).click();
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await page.getByRole('button', { name: 'Show in folder' }).waitFor({ timeout: 120_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'electron-export.png') });
  });
});
