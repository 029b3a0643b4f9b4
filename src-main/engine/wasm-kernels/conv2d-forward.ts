/**
 * Conv2D and FusedConv2D for the wasm backend: 3x3 stride-1 convolutions go through Winograd
 * F(4x4, 3x3) (winograd.ts), 3x3 and 7x7 (ResNet's stem) stride-2 ones through F(4x4, 2x2) or
 * F(2x2, 2x2) and F(4x4, 4x4) on the input's four phase images (strided-winograd.ts), everything else to the stock
 * XNNPACK kernels. The fused bias and relu / relu6 are applied in Winograd's output transform;
 * other fused activations (prelu, leakyrelu, sigmoid, elu) and NCHW take the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes } from './conv-geometry.js';
import { stridedWinogradConv2d, useStridedWinograd } from './strided-winograd.js';
import { useWinograd, winogradConv2d } from './winograd.js';
import type { Activation } from './winograd-transforms.js';
import { type Info, runStock, type Shape4, withScratch } from './wasm-ops.js';

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

/** The Winograd result, or null when the stock kernel should run. */
function tryWinograd(backend: BackendWasm, inputs: ConvInputs, attrs: ConvAttrs): Info | null {
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
  const epilogue = { bias: bias ?? undefined, act: activation as Activation };
  const { batchSize: n, outHeight: outH, outWidth: outW } = info;
  if (useStridedWinograd(backend, filter.shape, [ah.stride, aw.stride], [ah.dilation, aw.dilation], n, outH, outW)) {
    return withScratch(backend, (s) => stridedWinogradConv2d(s, x, filter, ah.padBefore, aw.padBefore, outH, outW, epilogue));
  }
  if (filter.shape[0] !== 3 || filter.shape[1] !== 3) return null;
  if (ah.stride !== 1 || aw.stride !== 1 || ah.dilation !== 1 || aw.dilation !== 1) return null;
  if (!useWinograd(backend, { n, outH, outW, ci: info.inChannels, co: info.outChannels }, 'forward')) return null;
  return withScratch(backend, (s) => winogradConv2d(s, x, filter, ah.padBefore, aw.padBefore, outH, outW, epilogue));
}

function conv2d(args: { inputs: ConvInputs; backend: BackendWasm; attrs: ConvAttrs }): Info {
  const { inputs, backend, attrs } = args;
  return tryWinograd(backend, inputs, attrs) ?? runStock(tf.Conv2D, backend, inputs as unknown as Record<string, Info>, attrs);
}

function fusedConv2d(args: { inputs: ConvInputs; backend: BackendWasm; attrs: ConvAttrs }): Info {
  const { inputs, backend, attrs } = args;
  return tryWinograd(backend, inputs, attrs) ?? runStock(tf.FusedConv2D, backend, inputs as unknown as Record<string, Info>, attrs);
}

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
