/**
 * DepthwiseConv2dNativeBackpropFilter for the wasm backend (the stock backend has none).
 *
 * dW[a, b, c, m] = sum_{n, oh, ow} x[n, oh*s + a*d - pt, ow*s + b*d - pl, c] * dy[n, oh, ow, c*M + m]
 *
 * Folding the batch into the channels turns this into a single depthwise convolution that XNNPACK
 * runs: input x as [1, H, W, N*C] (channel n*C + c), filter dy as [Ho, Wo, N*C, M] (an Ho x Wo
 * kernel per channel), dilation = forward stride, stride = forward dilation, output [1, kh, kw,
 * N*C*M]; summing over n gives dW. Both transposes move whole C-channel runs (pixel-major to
 * batch-inside-pixel), and the output is only kh*kw pixels, so it stays memory bound.
 *
 * That XNNPACK form re-reads all of dy once per filter tap (its "weights" are the whole of dy), so
 * it still ran at 2-8x the forward pass. With channel multiplier 1 (MobileNets) and C a multiple
 * of 4, a hand-written SIMD loop (simd-kernels.ts) does it in one pass instead: for each output
 * pixel, each tap's channels accumulate x * dy into a kh*kw*C buffer that stays in L1. Images are
 * accumulated in float32, the sum over images in float64.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { convAxes, filterGradPads } from './conv-geometry.js';
import { simdKernels } from './simd-kernels.js';
import { convAnyPad, heapOffset, type Info, type Shape4, withScratch } from './wasm-ops.js';

interface Attrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: Shape4;
}

export function depthwiseBackpropFilter(args: { inputs: { x: Info; dy: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    attrs.filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
    'channelsLast',
  );
  const [ah, aw] = convAxes(info);
  const [kh, kw, c, m] = attrs.filterShape;
  const [n, h, w] = x.shape as Shape4;
  const [, ho, wo] = dy.shape as Shape4;
  const simd = m === 1 && c % 4 === 0 ? simdKernels(backend) : null;
  if (simd) {
    const acc = new Float64Array(kh * kw * c);
    const part = backend.makeOutput([kh, kw, c], 'float32');
    try {
      const { heap, offset: xo } = heapOffset(backend, x);
      const dyo = heapOffset(backend, dy).offset;
      const po = heapOffset(backend, part).offset;
      const geometry = {
        h,
        w,
        ho,
        wo,
        channelBytes: c * 4,
        kh,
        kw,
        sh: ah.stride,
        sw: aw.stride,
        dh: ah.dilation,
        dw: aw.dilation,
        pt: ah.padBefore,
        pl: aw.padBefore,
      };
      for (let b = 0; b < n; b++) {
        heap.fill(0, po, po + acc.length);
        simd.depthwiseFilterGrad((xo + b * h * w * c) * 4, (dyo + b * ho * wo * c) * 4, po * 4, geometry);
        for (let i = 0; i < acc.length; i++) acc[i] += heap[po + i];
      }
    } finally {
      backend.disposeData(part.dataId);
    }
    const out = backend.makeOutput([kh, kw, c, m], 'float32');
    const o = heapOffset(backend, out);
    for (let i = 0; i < acc.length; i++) o.heap[o.offset + i] = acc[i];
    return out;
  }
  const ph = filterGradPads(ah);
  const pw = filterGradPads(aw);
  return withScratch(backend, (s) => {
    const xT = s.reshape(s.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
    const dyT = s.reshape(s.transpose(dy, [1, 2, 0, 3]), [ho, wo, n * c, m]);
    const perImage = convAnyPad(s, 'depthwise', xT, dyT, [ah.dilation, aw.dilation], [ah.stride, aw.stride], {
      top: ph.before,
      bottom: ph.after,
      left: pw.before,
      right: pw.after,
    }); // [1, kh, kw, N*C*M]
    if (perImage.shape[1] !== kh || perImage.shape[2] !== kw) {
      throw new Error(`wasm DepthwiseConv2dNativeBackpropFilter: internal shape ${perImage.shape}, expected ${kh}x${kw}`);
    }
    if (n === 1) return s.reshape(perImage, [kh, kw, c, m]);
    const summed = s.run('Sum', { x: s.reshape(perImage, [kh * kw, n, c * m]) }, { axis: [1], keepDims: false });
    return s.reshape(summed, [kh, kw, c, m]);
  });
}

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter as unknown as tf.KernelFunc,
};
