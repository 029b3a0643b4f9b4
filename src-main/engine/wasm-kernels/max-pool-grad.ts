/**
 * MaxPoolGrad for the wasm backend, replacing the stock C++ one (~300 ms for ResNet's stem pool at
 * [16,112,112,64], 30x its forward pass).
 *
 * Same semantics as the `cpu` backend: each output's gradient goes to the first position of its
 * window (row-major scan) holding the strictly largest value; padding never wins. The scan keeps
 * a running max per channel, so the inner loops run over contiguous channels: in SIMD
 * (simd-kernels.ts) when the channel count is a multiple of 4, else in JS.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { WasmMemory } from './backend-module.js';
import { poolParts, runParts } from './kernel-pool.js';
import { type DepthwiseGeometry, type SimdKernels, simdKernels, simdKernelsOnMemory } from './simd-kernels.js';
import { heapOffset, type Info, runStock, type Shape4 } from './wasm-ops.js';

interface Attrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Byte addresses and strides of the batch's images. */
interface Images {
  x: number;
  dy: number;
  dx: number;
  n: number;
  xImage: number;
  dyImage: number;
}
const IMAGE_KEYS = ['x', 'dy', 'dx', 'n', 'xImage', 'dyImage'] as const;
const GEOMETRY_KEYS = ['h', 'w', 'ho', 'wo', 'channelBytes', 'kh', 'kw', 'sh', 'sw', 'dh', 'dw', 'pt', 'pl'] as const;

/** Part `part` of `parts`: a range of images (each zeroes and accumulates only its own dx). */
function imagesPart(simd: SimdKernels, m: Images, geometry: DepthwiseGeometry): (part: number, parts: number) => void {
  return (part, parts) => {
    for (let b = Math.floor((m.n * part) / parts); b < Math.floor((m.n * (part + 1)) / parts); b++) {
      simd.zero(m.dx + b * m.xImage, m.xImage);
      simd.maxPoolGrad(m.x + b * m.xImage, m.dy + b * m.dyImage, m.dx + b * m.xImage, geometry);
    }
  };
}

/** pool-tasks.ts' side of the pooled MaxPoolGrad. */
export function maxPoolGradTask(memory: WasmMemory, args: readonly number[]): (part: number, parts: number) => void {
  const simd = simdKernelsOnMemory(memory);
  if (!simd) throw new Error('the SIMD kernels could not be instantiated on this thread');
  const images = Object.fromEntries(IMAGE_KEYS.map((k, i) => [k, args[i]])) as unknown as Images;
  const geometry = Object.fromEntries(GEOMETRY_KEYS.map((k, i) => [k, args[IMAGE_KEYS.length + i]])) as unknown as DepthwiseGeometry;
  return imagesPart(simd, images, geometry);
}

export function maxPoolGrad(args: { inputs: { dy: Info; input: Info; output: Info }; backend: BackendWasm; attrs: Attrs }): Info {
  const { inputs, backend, attrs } = args;
  const { dy, input } = inputs;
  if (input.dtype !== 'float32') return runStock(tf.MaxPoolGrad, backend, inputs, attrs);
  const info = tf.backend_util.computePool2DInfo(
    input.shape as Shape4,
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo, inChannels: c } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const dx = backend.makeOutput(input.shape, 'float32');
  const { heap, offset: xOff } = heapOffset(backend, input);
  const dyOff = heapOffset(backend, dy).offset;
  const dxOff = heapOffset(backend, dx).offset;
  const simd = c % 4 === 0 ? simdKernels(backend) : null;
  if (simd) {
    const geometry = {
      h,
      w,
      ho,
      wo,
      channelBytes: c * 4,
      kh: info.filterHeight,
      kw: info.filterWidth,
      sh,
      sw,
      dh,
      dw,
      pt: info.padInfo.top,
      pl: info.padInfo.left,
    };
    const images = { x: xOff * 4, dy: dyOff * 4, dx: dxOff * 4, n, xImage: h * w * c * 4, dyImage: ho * wo * c * 4 };
    const args = [...IMAGE_KEYS.map((k) => images[k]), ...GEOMETRY_KEYS.map((k) => geometry[k])];
    // ~1.3 ns per element of x on one thread. Measured with 2 threads (ms, one thread -> pool):
    // 16x64x64x64 5.6 -> 3.4, 16x32x32x64 1.3 -> 0.8, 2x32x32x64 0.17 -> 0.26 (not split here).
    const parts = poolParts(backend, (n * h * w * c * 1.3) / 1000, n);
    const run = imagesPart(simd, images, geometry);
    runParts(backend, { name: 'maxPoolGrad', args }, parts, (part) => run(part, parts));
    return dx;
  }
  heap.fill(0, dxOff, dxOff + n * h * w * c);
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      const y0 = oy * sh - info.padInfo.top;
      for (let ox = 0; ox < wo; ox++) {
        const x0 = ox * sw - info.padInfo.left;
        best.fill(Number.NEGATIVE_INFINITY);
        where.fill(-1);
        for (let ky = 0; ky < fh; ky += dh) {
          const y = y0 + ky;
          if (y < 0 || y >= h) continue;
          for (let kx = 0; kx < fw; kx += dw) {
            const x = x0 + kx;
            if (x < 0 || x >= w) continue;
            const pixel = xOff + ((b * h + y) * w + x) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = heap[pixel + ch];
              if (v > best[ch]) {
                best[ch] = v;
                where[ch] = pixel + ch;
              }
            }
          }
        }
        const g = dyOff + ((b * ho + oy) * wo + ox) * c;
        for (let ch = 0; ch < c; ch++) {
          const at = where[ch];
          if (at >= 0) heap[at - xOff + dxOff] += heap[g + ch];
        }
      }
    }
  }
  return dx;
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as unknown as tf.KernelFunc,
};
