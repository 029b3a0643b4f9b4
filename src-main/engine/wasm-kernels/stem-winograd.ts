/**
 * 7x7 stride-2 convolutions (ResNet's stem) by Winograd F(3x3, 4x4).
 *
 * A stride-2 convolution of x is a stride-1 convolution of x's space-to-depth image S (each 2x2
 * block of pixels becomes one pixel of 4C channels, in (row, column, channel) order) with a 4x4
 * filter w' over those 4C channels: w'[qy, qx, (ry, rx, c)] = w[2qy + ry, 2qx + rx, c], zero where
 * 2q + r = 7. That stride-1 convolution goes through the Winograd products of winograd.ts with
 * 6x6 input tiles and 3x3 output tiles: 36 multiplies per 9 outputs instead of 16 * 9, so with
 * the 7x7 -> 8x8 padding ~2.9x fewer than the direct convolution's. ResNet-18's stem at 128 px,
 * batch 16: XNNPACK's direct convolution ~29 ms of a ~185 ms forward pass on 1 thread, this ~15 ms;
 * on 2 threads ~12-16 ms against ~14-17 (the space-to-depth copy and the transforms, not the
 * products, are most of what is left).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Epilogue, F3X4, filterTransform, useWinograd, weightTransform, winogradProducts } from './winograd.js';
import { simdKernels } from './simd-kernels.js';
import { G4 } from './winograd-transforms.js';
import { heapOffset, type Info, type Scratch, type Shape4 } from './wasm-ops.js';

const TAPS = 7;
/** Taps of the space-to-depth filter. */
const BLOCK_TAPS = 4;

/** Whether a convolution of this geometry goes through stemWinogradConv2d. */
export function useStemWinograd(
  backend: BackendWasm,
  filterShape: readonly number[],
  strides: readonly [number, number],
  dilations: readonly [number, number],
  n: number,
  outH: number,
  outW: number,
): boolean {
  const [kh, kw, ci, co] = filterShape;
  if (kh !== TAPS || kw !== TAPS || strides[0] !== 2 || strides[1] !== 2 || dilations[0] !== 1 || dilations[1] !== 1) return false;
  // The rule of the 3x3 layers (enough work, enough tiles) on the space-to-depth convolution: 4C
  // channels, and 49/4 taps each so that its direct cost is this convolution's.
  return useWinograd(backend, { n, outH, outW, ci: 4 * ci, co, taps: (TAPS * TAPS) / 4, tile: 3 }, 'forward');
}

/**
 * S [n, hs, ws, 4C]: S[b, i, j, (ry, rx, c)] = x[b, 2i + ry - top, 2j + rx - left, c], zero outside x.
 * Each (image, i, ry) is one row of x: the output pixels whose two source pixels are inside it are
 * one strided copy of 2C-float runs; the few at the edges are filled here.
 */
function spaceToDepth(s: Scratch, x: Info, top: number, left: number, hs: number, ws: number): Info {
  const [n, h, w, c] = x.shape as Shape4;
  const simd = simdKernels(s.backend);
  if (!simd) throw new Error('wasm-kernels: the space-to-depth copy needs wasm SIMD');
  const out = s.alloc([n, hs, ws, 4 * c]);
  const { heap, offset: src } = heapOffset(s.backend, x);
  const dst = heapOffset(s.backend, out).offset;
  const half = 2 * c; // the floats of one source row in an output pixel: (rx, c)
  // Output columns j whose source columns 2j - left and 2j - left + 1 are both inside x.
  const j0 = Math.min(ws, Math.max(0, Math.ceil(left / 2)));
  const j1 = Math.max(j0, Math.min(ws, Math.floor((w + left - 2) / 2) + 1));
  const edge = (o: number, row: number, j: number) => {
    for (let k = 0; k < half; k++) {
      const col = 2 * j - left + Math.floor(k / c);
      heap[o + k] = col >= 0 && col < w ? heap[row + col * c + (k % c)] : 0;
    }
  };
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < hs; i++) {
      for (let ry = 0; ry < 2; ry++) {
        const y = 2 * i + ry - top;
        const o = dst + (b * hs + i) * ws * 4 * c + ry * half;
        if (y < 0 || y >= h) {
          for (let j = 0; j < ws; j++) heap.fill(0, o + j * 4 * c, o + j * 4 * c + half);
          continue;
        }
        const row = src + (b * h + y) * w * c;
        for (let j = 0; j < j0; j++) edge(o + j * 4 * c, row, j);
        // Run j: 2C floats from column 2j - left; the next run starts 2 pixels (2C floats) on.
        if (j1 > j0) simd.copyRuns((row + (2 * j0 - left) * c) * 4, half * 4, (o + j0 * 4 * c) * 4, 16 * c, half * 4, j1 - j0);
        for (let j = j1; j < ws; j++) edge(o + j * 4 * c, row, j);
      }
    }
  }
  return out;
}

/** w' [4, 4, 4C, Co] of a [7, 7, C, Co] filter (see the top of the file). */
function blockFilter(s: Scratch, filter: Info): Info {
  const [, , c, co] = filter.shape as Shape4;
  const out = s.alloc([BLOCK_TAPS, BLOCK_TAPS, 4 * c, co]);
  const { heap, offset: src } = heapOffset(s.backend, filter);
  const dst = heapOffset(s.backend, out).offset;
  const plane = c * co; // floats of one tap of w
  let o = dst;
  for (let qy = 0; qy < BLOCK_TAPS; qy++) {
    for (let qx = 0; qx < BLOCK_TAPS; qx++) {
      for (let ry = 0; ry < 2; ry++) {
        for (let rx = 0; rx < 2; rx++) {
          const a = 2 * qy + ry;
          const b = 2 * qx + rx;
          if (a >= TAPS || b >= TAPS) heap.fill(0, o, o + plane);
          else heap.copyWithin(o, src + (a * TAPS + b) * plane, src + (a * TAPS + b + 1) * plane);
          o += plane;
        }
      }
    }
  }
  return out;
}

/**
 * y[n, oh, ow, co] = sum_{a, b, c} x[n, 2oh + a - top, 2ow + b - left, c] * w[a, b, c, co] (zeros
 * outside x) for a [7, 7, C, Co] filter, then + bias and the activation.
 */
export function stemWinogradConv2d(s: Scratch, x: Info, filter: Info, top: number, left: number, outH: number, outW: number, epilogue: Epilogue): Info {
  const [, , c, co] = filter.shape as Shape4;
  const transform = filterTransform(s, filter, 4 * c, co, (u) => {
    const blocks = blockFilter(s, filter);
    weightTransform(s, blocks, G4, u);
    s.release(blocks);
  });
  // Whole tiles: 3 outputs per tile plus the 3 extra inputs a 4-tap filter reads.
  const hs = 3 * Math.ceil(outH / 3) + 3;
  const ws = 3 * Math.ceil(outW / 3) + 3;
  const blocks = spaceToDepth(s, x, top, left, hs, ws);
  return winogradProducts(s, F3X4, blocks, transform, 0, 0, outH, outW, epilogue);
}
