/**
 * Small toolkit for writing wasm kernels out of other wasm kernels.
 *
 * Kernels run inside the engine, so they must not call `tf.*` ops (those would be recorded on the
 * gradient tape and tracked as user tensors). Instead, like the wasm backend's own kernels, they
 * call other kernels' `kernelFunc` directly on `TensorInfo`s and free their intermediates through
 * the backend. `Scratch` does the freeing; `heapF32` gives a view of a tensor's memory for the few
 * cheap rearrangements (filter flips, zero insertion, crops) that are done in JS.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type Info = tf.TensorInfo;
export type Shape4 = [number, number, number, number];

export const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
type Pads2 = [[number, number], [number, number], [number, number], [number, number]];

/**
 * Kernels as the wasm backend shipped them, captured before we register replacements, so that our
 * kernels (and fallbacks) can call the stock implementation of a name we override.
 */
const stock = new Map<string, tf.KernelConfig>();

export function rememberStockKernel(name: string): void {
  if (stock.has(name)) return;
  const config = tf.getKernel(name, 'wasm');
  if (config) stock.set(name, config);
}

export function stockKernel(name: string): tf.KernelConfig | undefined {
  return stock.get(name) ?? tf.getKernel(name, 'wasm');
}

export function runStock(name: string, backend: BackendWasm, inputs: Record<string, Info>, attrs: object = {}): Info {
  const config = stockKernel(name);
  if (!config) throw new Error(`wasm-kernels: the wasm backend has no '${name}' kernel`);
  const out = config.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
  return Array.isArray(out) ? out[0] : out;
}

/** Owns the intermediates of one kernel call and frees them all at the end. */
export class Scratch {
  private readonly owned: Info[] = [];
  constructor(readonly backend: BackendWasm) {}

  track(info: Info): Info {
    this.owned.push(info);
    return info;
  }

  run(name: string, inputs: Record<string, Info>, attrs: object = {}): Info {
    return this.track(runStock(name, this.backend, inputs, attrs));
  }

  /** A new uninitialised float32 tensor on the wasm heap. */
  alloc(shape: number[]): Info {
    return this.track(this.backend.makeOutput(shape, 'float32'));
  }

  /** A view sharing `x`'s memory (the wasm Reshape kernel just bumps the ref count). */
  reshape(x: Info, shape: number[]): Info {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: Info, perm: number[]): Info {
    return this.run('Transpose', { x }, { perm });
  }

  /** XNNPACK convolution with explicit (non-negative) padding. */
  conv2d(x: Info, filter: Info, strides: [number, number], dilations: [number, number], pads: Pads2): Info {
    return this.run('Conv2D', { x, filter }, { strides, dilations, pad: pads, dataFormat: 'NHWC' });
  }

  depthwiseConv2d(x: Info, filter: Info, strides: [number, number], dilations: [number, number], pads: Pads2): Info {
    return this.run('DepthwiseConv2dNative', { x, filter }, { strides, dilations, pad: pads, dataFormat: 'NHWC' });
  }

  /** Frees one tracked intermediate early (to lower the peak heap use of a long kernel). */
  release(info: Info): void {
    const i = this.owned.indexOf(info);
    if (i < 0) throw new Error('wasm-kernels: releasing a tensor this scratch does not own');
    this.owned.splice(i, 1);
    this.backend.disposeData(info.dataId);
  }

  /**
   * Frees everything tracked except `result`, which is handed to the caller. If `result` shares
   * memory with a tracked tensor (a reshape of it), the ref count keeps that memory alive.
   */
  finish(result: Info): Info {
    for (const info of this.owned) if (info !== result) this.backend.disposeData(info.dataId);
    this.owned.length = 0;
    return result;
  }

  /** Frees everything (on error paths). */
  abandon(): void {
    for (const info of this.owned) this.backend.disposeData(info.dataId);
    this.owned.length = 0;
  }
}

/** Runs `body` with a scratch space that is always cleaned up. */
export function withScratch(backend: BackendWasm, body: (s: Scratch) => Info): Info {
  const s = new Scratch(backend);
  try {
    return s.finish(body(s));
  } catch (err) {
    s.abandon();
    throw err;
  }
}

/**
 * A Float32Array over a tensor's memory on the wasm heap. Take it after the last allocation: heap
 * growth replaces the underlying buffer.
 */
