/**
 * Stride-2 convolutions with 3x3 filters (ResNet's downsampling layers) and 7x7 filters (ResNet's
 * stem) by Winograd on the four phase images of the input.
 *
 * A stride-2 convolution of x is the sum of four stride-1 convolutions: phase (ry, rx) is the image
 * x_r[i, j] = x[2i + ry, 2j + rx] convolved with the PxP filter g_r[qy, qx] = w[2qy + ry, 2qx + rx]
 * (P = 2 for 3x3, 4 for 7x7; zero where 2q + r is past the filter). Each goes through Winograd
 * F(mxm, PxP): KxK input tiles (K = P + m - 1), mxm output tiles (m = 4, or 2 for a 3x3 filter
 * where that multiplies less: see schemeFor). All four share one transform
 * domain, so the products are summed over the phases' channels before a single output transform:
 * per position p, M[p] is one matrix product over 4C channels.
 *
 * The odd phases' filters have one tap fewer along their odd side, their last tap is zero, and
 * the point at infinity (G's last row) reads only the last tap: so (1, *) vanish on the last row
 * of positions and (*, 1) on the last column. The phases sit in the channels in the order (0,1)
 * (0,0) (1,0) (1,1), so that the phases left at each position are a contiguous channel range.
 * Multiplies per 16 outputs and input channel, against the direct convolution's:
 * - 3x3, F(4x4, 2x2): 16 products over 4C, 8 over 2C, 1 over C: 81 against 144;
 * - 3x3, F(2x2, 2x2): 4 over 4C, 4 over 2C, 1 over C per 4 outputs: 100 per 16 against 144;
 * - 7x7, F(4x4, 4x4): 36 over 4C, 12 over 2C, 1 over C: 169 against 784. (The space-to-depth form
 *   with F(3x3, 4x4) that this replaced took 256, and cropped its 3-pixel tiles off 64- and
 *   112-pixel maps.)
 * The products run on our GEMM (gemm.ts) instead of XNNPACK's direct convolution.
 *
 * Phase images are read in place where C is a multiple of 4 (one input transform per phase);
 * otherwise (an RGB image) they are copied side by side first, 4C channels per pixel. Up to 128
 * channels each thread runs the whole form block by block of tiles (winograd-blocks.ts), else each
 * step runs over chunks of images.
 *
 * Rounding: like winograd.ts, ~1e-6..1e-5 of the output scale.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Epilogue, byteAddress, byteAddressTable, CHUNK_BYTES, filterTransform, runBlocks, useWinograd, weightTransform, winogradStats } from './winograd.js';
import { type BlockForm, type BlockProducts, blocksPay, PHASES, phasesSideBySide } from './winograd-blocks.js';
import { AT2X3, AT4X5, AT4X7, BT3, BT5, BT7, G2, G2X2, G7X4, runTransformRows, type TransformRows, type TransformSpec } from './winograd-transforms.js';
import { runTableGemm, splitReduction } from './gemm.js';
import { simdKernels } from './simd-kernels.js';
import { crop4d, heapOffset, type Info, padSpatial, type Scratch, type Shape4 } from './wasm-ops.js';

interface Scheme {
  /** The convolution's filter side, its phases' (P), and outputs per tile side. */
  taps: number;
  phaseTaps: number;
  m: number;
  BT: readonly number[][];
  G: readonly number[][];
  AT: readonly number[][];
}

const F4X2: Scheme = { taps: 3, phaseTaps: 2, m: 4, BT: BT5, G: G2, AT: AT4X5 };
const F2X2: Scheme = { taps: 3, phaseTaps: 2, m: 2, BT: BT3, G: G2X2, AT: AT2X3 };
const F4X4: Scheme = { taps: 7, phaseTaps: 4, m: 4, BT: BT7, G: G7X4, AT: AT4X7 };

/**
 * The channel range (in phases) whose products position (u, v) of a KxK domain needs: (1,0) and
 * (1,1) vanish on the last row, (0,1) and (1,1) on the last column (the point at infinity).
 */
