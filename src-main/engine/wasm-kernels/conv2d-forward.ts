/**
 * Conv2D and FusedConv2D for the wasm backend: 3x3 stride-1 convolutions go through Winograd
 * F(4x4, 3x3) (winograd.ts), 3x3 and 7x7 (ResNet's stem) stride-2 ones through F(4x4, 2x2) or
 * F(2x2, 2x2) and F(4x4, 4x4) on the input's four phase images (strided-winograd.ts), 1x1 ones
 * with a stride through our GEMM (pointwise-conv.ts), everything else to the stock XNNPACK
 * kernels. The fused bias and relu / relu6 are applied in our kernels' epilogues; other fused
 * activations (prelu, leakyrelu, sigmoid, elu) and NCHW take the stock kernel.
 *
 * RESIDUAL_CONV2D is FusedConv2D plus an input added before the activation (a ResNet block's
 * shortcut, inference-model.ts): through Winograd's output transform where whole tiles cover a
 * stride-1 output, else the convolution and then one pass over its output.
 *
 * CONV_MAX_POOL2D is FusedConv2D then a max pool (ResNet's stem, inference-model.ts): pooled block
 * by block as the stride-2 Winograd writes its output (block-max-pool.ts) where the pool is 3x3,
 * stride 2, top padding 1, else the convolution and then the MaxPool kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes } from './conv-geometry.js';
import { stridedPointwiseConv2d, useStridedPointwise } from './pointwise-conv.js';
import { maxPoolConfig, ownMaxPool } from './max-pool.js';
import { canPoolOutput, type OutputPool, stridedWinogradConv2d, useStridedWinograd } from './strided-winograd.js';
import { residualFits, useWinograd, winogradConv2d } from './winograd.js';
import type { Activation } from './winograd-transforms.js';
import { simdKernels } from './simd-kernels.js';
import { heapOffset, type Info, runStock, sameShape, type Shape4, withScratch } from './wasm-ops.js';

/** The kernel name of a fused convolution that adds `residual` before its activation. */
export const RESIDUAL_CONV2D = 'FinetuneResidualConv2D';
/** The kernel name of a fused convolution followed by a max pool. */
export const CONV_MAX_POOL2D = 'FinetuneConvMaxPool2D';

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

interface ConvInputs {
  x: Info;
  filter: Info;
  bias?: Info;
  preluActivationWeights?: Info;
}

const FUSABLE: ReadonlySet<string> = new Set(['linear', 'relu', 'relu6']);

/** The max pool after a convolution (CONV_MAX_POOL2D's attributes). */
interface PoolAttrs {
  poolSize: number | [number, number];
  poolStrides: number | [number, number];
  poolPad: 'valid' | 'same' | number;
}

/**
 * Our kernel's result, or null when the stock kernel should run (or ours cannot add `residual`,
 * or pool its output with `pool`).
 */
function tryOwnKernel(backend: BackendWasm, inputs: ConvInputs, attrs: ConvAttrs, residual?: Info, pool?: PoolAttrs): Info | null {
  const { x, filter, bias } = inputs;
  if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  if (x.shape.length !== 4) return null;
  const activation = attrs.activation ?? 'linear';
  if (!FUSABLE.has(activation) || inputs.preluActivationWeights) return null;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== filter.shape[3] || bias.dtype !== 'float32')) return null;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filter.shape as Shape4,
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [ah, aw] = convAxes(info);
  const epilogue = { bias: bias ?? undefined, act: activation as Activation, residual };
  const { batchSize: n, outHeight: outH, outWidth: outW } = info;
  const strides = [ah.stride, aw.stride] as const;
  const geometry = { filterShape: filter.shape, strides, dilations: [ah.dilation, aw.dilation] as const, padBefore: [ah.padBefore, aw.padBefore] as const };
  if (useStridedPointwise(backend, geometry)) {
    if (residual || pool) return null;
    return withScratch(backend, (s) => stridedPointwiseConv2d(s, x, filter, strides, outH, outW, epilogue));
  }
  if (useStridedWinograd(backend, filter.shape, strides, geometry.dilations, n, outH, outW)) {
    if (residual) return null;
    const outputPool = pool ? poolOfOutput(pool, [n, outH, outW, info.outChannels], filter.shape) : undefined;
    if (pool && !outputPool) return null;
    return withScratch(backend, (s) => stridedWinogradConv2d(s, x, filter, ah.padBefore, aw.padBefore, outH, outW, epilogue, outputPool));
  }
  if (pool || filter.shape[0] !== 3 || filter.shape[1] !== 3) return null;
  if (ah.stride !== 1 || aw.stride !== 1 || ah.dilation !== 1 || aw.dilation !== 1) return null;
  if (!useWinograd(backend, { n, outH, outW, ci: info.inChannels, co: info.outChannels }, 'forward')) return null;
  if (residual && !(residual.dtype === 'float32' && residualFits(outH, outW) && sameShape(residual.shape, [n, outH, outW, info.outChannels]))) return null;
  return withScratch(backend, (s) => winogradConv2d(s, x, filter, ah.padBefore, aw.padBefore, outH, outW, epilogue));
}

