/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend (the stock backend has none).
 *
 * Per channel, dx is the full correlation of dy with the spatially flipped filter, so it is one
 * XNNPACK depthwise convolution:
 * - stride s > 1: dy first gets (s - 1) zeros between samples (JS zero insertion, one memmove per
 *   pixel). A depthwise convolution is memory bound, so the zeros cost little; the sub-pixel form
 *   used for regular convolutions would need a channel transpose that costs more than it saves;
 * - channel multiplier M > 1: each of the C*M output channels is its own depthwise channel with a
 *   1-channel filter, and the M results of each input channel are summed.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes, inputGradPads } from './conv-geometry.js';
import { flipSpatial, zeroInsert } from './rearrange.js';
import { convAnyPad, type Info, type Shape4, withScratch } from './wasm-ops.js';

interface Attrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: Shape4;
}

export function depthwiseBackpropInput(args: { inputs: { dy: Info; filter: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as Shape4,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
    'channelsLast',
  );
  const [ah, aw] = convAxes(info);
  const [kh, kw, c, m] = filter.shape as Shape4;
  const [n, h, w] = attrs.inputShape;
  return withScratch(backend, (s) => {
    const up =
      ah.stride === 1 && aw.stride === 1
        ? dy
        : zeroInsert(s, dy, (ah.outSize - 1) * ah.stride + 1, (aw.outSize - 1) * aw.stride + 1, ah.stride, aw.stride, 0, 0);
    // [kh*kw, C*M] with the taps reversed, used as C*M separate channels of multiplier 1.
    const flipped = s.reshape(flipSpatial(s, s.reshape(filter, [kh * kw, c * m])), [kh, kw, c * m, 1]);
    const ph = inputGradPads(ah);
    const pw = inputGradPads(aw);
    const dx = convAnyPad(s, 'depthwise', up, flipped, [1, 1], [ah.dilation, aw.dilation], {
      top: ph.before,
      bottom: ph.after,
      left: pw.before,
      right: pw.after,
    });
    if (m === 1) return dx;
    const summed = s.run('Sum', { x: s.reshape(dx, [n * h * w, c, m]) }, { axis: [2], keepDims: false });
    return s.reshape(summed, [n, h, w, c]);
  });
}

export const depthwiseBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput as unknown as tf.KernelFunc,
};
