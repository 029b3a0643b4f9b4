/**
 * The desktop app's main process: one window running the wizard, the engine in a utilityProcess,
 * and the API over IPC (validated by the same dispatcher browser mode uses).
 *
 * Security: contextIsolation + sandbox, no nodeIntegration, a preload that exposes three functions
 * (never ipcRenderer), the UI served from a privileged app:// scheme with a strict CSP, navigation
 * and new windows blocked (http(s) links open in the system browser), permission requests denied,
 * IPC accepted only from our own window's main frame, and every payload validated.
 */
import { app, BrowserWindow, dialog, ipcMain, net, protocol, screen, session, shell, utilityProcess, type IpcMainInvokeEvent, type WebContents } from 'electron';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { appVersion } from '../api/app-version.js';
import { CONTENT_SECURITY_POLICY, IPC_CHANNELS, type AppEvent } from '../api/contract.js';
import { ApiDispatcher } from '../api/dispatch.js';
import { DATA_ENV, PRODUCT_NAME, runsDirIn } from '../api/host-paths.js';
import { defaultCacheDir } from '../engine/paths.js';
import type { FromWorker } from '../worker/protocol.js';
import { WorkerClient, type WorkerLauncher } from '../worker/worker-client.js';
import { RENDERER_MIME_TYPES } from '../api/mime-types.js';
import { APP_SCHEME, APP_URL, appUrlToFile, isAllowedNavigation, isSafeExternalUrl } from './security.js';
import { fitToDisplays, loadWindowState, MIN_SIZE, saveWindowState, type WindowState } from './window-state.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/src-main/electron -> dist/renderer */
const RENDERER_DIR = path.resolve(here, '..', '..', 'renderer');
const PRELOAD = path.join(here, 'preload.cjs');

app.setName(PRODUCT_NAME);
// Chromium's own caches (GPU shader cache, session data) live under the user data folder.
if (process.env[DATA_ENV]) app.setPath('userData', path.resolve(process.env[DATA_ENV]!));
app.setPath('sessionData', app.getPath('userData'));

protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

/** The engine in an Electron utilityProcess (a Node.js child without Chromium), same protocol as the CLI's fork. */
const utilityLauncher: WorkerLauncher = (entry) => {
  const child = utilityProcess.fork(entry, [], { serviceName: 'Finetune Studio engine', stdio: 'inherit' });
  return {
    send: (m) => child.postMessage(m),
    onMessage: (h) => child.on('message', (m: FromWorker) => h(m)),
    onExit: (h) => child.on('exit', (code) => h(code)),
    kill: () => {
      child.kill();
    },
  };
};

let mainWindow: BrowserWindow | null = null;

function hardenContents(contents: WebContents): void {
  contents.on('will-navigate', (e, url) => {
    if (!isAllowedNavigation(url)) e.preventDefault();
  });
  contents.on('will-redirect', (e, url) => {
    if (!isAllowedNavigation(url)) e.preventDefault();
  });
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

async function createWindow(dispatcher: ApiDispatcher): Promise<void> {
  const stateFile = path.join(app.getPath('userData'), 'window-state.json');
  const saved = await loadWindowState(stateFile);
  const fitted = fitToDisplays(saved, screen.getAllDisplays().map((d) => d.workArea));
  const win = new BrowserWindow({
    ...fitted,
    minWidth: MIN_SIZE.width,
    minHeight: MIN_SIZE.height,
    show: false,
    title: PRODUCT_NAME,
    backgroundColor: '#f6f7f9',
    webPreferences: {
      preload: PRELOAD,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
      spellcheck: false,
    },
  });
  mainWindow = win;
  hardenContents(win.webContents);
  if (fitted.maximized) win.maximize();
  win.once('ready-to-show', () => win.show());

  const remember = () => {
    const state: WindowState = { ...(win.isMaximized() ? win.getNormalBounds() : win.getBounds()), maximized: win.isMaximized() };
    void saveWindowState(stateFile, state).catch(() => {});
  };
  win.on('close', remember);
  win.on('closed', () => {
    mainWindow = null;
    void dispatcher.cancelAll();
  });
  await win.loadURL(APP_URL);
}

function senderIsOurWindow(e: IpcMainInvokeEvent): boolean {
  return !!mainWindow && e.sender === mainWindow.webContents && e.senderFrame === mainWindow.webContents.mainFrame && isAllowedNavigation(e.senderFrame.url);
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on('second-instance', () => {
    if (!mainWindow) return;
    if (mainWindow.isMinimized()) mainWindow.restore();
    mainWindow.focus();
  });
  app.on('web-contents-created', (_e, contents) => hardenContents(contents));

  await app.whenReady();

  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  protocol.handle(APP_SCHEME, async (request) => {
    const file = appUrlToFile(request.url, RENDERER_DIR);
    const isFile = file ? (await stat(file).catch(() => undefined))?.isFile() : false;
    if (!file || !isFile) return new Response('Not found', { status: 404 });
    const res = await net.fetch(pathToFileURL(file).href);
    return new Response(res.body, {
      status: 200,
      headers: { 'Content-Type': RENDERER_MIME_TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Security-Policy': CONTENT_SECURITY_POLICY, 'X-Content-Type-Options': 'nosniff' },
    });
  });

  const paths = { cacheDir: defaultCacheDir(), runsDir: runsDirIn(app.getPath('userData')) };
  const worker = new WorkerClient(utilityLauncher);
  const dispatcher = new ApiDispatcher(worker, paths, {
    mode: 'electron',
    version: appVersion(),
    pickFolder: async (title) => {
      const options = { title: title ?? 'Choose a folder', properties: ['openDirectory' as const, 'dontAddToRecent' as const] };
      const r = mainWindow ? await dialog.showOpenDialog(mainWindow, options) : await dialog.showOpenDialog(options);
      return r.canceled ? null : (r.filePaths[0] ?? null);
    },
    showInFolder: async (p) => {
      shell.showItemInFolder(p);
      return true;
    },
  });
  dispatcher.onEvent((event: AppEvent) => mainWindow?.webContents.send(IPC_CHANNELS.event, event));

  ipcMain.handle(IPC_CHANNELS.invoke, async (e, message: unknown) => {
    if (!senderIsOurWindow(e)) throw new Error('Refused: the request did not come from the Finetune Studio window.');
    const { channel, payload } = (typeof message === 'object' && message !== null ? message : {}) as { channel?: unknown; payload?: unknown };
    try {
      return await dispatcher.handle(channel, payload);
    } catch (err) {
      // Keep the name in the message: Electron passes only the message across, and the renderer
      // tells "cancelled" (AbortError) from failures by it.
      const e2 = err instanceof Error ? err : new Error(String(err));
      throw new Error(`${e2.name}: ${e2.message}`);
    }
  });

  app.on('window-all-closed', () => {
    // A running training job is cancelled (it keeps what it learned) before the engine stops.
    void dispatcher.cancelAll().finally(() => {
      worker.close();
      app.quit();
    });
  });
  app.on('activate', () => {
    if (!mainWindow) void createWindow(dispatcher);
  });
  await createWindow(dispatcher);
}

main().catch((err: Error) => {
  dialog.showErrorBox(`${PRODUCT_NAME} could not start`, err.stack ?? err.message);
  app.exit(1);
});
