#!/usr/bin/env node
/**
 * `npm run serve`: the app without Electron. Starts the engine worker and the web host on
 * 127.0.0.1, prints the URL with its access token, and stops cleanly on Ctrl-C.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ApiDispatcher } from '../api/dispatch.js';
import { appVersion } from '../api/app-version.js';
import { defaultDataDir, runsDirIn } from '../api/host-paths.js';
import { defaultCacheDir } from '../engine/paths.js';
import { WorkerClient } from '../worker/worker-client.js';
import { startWebHost } from './server.js';

const USAGE = `Usage: npm run serve -- [--port <n>] [--data-dir <dir>] [--cache-dir <dir>]

Serves Finetune Studio to a browser on this machine (127.0.0.1 only) and prints a URL with a
one-time access token. On a remote GPU machine, forward the port first:
  ssh -L 7860:127.0.0.1:7860 gpu-box    then on gpu-box: npm run serve -- --port 7860

  --port <n>        port to listen on (default 7860; 0 picks a free one)
  --data-dir <dir>  where training runs are kept (default: $FINETUNE_STUDIO_DATA or the desktop app's folder)
  --cache-dir <dir> decoded images, datasets, weights (default: $FINETUNE_STUDIO_CACHE or ~/.cache/finetune-studio)`;

/** The repository (or installed package) root: the nearest folder above this file with package.json. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('Cannot find the Finetune Studio package folder.');
    dir = up;
  }
  return dir;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '7860' },
      'data-dir': { type: 'string' },
      'cache-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a whole number from 0 to 65535; got ${values.port}.`);
  const dataDir = path.resolve(values['data-dir'] ?? defaultDataDir());
  const paths = { cacheDir: path.resolve(values['cache-dir'] ?? defaultCacheDir()), runsDir: runsDirIn(dataDir) };
  const worker = new WorkerClient();
  let dispatcher: ApiDispatcher | undefined;
  const host = await startWebHost({
    rendererDir: path.join(packageRoot(), 'dist', 'renderer'),
    uploadsDir: path.join(os.tmpdir(), `finetune-studio-uploads-${process.pid}`),
    downloadsRoot: paths.runsDir,
    port,
    createApi: (resolveUpload) => (dispatcher = new ApiDispatcher(worker, paths, { mode: 'web', version: appVersion(), resolveUpload })),
  }).catch((err: NodeJS.ErrnoException) => {
    worker.close();
    if (err.code === 'EADDRINUSE') throw new Error(`Port ${port} is in use (another Finetune Studio?). Pick another with --port, or --port 0 for any free one.`);
    throw err;
  });
  console.log(`Finetune Studio is running. Open this URL in a browser on this machine (or through an SSH tunnel):\n\n  ${host.url}\n`);
  console.log(`Runs: ${paths.runsDir}\nCache: ${paths.cacheDir}\nPress Ctrl-C to stop.`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('Stopping: cancelling running jobs (a training run keeps what it learned).');
    await dispatcher?.cancelAll();
    await host.close();
    worker.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: Error) => {
  console.error(`Error: ${err.message}`);
  process.exit(1);
});
