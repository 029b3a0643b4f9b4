/**
 * Slice for the wasm backend, replacing the stock one, which first copies the whole input out of
 * the wasm heap (`readSync`) and then copies rows back in. Slice is the gradient of every
 * ZeroPadding2D (ResNet pads before each strided conv and the max-pool), so it runs on full
 * activations. Here each contiguous run is one memmove inside the heap, and a slice of the whole
 * tensor (a layers model's predict slices its input into one batch) shares the input's buffer.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { share } from './identity.js';
import { type Info, runStock } from './wasm-ops.js';

type Typed = Float32Array | Int32Array | Uint8Array;

export function slice(args: { inputs: { x: Info }; backend: BackendWasm; attrs: { begin: number | number[]; size: number | number[] } }): Info {
  const { inputs, backend, attrs } = args;
  const { x } = inputs;
  if (x.dtype === 'string' || x.dtype === 'complex64') return runStock(tf.Slice, backend, inputs, attrs);
  const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs.begin, attrs.size);
  if (begin.every((b) => b === 0) && size.every((n, i) => n === x.shape[i])) return share(backend, x);
  const out = backend.makeOutput(size, x.dtype);
  const total = size.reduce((a, b) => a * b, 1);
  if (total === 0) return out;
  const srcView = backend.typedArrayFromHeap(x) as Typed;
  const dstView = backend.typedArrayFromHeap(out) as Typed;
  const elem = dstView.BYTES_PER_ELEMENT;
  const heap = new (dstView.constructor as new (b: ArrayBufferLike) => Typed)(dstView.buffer);
  const src = srcView.byteOffset / elem;
  let dst = dstView.byteOffset / elem;
  const rank = x.shape.length;
  const strides = tf.util.computeStrides(x.shape).concat(1);
  // Axes after `inner` are taken whole, so one run covers size[inner] * strides[inner] elements.
  let inner = rank - 1;
  while (inner > 0 && size[inner] === x.shape[inner] && begin[inner] === 0) inner--;
  const run = size[inner] * strides[inner];
  const copy = (d: number, offset: number): void => {
    if (d === inner) {
      const from = src + offset + begin[d] * strides[d];
      heap.copyWithin(dst, from, from + run);
      dst += run;
      return;
    }
    for (let i = 0; i < size[d]; i++) copy(d + 1, offset + (begin[d] + i) * strides[d]);
  };
  copy(0, 0);
  return out;
}

export const sliceConfig: tf.KernelConfig = {
  kernelName: tf.Slice,
  backendName: 'wasm',
  kernelFunc: slice as unknown as tf.KernelFunc,
};