function phaseRange(u: number, v: number, k: number): { first: number; count: number } {
  const inf = k - 1;
  if (u < inf && v < inf) return { first: 0, count: 4 };
  if (u < inf) return { first: 1, count: 2 }; // (0,0), (1,0)
  if (v < inf) return { first: 0, count: 2 }; // (0,1), (0,0)
  return { first: 1, count: 1 }; // (0,0)
}

/**
 * Multiplies per image and pair of channels of a 3x3 scheme: per tile, (K-1)^2 positions over all
 * four phases, 2(K-1) over two, one over one.
 */
function multiplies(scheme: Scheme, outH: number, outW: number): number {
  const k = scheme.m + scheme.phaseTaps - 1;
  return Math.ceil(outH / scheme.m) * Math.ceil(outW / scheme.m) * (4 * (k - 1) ** 2 + 4 * (k - 1) + 1);
}

/**
 * The scheme for this convolution, if any. For 3x3, whichever multiplies less: F(2x2, 2x2) where
 * 4x4 tiles overhang the output (ResNet's layer 3 at 224 px, 14x14: 49 x 25 against 16 x 81;
 * batch 16, ms on 1 / 2 threads: 24.1 against 27.1, 14.5 against 16.2), F(4x4, 2x2) on a tie.
 * Measured with F(2x2) on whole 4x4 tiles it lost (16x16: 8.4 against 7.2, 4.4 against 3.9;
 * layer 4 at 128 px, 4x4 in one tile per image, in the model: 10.6 against 8.7, 5.8 against 6.1).
 */
function schemeFor(filterShape: readonly number[], outH: number, outW: number): Scheme | undefined {
  const [kh, kw] = filterShape;
  if (kh === 7 && kw === 7) return F4X4;
  if (kh !== 3 || kw !== 3) return undefined;
  return multiplies(F2X2, outH, outW) < multiplies(F4X2, outH, outW) ? F2X2 : F4X2;
}

/** Outputs per tile side that a stride-2 convolution with this filter and output size takes (tests). */
export const stridedTile = (filterShape: readonly number[], outH: number, outW: number): number | undefined => schemeFor(filterShape, outH, outW)?.m;

/** Whether a convolution of this geometry goes through stridedWinogradConv2d. */
export function useStridedWinograd(
  backend: BackendWasm,
  filterShape: readonly number[],
  strides: readonly [number, number],
  dilations: readonly [number, number],
  n: number,
  outH: number,
  outW: number,
): boolean {
  const [kh, , ci, co] = filterShape;
  const scheme = schemeFor(filterShape, outH, outW);
  if (!scheme || strides[0] !== 2 || strides[1] !== 2 || dilations[0] !== 1 || dilations[1] !== 1) return false;
  // Phases side by side only for a 7x7 stem: MobileNetV2's first layer (3x3, 3 -> 16 channels,
  // 224 px, batch 16) took 6.7 ms against XNNPACK's 4.3, products of 3-12 by 16 leaving our GEMM
  // idle; ResNet's stem, 3 -> 64 channels: 31 against 85.
  if (ci % 4 !== 0 && kh !== 7) return false;
  // In training the filter changes every step, so Winograd transforms it on every call, but
  // XNNPACK packs it on every call too: ResNet's layer 4 (256 -> 512 channels, 52 MB of planes),
  // batch 16, a fresh filter each call, 128 px: 11.4-13.3 against 19.0-19.6 ms on 1 thread,
  // 9.6 against 12.6-13.1 on 2; 224 px: 37 against 47, 22 against 27. (Compared with XNNPACK's
  // packing kept, as in inference, this layer had stayed on XNNPACK in training.)
  // The 3x3 layers' rule (enough work, enough tiles) on this convolution's direct cost; an RGB
  // image's 3 channels are 12 side by side.
  const sideBySide = ci % 4 !== 0;
  return useWinograd(backend, { n, outH, outW, ci: sideBySide ? 4 * ci : ci, co, taps: sideBySide ? (kh * kh) / 4 : kh * kh, tile: scheme.m }, 'forward');
}

/**
 * Whether stridedWinogradConv2d can max-pool its output as it goes (block-max-pool.ts): block by
 * block, in tiles of 4 (ResNet's stem).
 */
