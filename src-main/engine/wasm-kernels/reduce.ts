/**
 * Sum and Mean over leading axes, and Mean and Max over an NHWC image's height and width, for the
 * wasm backend.
 *
 * BatchNorm statistics and gradients reduce [N, H, W, C] over [0, 1, 2]. The stock wasm kernels
 * first transpose the input so that the reduced axes are innermost (an element-by-element 4-D
 * transpose) and then sum: ~55 ms for a [16,112,112,64] activation. Viewed as [1, R, 1, C], the
 * same reduction is an R x 1 average pooling, which XNNPACK runs with SIMD in ~5 ms; Sum scales
 * the mean back by R (C values, in JS).
 *
 * The fastai head's pools (global max and average, over [1, 2]) are one H x W max or average
 * pooling each: ResNet-18 at 128 px, batch 16, 2 threads: 0.4 + 0.2 ms through the transpose.
 * Other reductions use the stock kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapF32, type Info, runStock, withScratch } from './wasm-ops.js';

interface Attrs {
  axis: number | number[];
  keepDims: boolean;
}

/** R (rows reduced) and C (values kept) when `axes` is a leading prefix of a float tensor, else null. */
export function leadingReduction(shape: number[], axes: number[]): { rows: number; cols: number } | null {
  const sorted = [...axes].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted.some((a, i) => a !== i)) return null;
  const rows = shape.slice(0, sorted.length).reduce((a, b) => a * b, 1);
  const cols = shape.slice(sorted.length).reduce((a, b) => a * b, 1);
  if (rows < 2 || cols < 1) return null;
  return { rows, cols };
}

/** Whether `axes` are exactly the height and width of a rank-4 (NHWC) tensor. */
const spatialAxes = (shape: number[], axes: number[]) => shape.length === 4 && axes.length === 2 && [...axes].sort().join() === '1,2';

/** Max or average pooling over the whole of each image: [N, H, W, C] -> [N, C] (or [N, 1, 1, C]). */
function poolSpatial(pool: 'MaxPool' | 'AvgPool', backend: BackendWasm, x: Info, keepDims: boolean): Info {
  const [n, h, w, c] = x.shape;
  const shape = keepDims ? [n, 1, 1, c] : [n, c];
  return withScratch(backend, (s) => {
    // XNNPACK pools over at least 2 pixels; over one, the result is the input.
    const pooled = h * w === 1 ? x : s.run(pool, { x }, { filterSize: [h, w], strides: [1, 1], pad: 'valid' });
    return s.reshape(pooled, shape);
  });
}

function reduceLeading(name: 'Sum' | 'Mean', args: { inputs: { x: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x } = inputs;
  const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
  if (name === 'Mean' && x.dtype === 'float32' && spatialAxes(x.shape, axes)) return poolSpatial('AvgPool', backend, x, attrs.keepDims);
  const plan = x.dtype === 'float32' ? leadingReduction(x.shape, axes) : null;
  if (!plan) return runStock(name, backend, inputs, attrs);
  const keptShape = x.shape.slice(axes.length);
  const outShape = attrs.keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : keptShape;
  return withScratch(backend, (s) => {
    const column = s.reshape(x, [1, plan.rows, 1, plan.cols]);
    const mean = s.run('AvgPool', { x: column }, { filterSize: [plan.rows, 1], strides: [1, 1], pad: 'valid' });
    if (name === 'Sum') {
      const v = heapF32(backend, mean);
      for (let i = 0; i < v.length; i++) v[i] *= plan.rows;
    }
    return s.reshape(mean, outShape);
  });
}

export const sumConfig: tf.KernelConfig = {
  kernelName: tf.Sum,
  backendName: 'wasm',
  kernelFunc: ((args: Parameters<typeof reduceLeading>[1]) => reduceLeading('Sum', args)) as unknown as tf.KernelFunc,
};

export const meanConfig: tf.KernelConfig = {
  kernelName: tf.Mean,
  backendName: 'wasm',
  kernelFunc: ((args: Parameters<typeof reduceLeading>[1]) => reduceLeading('Mean', args)) as unknown as tf.KernelFunc,
};

function max(args: { inputs: { x: Info }; backend: BackendWasm; attrs: { reductionIndices: number | number[]; keepDims: boolean } }): Info {
  const { inputs, backend, attrs } = args;
  const { x } = inputs;
  const axes = tf.util.parseAxisParam(attrs.reductionIndices, x.shape);
  if (x.dtype === 'float32' && spatialAxes(x.shape, axes)) return poolSpatial('MaxPool', backend, x, attrs.keepDims);
  return runStock(tf.Max, backend, inputs, attrs);
}

export const maxConfig: tf.KernelConfig = {
  kernelName: tf.Max,
  backendName: 'wasm',
  kernelFunc: max as unknown as tf.KernelFunc,
};
