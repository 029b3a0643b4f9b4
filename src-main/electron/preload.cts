/**
 * The only bridge between the sandboxed renderer and the app: three functions on `window.studio`.
 * `ipcRenderer` itself is never exposed; every call goes through one invoke channel whose channel
 * name and payload the main process validates, and events come back on one channel.
 *
 * CommonJS (.cts -> .cjs) because a sandboxed preload cannot load ES modules or other local files:
 * the channel names are spelled here and checked against the contract's types by the compiler.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { AppEvent, IpcChannels, PreloadApi } from '../api/contract.js' with { 'resolution-mode': 'import' };

const IPC: IpcChannels = { invoke: 'studio:invoke', event: 'studio:event' };

const api: PreloadApi = {
  invoke: (channel, payload) => ipcRenderer.invoke(IPC.invoke, { channel, payload }),
  onEvent: (listener) => {
    // Only the event payload crosses over; the IpcRendererEvent (with its sender) stays here.
    const wrapped = (_e: IpcRendererEvent, event: AppEvent) => listener(event);
    ipcRenderer.on(IPC.event, wrapped);
    return () => {
      ipcRenderer.removeListener(IPC.event, wrapped);
    };
  },
  pathForFile: (file) => webUtils.getPathForFile(file),
};

contextBridge.exposeInMainWorld('studio', api);
