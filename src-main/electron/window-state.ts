/**
 * Remembers the window's size, position and maximised state between launches (a JSON file in the
 * user data folder), and puts a remembered window back on a screen that still exists: a window
 * last seen on a monitor that has been unplugged must not open off-screen.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface WindowState extends Partial<Rect> {
  width: number;
  height: number;
  maximized: boolean;
}

export const DEFAULT_STATE: WindowState = { width: 1280, height: 860, maximized: false };
export const MIN_SIZE = { width: 900, height: 640 };

export function parseWindowState(text: string): WindowState {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : undefined);
    const width = n(o.width);
    const height = n(o.height);
    if (width === undefined || height === undefined) return { ...DEFAULT_STATE };
    const x = n(o.x);
    const y = n(o.y);
    return {
      width: Math.max(MIN_SIZE.width, Math.min(width, 10000)),
      height: Math.max(MIN_SIZE.height, Math.min(height, 10000)),
      ...(x !== undefined && y !== undefined ? { x, y } : {}),
      maximized: o.maximized === true,
    };
  } catch {
    return { ...DEFAULT_STATE };
  }
}

/**
 * Keeps the remembered position only if a good part of the window (its top-left 100x50 grab area)
 * is on one of the displays' work areas; otherwise lets the window manager centre it, at a size
 * that fits the primary display.
 */
export function fitToDisplays(state: WindowState, workAreas: Rect[]): WindowState {
  const primary = workAreas[0];
  const width = primary ? Math.min(state.width, primary.width) : state.width;
  const height = primary ? Math.min(state.height, primary.height) : state.height;
  if (state.x === undefined || state.y === undefined) return { width, height, maximized: state.maximized };
  const { x, y } = state;
  const visible = workAreas.some((a) => x + 100 > a.x && x < a.x + a.width - 50 && y >= a.y - 10 && y + 50 < a.y + a.height);
  return visible ? { ...state, width, height } : { width, height, maximized: state.maximized };
}

export async function loadWindowState(file: string): Promise<WindowState> {
  return parseWindowState(await fs.readFile(file, 'utf8').catch(() => ''));
}

export async function saveWindowState(file: string, state: WindowState): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(state));
  await fs.rename(tmp, file);
}