export const canPoolOutput = (filterShape: readonly number[], outH: number, outW: number): boolean =>
  schemeFor(filterShape, outH, outW)?.m === 4 && blocksPay(filterShape[2], filterShape[3]);

/** w' [P, P, 4C, Co] of a [T, T, C, Co] filter: the phases' filters side by side, in PHASES order. */
function phaseFilter(s: Scratch, filter: Info, scheme: Scheme): Info {
  const [taps, , c, co] = filter.shape as Shape4;
  const p = scheme.phaseTaps;
  const out = s.alloc([p, p, 4 * c, co]);
  const { heap, offset: src } = heapOffset(s.backend, filter);
  const dst = heapOffset(s.backend, out).offset;
  const plane = c * co; // floats of one tap of w
  let o = dst;
  for (let qy = 0; qy < p; qy++) {
    for (let qx = 0; qx < p; qx++) {
      for (const [ry, rx] of PHASES) {
        const a = 2 * qy + ry;
        const b = 2 * qx + rx;
        if (a >= taps || b >= taps) heap.fill(0, o, o + plane);
        else heap.copyWithin(o, src + (a * taps + b) * plane, src + (a * taps + b + 1) * plane);
        o += plane;
      }
    }
  }
  return out;
}

/**
 * The phase images of `padded` side by side: [n, hp / 2, wp / 2, 4C], pixel (i, j) holding
 * padded[2i + ry, 2j + rx] for each phase in PHASES order.
 */
function imagePhasesSideBySide(s: Scratch, padded: Info): Info {
  const [n, hp, wp, c] = padded.shape as Shape4;
  const simd = simdKernels(s.backend);
  if (!simd) throw new Error('wasm-kernels: the phase copy needs wasm SIMD');
  const out = s.alloc([n, hp / 2, wp / 2, 4 * c]);
  const image = hp * wp * c * 4;
  for (let b = 0; b < n; b++) phasesSideBySide(simd, byteAddress(s, padded) + b * image, byteAddress(s, out) + b * image, hp / 2, wp, c);
  return out;
}

/** A 3x3, stride-2 max pool of the output with top padding 1 (see canPoolOutput). */
export interface OutputPool {
  poolH: number;
  poolW: number;
  left: number;
}

/**
 * y[n, oh, ow, co] = sum_{a, b, c} x[n, 2oh + a - top, 2ow + b - left, c] * w[a, b, c, co] (zeros
 * outside x) for a [3, 3, C, Co] or [7, 7, C, Co] filter, then + bias and the activation; with
 * `pool`, that max-pooled instead.
 */
export function stridedWinogradConv2d(s: Scratch, x: Info, filter: Info, top: number, left: number, outH: number, outW: number, epilogue: Epilogue, pool?: OutputPool): Info {
  const scheme = schemeFor(filter.shape, outH, outW);
  if (!scheme) throw new Error(`wasm-kernels: no stride-2 Winograd for a ${filter.shape[0]}x${filter.shape[1]} filter`);
  winogradStats.forward++;
  const [n, h, w, c] = x.shape as Shape4;
  const co = filter.shape[3];
  const { m } = scheme;
  const k = m + scheme.phaseTaps - 1;
  const positions = k * k;
  const filterU = filterTransform(
    s,
    filter,
    4 * c,
    co,
    (u) => {
      const phases = phaseFilter(s, filter, scheme);
      weightTransform(s, phases, scheme.G, u);
      s.release(phases);
    },
    true,
    positions,
  );
  const th = Math.ceil(outH / m);
  const tw = Math.ceil(outW / m);
  if (pool && !canPoolOutput(filter.shape, outH, outW)) throw new Error('wasm-kernels: this convolution cannot pool its output');
  const y = pool ? s.alloc([n, pool.poolH, pool.poolW, co]) : s.alloc([n, m * th, m * tw, co]);
  const form = blockForm(scheme, c, co, tw, epilogue);
  const uAt = Array.from({ length: positions }, (_, p) => byteAddress(s, filterU.u) + p * filterU.u.shape[1] * 4);
  const bias = epilogue.bias ? byteAddress(s, epilogue.bias) : 0;
  // Block by block on the convolution's own channels (products over up to 4C): ResNet-18 at 128 px,
  // batch 16, 1 / 2 threads, layer 2's 64 -> 128: 8.3 -> 7.7 / 6.7 -> 5.4 ms; the 7x7 stem
  // 13.5 -> 13.2 / 9.7 -> 7.9, which reads its padding there instead of in a copy of the image.
  if (blocksPay(c, co)) {
    winogradStats.blocks++;
    const call = { x: byteAddress(s, x), y: byteAddress(s, y), shape: { n, h, w, ci: c, co, th, tw }, top, left, uTable: byteAddressTable(s, uAt), bias };
    runBlocks(s, form, pool ? { ...call, pool: { ...pool, y: call.y, outH, outW } } : call);
  } else {
    chunked(s, form, x, y, uAt, top, left, bias);
  }
  if (filterU.owned) s.release(filterU.u);
  return pool ? y : crop4d(s, y, 0, 0, outH, outW);
}