export function heapF32(backend: BackendWasm, info: Info): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** The whole heap as floats plus the element offset of `info` in it (for `copyWithin`). */
export function heapOffset(backend: BackendWasm, info: Info): { heap: Float32Array; offset: number } {
  const view = heapF32(backend, info);
  return { heap: new Float32Array(view.buffer), offset: view.byteOffset / 4 };
}

/**
 * `x[:, top:top+h, left:left+w, :]` (NHWC) with one `copyWithin` per contiguous run, instead of the
 * stock Slice kernel, which first copies the whole input out of the heap.
 */
export function crop4d(s: Scratch, x: Info, top: number, left: number, h: number, w: number): Info {
  const [n, xh, xw, c] = x.shape as Shape4;
  if (top === 0 && left === 0 && h === xh && w === xw) return x;
  if (top < 0 || left < 0 || top + h > xh || left + w > xw) {
    throw new Error(`wasm-kernels: crop [${top}+${h}, ${left}+${w}] outside ${x.shape}`);
  }
  const out = s.alloc([n, h, w, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  const run = w * c;
  let o = dst;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      const i = src + ((b * xh + top + y) * xw + left) * c;
      heap.copyWithin(o, i, i + run);
      o += run;
    }
  }
  return out;
}

/**
 * out[n, y, x] = x[n, y - top, x - left] where that is inside x, else 0: [N, outH, outW, C].
 * `top` / `left` may be negative (rows cropped off).
 */
export function padSpatial(s: Scratch, x: Info, top: number, left: number, outH: number, outW: number): Info {
  const [n, h, w, c] = x.shape as Shape4;
  if (top === 0 && left === 0 && outH === h && outW === w) return x;
  const out = s.alloc([n, outH, outW, c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  const x0 = Math.max(0, left);
  const x1 = Math.min(outW, w + left);
  const y0 = Math.max(0, top);
  const y1 = Math.min(outH, h + top);
  const row = outW * c;
  for (let b = 0; b < n; b++) {
    const image = dst + b * outH * row;
    if (x1 <= x0 || y1 <= y0) {
      heap.fill(0, image, image + outH * row);
      continue;
    }
    heap.fill(0, image, image + y0 * row);
    heap.fill(0, image + y1 * row, image + outH * row);
    for (let y = y0; y < y1; y++) {
      const o = image + y * row;
      heap.fill(0, o, o + x0 * c);
      heap.fill(0, o + x1 * c, o + row);
      const i = src + ((b * h + y - top) * w + (x0 - left)) * c;
      heap.copyWithin(o + x0 * c, i, i + (x1 - x0) * c);
    }
  }
  return out;
}

export function explicitPads(top: number, bottom: number, left: number, right: number): Pads2 {
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/**
 * Convolution (regular or depthwise) whose padding may be negative: negative padding means the
 * input's border rows/columns are never read, so they are cropped off first (XNNPACK takes only
 * non-negative padding).
 */
export function convAnyPad(
  s: Scratch,
  kind: 'conv' | 'depthwise',
  x: Info,
  filter: Info,
  strides: [number, number],
  dilations: [number, number],
  pads: { top: number; bottom: number; left: number; right: number },
): Info {
  const [, h, w] = x.shape as Shape4;
  const cropTop = Math.max(0, -pads.top);
  const cropBottom = Math.max(0, -pads.bottom);
  const cropLeft = Math.max(0, -pads.left);
  const cropRight = Math.max(0, -pads.right);
  const input = crop4d(s, x, cropTop, cropLeft, h - cropTop - cropBottom, w - cropLeft - cropRight);
  const p = explicitPads(
    Math.max(0, pads.top),
    Math.max(0, pads.bottom),
    Math.max(0, pads.left),
    Math.max(0, pads.right),
  );
  return kind === 'conv'
    ? s.conv2d(input, filter, strides, dilations, p)
    : s.depthwiseConv2d(input, filter, strides, dilations, p);
}

const threadCounts = new WeakMap<BackendWasm, number>();

/**
 * XNNPACK's thread count on this backend. Our own SIMD kernels run on the calling thread only, so
 * shape rules that compare them with XNNPACK paths depend on it.
 */
export function xnnpackThreads(backend: BackendWasm): number {
  let n = threadCounts.get(backend);
  if (n === undefined) {
    const tfjs = (backend.wasm as unknown as { tfjs?: { getThreadsCount?: () => number } }).tfjs;
    n = tfjs?.getThreadsCount?.() ?? 1;
    threadCounts.set(backend, n);
  }
  return n;
}
