/**
 * Identity, and Cast to the same dtype, for the wasm backend without copying.
 *
 * The stock wasm kernels allocate and copy a full tensor. During training they run hundreds of
 * times per step (`tf.moments` casts its input, layers and optimizers clone), and the copies are
 * kept alive by the gradient tape: on ResNet-18 that is one extra activation-sized buffer per
 * BatchNorm in a heap capped at 4 GiB. Tensor memory is immutable and reference counted, so the
 * result can share the input's buffer, exactly as the `cpu` backend's Identity does and as the
 * wasm Reshape already does.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, runStock } from './wasm-ops.js';

/** x's buffer under a new tensor (tensor memory is immutable and reference counted). */
export function share(backend: BackendWasm, x: Info): Info {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

export function identity(args: { inputs: { x: Info }; backend: BackendWasm }): Info {
  const { inputs, backend } = args;
  if (inputs.x.dtype === 'string') return runStock(tf.Identity, backend, inputs);
  return share(backend, inputs.x);
}

export function cast(args: { inputs: { x: Info }; backend: BackendWasm; attrs: { dtype: tf.DataType } }): Info {
  const { inputs, backend, attrs } = args;
  if (attrs.dtype !== inputs.x.dtype || inputs.x.dtype === 'string') return runStock(tf.Cast, backend, inputs, attrs);
  return share(backend, inputs.x);
}

export const identityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};

export const castConfig: tf.KernelConfig = {
  kernelName: tf.Cast,
  backendName: 'wasm',
  kernelFunc: cast as unknown as tf.KernelFunc,
};
