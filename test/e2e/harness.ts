/**
 * Browser-mode harness for end-to-end tests: starts the real web host (`src-main/web/main.ts`, the
 * same code as `npm run serve`) in a child process with its own data and cache folders, and a
 * headless Debian Chromium driven by playwright-core, recording console errors (CSP violations
 * included) so a test can insist there were none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT, SHARED_DIR } from '../helpers/shared.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const RENDERER_INDEX = path.join(REPO_ROOT, 'dist', 'renderer', 'index.html');
export const SCREENSHOTS = path.join(REPO_ROOT, 'test-results', 'e2e');

/** Why browser tests cannot run here, or false. */
export function browserSkipReason(): string | false {
  if (!existsSync(CHROMIUM)) return `needs Chromium at ${CHROMIUM} (\`apt-get install -y chromium\`, as .ci/run does)`;
  if (!existsSync(RENDERER_INDEX)) return `needs the built renderer ${RENDERER_INDEX} (\`npm run build:renderer\`; npm test runs it)`;
  return false;
}

export interface Server {
  url: string;
  origin: string;
  output: () => string;
  stop(): Promise<void>;
}

export async function startServer(dir: string, env: NodeJS.ProcessEnv = {}): Promise<Server> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'src-main', 'web', 'main.ts'), '--port', '0', '--data-dir', path.join(dir, 'data'), '--cache-dir', path.join(dir, 'cache')],
    { cwd: REPO_ROOT, env: { ...process.env, FINETUNE_WEIGHTS_DIR: path.join(SHARED_DIR, 'weights'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The server printed no URL within 60 s:\n${out}`)), 60_000);
    const check = () => {
      const m = /(http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => reject(new Error(`The server exited (${code}) before printing its URL:\n${out}`)));
  });
  return {
    url,
    origin: new URL(url).origin,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

export interface BrowserSession {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far (CSP violations are console errors). */
  errors: string[];
  shot(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Playwright gives every launch a fresh temporary profile (user data dir), removed on close. */
export async function openBrowser(): Promise<BrowserSession> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return {
    browser,
    context,
    page,
    errors,
    shot: async (name) => {
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
    close: async () => {
      await context.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}
