/**
 * The renderer's side of the API: `window.studio` from the Electron preload, or a WebSocket to the
 * browser-mode host. Both give the same `StudioApi`, so no component knows which host it runs in.
 */
import type { AppEvent, Channel, ImageRef, PreloadApi, Request, Response, StudioApi, WsServerFrame } from '../../../src-main/api/contract.js';

declare global {
  interface Window {
    studio?: PreloadApi;
  }
}

/** An error from the host, keeping its name (AbortError means "cancelled", not "failed"). */
export class ApiError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

function fromPreload(p: PreloadApi): StudioApi {
  return {
    invoke: async <C extends Channel>(channel: C, payload: Request<C>) => {
      try {
        return (await p.invoke(channel, payload)) as Response<C>;
      } catch (err) {
        // Electron prefixes rejected invoke errors with "Error invoking remote method '…': Name: message".
        const raw = err instanceof Error ? err.message : String(err);
        const m = /^Error invoking remote method '[^']*': (?:Error: )?(?:(\w+): )?([\s\S]*)$/.exec(raw);
        throw new ApiError(m?.[1] ?? 'Error', m?.[2] ?? raw);
      }
    },
    onEvent: (listener) => p.onEvent(listener),
    pathForFile: (file) => p.pathForFile(file),
  };
}

/** Browser mode: one WebSocket, requests matched to replies by id, reconnecting if the server restarts. */
export function fromWebSocket(url: string, WebSocketImpl: typeof WebSocket = WebSocket): StudioApi & { ready: Promise<void> } {
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(e: AppEvent) => void>();
  let nextId = 1;
  let socket: WebSocket;
  let opened!: () => void;
  let ready = new Promise<void>((r) => (opened = r));

  const connect = () => {
    socket = new WebSocketImpl(url);
    socket.onopen = () => opened();
    socket.onmessage = (msg) => {
      const frame = JSON.parse(String(msg.data)) as WsServerFrame;
      if ('event' in frame) {
        for (const l of listeners) l(frame.event);
        return;
      }
      const p = pending.get(frame.id);
      if (!p) return;
      pending.delete(frame.id);
      if (frame.ok) p.resolve(frame.result);
      else p.reject(new ApiError(frame.error.name, frame.error.message));
    };
    socket.onclose = () => {
      const err = new ApiError('Disconnected', 'The connection to the Finetune Studio server was lost. Check that `npm run serve` is still running; the page reconnects by itself.');
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      ready = new Promise<void>((r) => (opened = r));
      setTimeout(connect, 1000);
    };
  };
  connect();

  return {
    get ready() {
      return ready;
    },
    invoke: async <C extends Channel>(channel: C, payload: Request<C>) => {
      await ready;
      const id = nextId++;
      const result = new Promise<unknown>((resolve, reject) => pending.set(id, { resolve, reject }));
      socket.send(JSON.stringify({ id, channel, payload }));
      return (await result) as Response<C>;
    },
    onEvent: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    upload: async (file: File): Promise<ImageRef> => {
      const res = await fetch('./api/upload', { method: 'POST', body: file, headers: { 'X-File-Name': encodeURIComponent(file.name) } });
      const body = (await res.json().catch(() => ({}))) as { id?: string; error?: string };
      if (!res.ok || !body.id) throw new ApiError('UploadError', `Could not upload ${file.name}: ${body.error ?? res.statusText}`);
      return { kind: 'upload', id: body.id };
    },
  };
}

export function connectApi(): StudioApi {
  if (window.studio) return fromPreload(window.studio);
  const wsUrl = new URL('./ws', location.href);
  wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return fromWebSocket(wsUrl.href);
}