/** The pool as stridedWinogradConv2d takes it, if it can pool this convolution's output. */
function poolOfOutput(pool: PoolAttrs, outShape: Shape4, filterShape: readonly number[]): OutputPool | undefined {
  const info = tf.backend_util.computePool2DInfo(outShape, pool.poolSize, pool.poolStrides, 1, pool.poolPad);
  if (!ownMaxPool(info) || info.padInfo.top !== 1 || !canPoolOutput(filterShape, outShape[1], outShape[2])) return undefined;
  return { poolH: info.outHeight, poolW: info.outWidth, left: info.padInfo.left };
}

function conv2d(args: { inputs: ConvInputs; backend: BackendWasm; attrs: ConvAttrs }): Info {
  const { inputs, backend, attrs } = args;
  return tryOwnKernel(backend, inputs, attrs) ?? runStock(tf.Conv2D, backend, inputs as unknown as Record<string, Info>, attrs);
}

function fusedConv2d(args: { inputs: ConvInputs; backend: BackendWasm; attrs: ConvAttrs }): Info {
  const { inputs, backend, attrs } = args;
  return tryOwnKernel(backend, inputs, attrs) ?? runStock(tf.FusedConv2D, backend, inputs as unknown as Record<string, Info>, attrs);
}

function residualConv2d(args: { inputs: ConvInputs & { residual: Info }; backend: BackendWasm; attrs: ConvAttrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x, filter, bias, residual } = inputs;
  const fused = tryOwnKernel(backend, inputs, attrs, residual);
  if (fused) return fused;
  const linear = { ...attrs, activation: 'linear' };
  const convInputs = { x, filter, ...(bias ? { bias } : {}) };
  const y = tryOwnKernel(backend, convInputs, linear) ?? runStock(tf.FusedConv2D, backend, convInputs as unknown as Record<string, Info>, linear);
  addAndActivate(backend, y, residual, (attrs.activation ?? 'linear') as Activation);
  return y;
}

function convMaxPool2d(args: { inputs: ConvInputs; backend: BackendWasm; attrs: ConvAttrs & PoolAttrs }): Info {
  const { inputs, backend, attrs } = args;
  const pooled = tryOwnKernel(backend, inputs, attrs, undefined, attrs);
  if (pooled) return pooled;
  const y = fusedConv2d({ inputs, backend, attrs });
  const poolAttrs = { filterSize: attrs.poolSize, strides: attrs.poolStrides, pad: attrs.poolPad };
  const out = maxPoolConfig.kernelFunc({ inputs: { x: y } as unknown as tf.NamedTensorMap, backend, attrs: poolAttrs as unknown as tf.NamedAttrMap }) as Info;
  backend.disposeData(y.dataId);
  return out;
}

/** y = act(y + residual) in place (y: a convolution's fresh float32 output). */
function addAndActivate(backend: BackendWasm, y: Info, residual: Info, act: Activation): void {
  if (!sameShape(y.shape, residual.shape) || residual.dtype !== 'float32') {
    throw new Error(`${RESIDUAL_CONV2D}: the residual's shape ${residual.shape} (${residual.dtype}) is not the output's ${y.shape} (float32)`);
  }
  if (!['linear', 'relu', 'relu6'].includes(act)) throw new Error(`${RESIDUAL_CONV2D}: activation ${act} is not supported`);
  const size = y.shape.reduce((a, b) => a * b, 1);
  const { heap, offset: yo } = heapOffset(backend, y);
  const ro = heapOffset(backend, residual).offset;
  const simd = simdKernels(backend);
  const vectorized = simd ? size - (size % 4) : 0;
  if (vectorized > 0) {
    simd!.addInto(yo * 4, ro * 4, vectorized * 4);
    if (act !== 'linear') simd!.clamp(act, yo * 4, yo * 4, vectorized * 4, 0, 6);
  }
  // As the SIMD kernels do: the sum, then max(v, 0), then the upper bound.
  for (let i = vectorized; i < size; i++) {
    const v = heap[yo + i] + heap[ro + i];
    heap[yo + i] = act === 'linear' ? v : act === 'relu' ? Math.max(v, 0) : Math.min(Math.max(v, 0), 6);
  }
}

export const residualConv2dConfig: tf.KernelConfig = {
  kernelName: RESIDUAL_CONV2D,
  backendName: 'wasm',
  kernelFunc: residualConv2d as unknown as tf.KernelFunc,
};

export const convMaxPool2dConfig: tf.KernelConfig = {
  kernelName: CONV_MAX_POOL2D,
  backendName: 'wasm',
  kernelFunc: convMaxPool2d as unknown as tf.KernelFunc,
};

export const conv2dConfig: tf.KernelConfig = {
  kernelName: tf.Conv2D,
  backendName: 'wasm',
  kernelFunc: conv2d as unknown as tf.KernelFunc,
};

export const fusedConv2dConfig: tf.KernelConfig = {
  kernelName: tf.FusedConv2D,
  backendName: 'wasm',
  kernelFunc: fusedConv2d as unknown as tf.KernelFunc,
};