/**
 * The form of winograd-blocks.ts for this scheme: 2K input rows per row of tiles (K phase rows);
 * one input transform per phase reading the strip in place (each writes its C channels of every
 * tile), or one over the phases copied side by side; the products grouped by phase range.
 */
function blockForm(scheme: Scheme, c: number, co: number, tw: number, epilogue: Epilogue): BlockForm {
  const { m } = scheme;
  const k = m + scheme.phaseTaps - 1;
  // Phase columns 0..m*tw + K - m - 1 (K per tile, tiles m apart) are input columns up to twice that + 1.
  const width = 2 * (m * tw + k - m);
  const pix = c * 4;
  const inPlace = c % 4 === 0;
  // In place, a phase's pixels are 2 pixels apart in a row, its rows 2 rows apart.
  const inputs = inPlace
    ? PHASES.map(([ry, rx], slot) => {
        const spec: TransformSpec = { L: scheme.BT, input: { kind: 'image', rowBytes: 2 * width * pix, pixBytes: 2 * pix, tile: m }, output: { kind: 'table', tileBytes: 4 * pix } };
        return { spec: JSON.stringify(spec), src: (ry * width + rx) * pix, at: slot * pix, chanBytes: pix };
      })
    : [{ spec: JSON.stringify({ L: scheme.BT, input: { kind: 'image', rowBytes: (width / 2) * 4 * pix, pixBytes: 4 * pix, tile: m }, output: { kind: 'table' } }), src: 0, at: 0, chanBytes: 4 * pix }];
  const output: TransformSpec = {
    L: scheme.AT,
    input: { kind: 'table' },
    output: { kind: 'image', rowBytes: m * tw * co * 4, pixBytes: co * 4, tile: m },
    bias: epilogue.bias !== undefined,
    act: epilogue.act,
  };
  return { tile: m, positions: k * k, depth: 4 * c, span: 2 * k, rowStep: 2 * m, width, sideBySideRows: inPlace ? 0 : k, inputs, products: productGroups(k, c, co), output: JSON.stringify(output) };
}

/**
 * The products M[p] = V[p][:, range] x U[p][range, :], grouped by phase range (reduction 4C, 2C
 * or C), A and B starting at the range's first phase.
 */
function productGroups(k: number, c: number, co: number): BlockProducts[] {
  const groups = new Map<string, BlockProducts>();
  for (let u = 0; u < k; u++) {
    for (let w = 0; w < k; w++) {
      const { first, count } = phaseRange(u, w, k);
      const key = `${first} ${count}`;
      if (!groups.has(key)) groups.set(key, { layout: { k: count * c, lda: 4 * c, ldb: co, ldc: co }, positions: [], aOffset: first * c * 4, bOffset: first * c * co * 4 });
      groups.get(key)!.positions.push(u * k + w);
    }
  }
  // The 4-phase products of a layer with 256 input channels reduce over 1024: in two halves.
  return [...groups.values()].flatMap((g) =>
    splitReduction(g.layout).map((piece) => ({ ...g, layout: piece.layout, aOffset: g.aOffset + piece.aOffset * 4, bOffset: g.bOffset + piece.bRowOffset * co * 4 })),
  );
}

