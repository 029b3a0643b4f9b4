/**
 * BatchMatMul for the wasm backend, replacing the stock one only where it is slow: with transposeA
 * or transposeB set the stock kernel leaves XNNPACK for a naive C++ loop (~3 GFLOP/s against ~35),
 * and every Dense layer's backward pass asks for exactly that (dx = dy·Wᵀ, dW = xᵀ·dy). The fastai
 * head's two Dense gradients took 27 ms of a 320 ms MobileNetV2-0.35 @128 step. Here the transposed
 * operand is materialised first (stock Transpose, one memory pass) so the product runs on XNNPACK.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, runStock, withScratch } from './wasm-ops.js';

interface Attrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** Swaps the last two axes. */
const lastTwoSwapped = (rank: number) => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
const batchOf = (x: Info) => x.shape.slice(0, -2).reduce((a, b) => a * b, 1);

export function batchMatMul(args: { inputs: { a: Info; b: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { a, b } = inputs;
  const onXnnpackAlready = !attrs.transposeA && !attrs.transposeB;
  // XNNPACK serves batch 1 only; batched products stay on the stock loop either way.
  const eligible = batchOf(a) === 1 && batchOf(b) === 1 && a.dtype === 'float32' && b.dtype === 'float32';
  if (onXnnpackAlready || !eligible) return runStock(tf.BatchMatMul, backend, inputs, attrs);
  return withScratch(backend, (s) => {
    const swap = (x: Info) => s.transpose(x, lastTwoSwapped(x.shape.length));
    const product = (left: Info, right: Info) => s.run(tf.BatchMatMul, { a: left, b: right }, { transposeA: false, transposeB: false });
    const sizeOf = (x: Info) => x.shape.reduce((p, d) => p * d, 1);
    // a·bᵀ with a large b (a Dense layer's dx = dy·Wᵀ): XNNPACK would transpose and pack all of W
    // every call; (b·aᵀ)ᵀ packs only the small aᵀ and transposes two small matrices.
    const rows = a.shape[a.shape.length - 2];
    const cols = b.shape[b.shape.length - 2];
    if (!attrs.transposeA && sizeOf(b) > sizeOf(a) + rows * cols) return swap(product(b, swap(a)));
    return product(attrs.transposeA ? swap(a) : a, attrs.transposeB ? swap(b) : b);
  });
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};