/**
 * The form run over chunks of whole images, each step one pool task: the padded image (or its
 * phases side by side) transformed, all products, the output transform.
 */
function chunked(s: Scratch, form: BlockForm, x: Info, y: Info, uAt: number[], top: number, left: number, bias: number): void {
  const [n, hq, wq, co] = y.shape as Shape4;
  const c = x.shape[3];
  const [th, tw] = [hq / form.tile, wq / form.tile];
  const hp = form.rowStep * (th - 1) + form.span;
  const wp = form.width;
  const padded = padSpatial(s, x, top, left, hp, wp);
  const source = form.sideBySideRows > 0 ? imagePhasesSideBySide(s, padded) : padded;
  if (source !== padded && padded !== x) s.release(padded);
  const perImage = th * tw;
  const chunk = Math.max(1, Math.min(n, Math.floor(CHUNK_BYTES / (form.positions * perImage * (form.depth + co) * 4))));
  const v = Array.from({ length: form.positions }, () => s.alloc([chunk * perImage, form.depth]));
  const m = Array.from({ length: form.positions }, () => s.alloc([chunk * perImage, co]));
  const [vAt, mAt] = [v, m].map((list) => list.map((b) => byteAddress(s, b)));
  const mTable = byteAddressTable(s, mAt);
  const [pixOut, rowIn] = [co * 4, form.depth * 4];
  const inputTables = form.inputs.map((input) => byteAddressTable(s, vAt.map((at) => at + input.at)));
  const inputSpecs = form.inputs.map((input) => JSON.parse(input.spec) as TransformSpec);
  const outputSpec = JSON.parse(form.output) as TransformSpec;
  const products = form.products.map((g) => ({
    layout: g.layout,
    aTable: byteAddressTable(s, g.positions.map((p) => vAt[p] + g.aOffset)),
    bTable: byteAddressTable(s, g.positions.map((p) => uAt[p] + g.bOffset)),
    cTable: byteAddressTable(s, g.positions.map((p) => mAt[p])),
    count: g.positions.length,
  }));
  // Both sources hold one row of tiles in rowStep input rows' worth of bytes.
  const tileRow = form.rowStep * wp * c * 4;
  const sourceImage = hp * wp * c * 4;
  const T = ((globalThis as any).__ch ??= [0, 0, 0, 0]) as number[]; let t = performance.now(); const lap = (i: number) => { const q = performance.now(); T[i] += q - t; t = q; };
  lap(3);
  for (let b0 = 0; b0 < n; b0 += chunk) {
    const images = Math.min(chunk, n - b0);
    const base = byteAddress(s, source) + b0 * sourceImage;
    form.inputs.forEach((input, i) => {
      const rows: TransformRows = {
        src: base + input.src,
        srcImage: sourceImage,
        srcRow: tileRow,
        dst: inputTables[i],
        dstImage: perImage * rowIn,
        dstRow: tw * rowIn,
        n: images,
        th,
        tw,
        chanBytes: input.chanBytes,
        bias: 0,
      };
      runTransformRows(s.backend, inputSpecs[i], rows);
    });
    lap(0);
    for (const group of products) {
      if (!runTableGemm(s.backend, { ...group, m: images * perImage, n: co })) throw new Error('wasm-kernels: the Winograd products need wasm SIMD');
    }
    const rows: TransformRows = {
      src: mTable,
      srcImage: perImage * pixOut,
      srcRow: tw * pixOut,
      dst: byteAddress(s, y) + b0 * hq * wq * pixOut,
      dstImage: hq * wq * pixOut,
      dstRow: form.tile * wq * pixOut,
      n: images,
      th,
      tw,
      chanBytes: pixOut,
      bias,
    };
    lap(1);
    runTransformRows(s.backend, outputSpec, rows);
    lap(2);
  }
  for (const b of [...v, ...m]) s.release(b);
  if (source !== x) s.release(source);
}
