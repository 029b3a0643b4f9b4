/**
 * Hand-written WebAssembly SIMD loops for the memory-bound parts of backpropagation that no stock
 * wasm kernel covers in one pass. They run on the tfjs wasm heap itself (the module imports the
 * backend's memory), 4 floats per instruction, so a fused gradient costs one read of its inputs
 * and one write of its output: e.g. ClipByValue's gradient (ReLU6) is five stock kernels
 * (GreaterEqual, LessEqual, LogicalAnd, ZerosLike, Select: ~10 ns/element) but one pass here.
 *
 * Every loop works on whole 4-float vectors; callers handle sizes that are not multiples of 4
 * (or fall back to stock kernels). Addresses and sizes are in bytes.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { exportsOnBackend, exportsOnMemory, type WasmExports, type WasmMemory } from './backend-module.js';
import { encodeModule, forLoop, type FunctionDef, op } from './wasm-asm.js';

const at = (base: number, offset: number) => [...op.get(base), ...op.get(offset), ...op.i32Add];

/** out = (lo <= x <= hi) ? dy : 0, or with lo < x when `strictLow`. (x, dy, out, bytes, lo, hi) */
function maskGrad(name: string, strictLow: boolean): FunctionDef {
  const [x, dy, out, bytes, lo, hi, p, vlo, vhi, v] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  return {
    name,
    params: ['i32', 'i32', 'i32', 'i32', 'f32', 'f32'],
    locals: ['i32', 'v128', 'v128', 'v128'],
    body: [
      [...op.get(lo), ...op.f32x4Splat, ...op.set(vlo), ...op.get(hi), ...op.f32x4Splat, ...op.set(vhi)],
      forLoop(p, bytes, 16, [
        at(out, p),
        [...at(x, p), ...op.v128Load(), ...op.tee(v), ...op.get(vlo), ...(strictLow ? op.f32x4Gt : op.f32x4Ge)],
        [...op.get(v), ...op.get(vhi), ...op.f32x4Le, ...op.v128And],
        [...at(dy, p), ...op.v128Load(), ...op.v128And, ...op.v128Store()],
      ]),
    ],
  };
}

/**
 * out = x clamped to [lo, hi] over `bytes` (a multiple of 16), the way tfjs' cpu backend clamps for
 * each kernel, so that NaN and -0 come out as they do there (NaN stays NaN in all three):
 * - 'clip' (ClipByValue): x < lo ? lo : (x > hi ? hi : x), -0 passes;
 * - 'relu6': max(x, 0) first, which turns -0 into +0, then the upper bound;
 * - 'relu': max(x, 0) only (lo, hi ignored).
 * The pseudo-min/max instructions are one SSE instruction each; the NaN- and -0-aware f32x4.max is
 * a sequence, used only where those semantics need it (MobileNetV2's 36 Relu with f32x4.max and
 * f32x4.min: 4.7 ms against 2.1 with max alone). (x, out, bytes, lo, hi)
 */
export type ClampKind = 'clip' | 'relu6' | 'relu';

function clamp(kind: ClampKind): FunctionDef {
  const [x, out, bytes, lo, hi, p, vlo, vhi] = [0, 1, 2, 3, 4, 5, 6, 7];
  const low = kind === 'clip' ? [...op.get(vlo), ...op.f32x4Pmax] : [...op.f32x4Const(0), ...op.f32x4Max];
  const high = kind === 'relu' ? [] : [...op.get(vhi), ...op.f32x4Pmin];
  return {
    name: `clamp_${kind}`,
    params: ['i32', 'i32', 'i32', 'f32', 'f32'],
    locals: ['i32', 'v128', 'v128'],
    body: [
      [...op.get(lo), ...op.f32x4Splat, ...op.set(vlo), ...op.get(hi), ...op.f32x4Splat, ...op.set(vhi)],
      forLoop(p, bytes, 16, [[...at(out, p), ...at(x, p), ...op.v128Load(), ...low, ...high, ...op.v128Store()]]),
    ],
  };
}

/** dst += src over `bytes` (a multiple of 16). (dst, src, bytes) */
function addInto(): FunctionDef {
  const [dst, src, bytes, p] = [0, 1, 2, 3];
  return {
    name: 'add_into',
    params: ['i32', 'i32', 'i32'],
    locals: ['i32'],
    body: [
      forLoop(p, bytes, 16, [
        at(dst, p),
        [...at(dst, p), ...op.v128Load(), ...at(src, p), ...op.v128Load(), ...op.f32x4Add, ...op.v128Store()],
      ]),
    ],
  };
}

/** out[r, c] = (x[r, c] - mean[c]) * k[c] + offset[c]: BatchNorm. (x, mean, k, offset, out, totalBytes, rowBytes) */
function batchNormForward(): FunctionDef {
  const [x, mean, k, offset, out, total, rowBytes, base, c] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  return {
    name: 'bn_forward',
    params: Array(7).fill('i32'),
    locals: ['i32', 'i32'],
    body: [
      forLoop(base, total, { local: rowBytes }, [
        forLoop(c, rowBytes, 16, [
          [...at(out, base), ...op.get(c), ...op.i32Add],
          [...at(x, base), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...at(mean, c), ...op.v128Load(), ...op.f32x4Sub],
          [...at(k, c), ...op.v128Load(), ...op.f32x4Mul, ...at(offset, c), ...op.v128Load(), ...op.f32x4Add],
          op.v128Store(),
        ]),
      ]),
    ],
  };
}

/**
 * out[r, c] = dy[r, c] * a[c] + (x[r, c] - mean[c]) * b[c] + d[c]: the BatchNorm input gradient in
 * closed form. (x, dy, mean, a, b, d, out, totalBytes, rowBytes)
 */
function batchNormBackward(): FunctionDef {
  const [x, dy, mean, a, b, d, out, total, rowBytes, base, c] = Array.from({ length: 11 }, (_, i) => i);
  return {
    name: 'bn_backward',
    params: Array(9).fill('i32'),
    locals: ['i32', 'i32'],
    body: [
      forLoop(base, total, { local: rowBytes }, [
        forLoop(c, rowBytes, 16, [
          [...at(out, base), ...op.get(c), ...op.i32Add],
          [...at(dy, base), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...at(a, c), ...op.v128Load(), ...op.f32x4Mul],
          [...at(x, base), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...at(mean, c), ...op.v128Load(), ...op.f32x4Sub],
          [...at(b, c), ...op.v128Load(), ...op.f32x4Mul, ...op.f32x4Add, ...at(d, c), ...op.v128Load(), ...op.f32x4Add],
          op.v128Store(),
        ]),
      ]),
    ],
  };
}

/**
 * fastai Adam for one parameter (see adam-step.ts):
 * avg' = avg*mom + g*(1-mom); sqr' = sqr*sqrMom + g*g*(1-sqrMom);
 * p' = p*decay - avg' / (sqrt(sqr'/debias2) + eps) * stepSize.
 * (p, g, avg, sqr, outP, outAvg, outSqr, bytes, decay, mom, sqrMom, eps, debias2, stepSize)
 */
function adamStep(): FunctionDef {
  const [p, g, avg, sqr, outP, outAvg, outSqr, bytes] = Array.from({ length: 8 }, (_, i) => i);
  const [decay, mom, sqrMom, eps, debias2, stepSize] = Array.from({ length: 6 }, (_, i) => 8 + i);
  const [i, vg, va, vq, kDecay, kMom, kMom1, kSqr, kSqr1, kEps, kDebias2, kStep] = Array.from({ length: 12 }, (_, k) => 14 + k);
  const splat = (from: number, to: number) => [...op.get(from), ...op.f32x4Splat, ...op.set(to)];
  const oneMinus = (from: number, to: number) => [...op.f32(1), ...op.get(from), ...op.f32Sub, ...op.f32x4Splat, ...op.set(to)];
  return {
    name: 'adam_step',
    params: [...Array(8).fill('i32'), ...Array(6).fill('f32')],
    locals: ['i32', ...Array(11).fill('v128')],
    body: [
      splat(decay, kDecay),
      splat(mom, kMom),
      oneMinus(mom, kMom1),
      splat(sqrMom, kSqr),
      oneMinus(sqrMom, kSqr1),
      splat(eps, kEps),
      splat(debias2, kDebias2),
      splat(stepSize, kStep),
      forLoop(i, bytes, 16, [
        [...at(g, i), ...op.v128Load(), ...op.set(vg)],
        // avg'
        [...at(avg, i), ...op.v128Load(), ...op.get(kMom), ...op.f32x4Mul, ...op.get(vg), ...op.get(kMom1), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(va)],
        [...at(outAvg, i), ...op.get(va), ...op.v128Store()],
        // sqr'
        [...at(sqr, i), ...op.v128Load(), ...op.get(kSqr), ...op.f32x4Mul, ...op.get(vg), ...op.get(vg), ...op.f32x4Mul, ...op.get(kSqr1), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(vq)],
        [...at(outSqr, i), ...op.get(vq), ...op.v128Store()],
        // p'
        [...at(outP, i), ...at(p, i), ...op.v128Load(), ...op.get(kDecay), ...op.f32x4Mul],
        [...op.get(va), ...op.get(vq), ...op.get(kDebias2), ...op.f32x4Div, ...op.f32x4Sqrt, ...op.get(kEps), ...op.f32x4Add, ...op.f32x4Div],
        [...op.get(kStep), ...op.f32x4Mul, ...op.f32x4Sub, ...op.v128Store()],
      ]),
    ],
  };
}

/**
 * Per channel: sumDy[c] += dy[r, c]; sumDxm[c] += dy[r, c] * (x[r, c] - mean[c]).
 * (x, dy, mean, sumDy, sumDxm, totalBytes, rowBytes)
 */
function batchNormSums(): FunctionDef {
  const [x, dy, mean, sumDy, sumDxm, total, rowBytes, base, c, d] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  return {
    name: 'bn_sums',
    params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
    locals: ['i32', 'i32', 'v128'],
    body: [
      forLoop(base, total, { local: rowBytes }, [
        forLoop(c, rowBytes, 16, [
          [...at(dy, base), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...op.set(d)],
          [...at(sumDy, c), ...at(sumDy, c), ...op.v128Load(), ...op.get(d), ...op.f32x4Add, ...op.v128Store()],
          [...at(sumDxm, c), ...at(sumDxm, c), ...op.v128Load()],
          [...at(x, base), ...op.get(c), ...op.i32Add, ...op.v128Load(), ...at(mean, c), ...op.v128Load(), ...op.f32x4Sub],
          [...op.get(d), ...op.f32x4Mul, ...op.f32x4Add, ...op.v128Store()],
        ]),
      ]),
    ],
  };
}

/**
 * Depthwise filter gradient (channel multiplier 1) of one image:
 * acc[a, b, c] += x[y, xx, c] * dy[oh, ow, c] with y = oh*sh + a*dh - pt, xx = ow*sw + b*dw - pl.
 * (x, dy, acc, H, W, Ho, Wo, channelBytes, kh, kw, sh, sw, dh, dw, pt, pl)
 */
function depthwiseFilterGrad(): FunctionDef {
  const [x, dy, acc, H, W, Ho, Wo, cb, kh, kw, sh, sw, dh, dw, pt, pl] = Array.from({ length: 16 }, (_, i) => i);
  const [oh, ow, a, b, y, xx, dyPix, xRow, accPix, c, xPix] = Array.from({ length: 11 }, (_, i) => 16 + i);
  return {
    name: 'dw_filter_grad',
    params: Array(16).fill('i32'),
    locals: Array(11).fill('i32'),
    body: [
      forLoop(oh, Ho, 1, [
        forLoop(ow, Wo, 1, [
          // dyPix = dy + (oh * Wo + ow) * cb
          [...op.get(dy), ...op.get(oh), ...op.get(Wo), ...op.i32Mul, ...op.get(ow), ...op.i32Add, ...op.get(cb), ...op.i32Mul, ...op.i32Add, ...op.set(dyPix)],
          forLoop(a, kh, 1, [
            [...op.get(oh), ...op.get(sh), ...op.i32Mul, ...op.get(a), ...op.get(dh), ...op.i32Mul, ...op.i32Add, ...op.get(pt), ...op.i32Sub, ...op.set(y)],
            [...op.get(y), ...op.i32(0), ...op.i32GeS, ...op.get(y), ...op.get(H), ...op.i32LtS, ...op.i32And, ...op.if],
            [...op.get(x), ...op.get(y), ...op.get(W), ...op.i32Mul, ...op.get(cb), ...op.i32Mul, ...op.i32Add, ...op.set(xRow)],
            forLoop(b, kw, 1, [
              [...op.get(ow), ...op.get(sw), ...op.i32Mul, ...op.get(b), ...op.get(dw), ...op.i32Mul, ...op.i32Add, ...op.get(pl), ...op.i32Sub, ...op.set(xx)],
              [...op.get(xx), ...op.i32(0), ...op.i32GeS, ...op.get(xx), ...op.get(W), ...op.i32LtS, ...op.i32And, ...op.if],
              [...op.get(xRow), ...op.get(xx), ...op.get(cb), ...op.i32Mul, ...op.i32Add, ...op.set(xPix)],
              [...op.get(acc), ...op.get(a), ...op.get(kw), ...op.i32Mul, ...op.get(b), ...op.i32Add, ...op.get(cb), ...op.i32Mul, ...op.i32Add, ...op.set(accPix)],
              forLoop(c, cb, 16, [
                [...at(accPix, c), ...at(accPix, c), ...op.v128Load()],
                [...at(xPix, c), ...op.v128Load(), ...at(dyPix, c), ...op.v128Load(), ...op.f32x4Mul],
                [...op.f32x4Add, ...op.v128Store()],
              ]),
              op.end,
            ]),
            op.end,
          ]),
        ]),
      ]),
    ],
  };
}

/**
 * MaxPoolGrad of one image, dx pre-zeroed: each output's gradient goes to the first position of
 * its window (row-major) holding the strictly largest value, as on the cpu backend. The running
 * max and its position are kept per channel in vectors; the 4 positions are then scattered.
 * (x, dy, dx, H, W, Ho, Wo, channelBytes, fh, fw, sh, sw, dh, dw, pt, pl)
 */
function maxPoolGrad(): FunctionDef {
  const [x, dy, dx, H, W, Ho, Wo, cb, fh, fw, sh, sw, dh, dw, pt, pl] = Array.from({ length: 16 }, (_, i) => i);
  const [oh, ow, c, a, b, y, xx, tap, dyPix, where] = Array.from({ length: 10 }, (_, i) => 16 + i);
  const [best, pos, v, gt] = [26, 27, 28, 29];
  const scatterLane = (lane: number) => [
    [...op.get(pos), ...op.i32x4ExtractLane(lane), ...op.set(where)],
    [...op.get(where), ...op.i32(0), ...op.i32GeS, ...op.if],
    // dx[where + c + 4*lane] += dy[dyPix + c + 4*lane]
    [...op.get(dx), ...op.get(where), ...op.i32Add, ...op.get(c), ...op.i32Add],
    [...op.get(dx), ...op.get(where), ...op.i32Add, ...op.get(c), ...op.i32Add, ...op.f32Load(4 * lane)],
    [...at(dyPix, c), ...op.f32Load(4 * lane), ...op.f32Add, ...op.f32Store(4 * lane)],
    op.end,
  ];
  return {
    name: 'max_pool_grad',
    params: Array(16).fill('i32'),
    locals: [...Array(10).fill('i32'), 'v128', 'v128', 'v128', 'v128'],
    body: [
      forLoop(oh, Ho, 1, [
        forLoop(ow, Wo, 1, [
          [...op.get(dy), ...op.get(oh), ...op.get(Wo), ...op.i32Mul, ...op.get(ow), ...op.i32Add, ...op.get(cb), ...op.i32Mul, ...op.i32Add, ...op.set(dyPix)],
          forLoop(c, cb, 16, [
            [...op.f32(Number.NEGATIVE_INFINITY), ...op.f32x4Splat, ...op.set(best), ...op.i32(-1), ...op.i32x4Splat, ...op.set(pos)],
            forLoop(a, fh, 1, [
              [...op.get(oh), ...op.get(sh), ...op.i32Mul, ...op.get(a), ...op.get(dh), ...op.i32Mul, ...op.i32Add, ...op.get(pt), ...op.i32Sub, ...op.set(y)],
              [...op.get(y), ...op.i32(0), ...op.i32GeS, ...op.get(y), ...op.get(H), ...op.i32LtS, ...op.i32And, ...op.if],
              forLoop(b, fw, 1, [
                [...op.get(ow), ...op.get(sw), ...op.i32Mul, ...op.get(b), ...op.get(dw), ...op.i32Mul, ...op.i32Add, ...op.get(pl), ...op.i32Sub, ...op.set(xx)],
                [...op.get(xx), ...op.i32(0), ...op.i32GeS, ...op.get(xx), ...op.get(W), ...op.i32LtS, ...op.i32And, ...op.if],
                // tap = (y * W + xx) * cb, the pixel's byte offset in the image
                [...op.get(y), ...op.get(W), ...op.i32Mul, ...op.get(xx), ...op.i32Add, ...op.get(cb), ...op.i32Mul, ...op.set(tap)],
                [...op.get(x), ...op.get(tap), ...op.i32Add, ...op.get(c), ...op.i32Add, ...op.v128Load(), ...op.tee(v)],
                [...op.get(best), ...op.f32x4Gt, ...op.set(gt)],
                [...op.get(v), ...op.get(best), ...op.get(gt), ...op.v128Bitselect, ...op.set(best)],
                [...op.get(tap), ...op.i32x4Splat, ...op.get(pos), ...op.get(gt), ...op.v128Bitselect, ...op.set(pos)],
                op.end,
              ]),
              op.end,
            ]),
            ...[0, 1, 2, 3].flatMap(scatterLane),
          ]),
        ]),
      ]),
    ],
  };
}

/**
 * `count` runs of `runBytes` (a multiple of 4) bytes, run r from src + r*srcStep to
 * dst + r*dstStep: a strided gather one JS loop did ~5x slower in a training step.
 * (src, srcStep, dst, dstStep, runBytes, count)
 */
function copyRuns(): FunctionDef {
  const [src, srcStep, dst, dstStep, runBytes, count, r, k, ps, pd] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const advance = (p: number, step: number) => [...op.get(p), ...op.get(step), ...op.i32Add, ...op.set(p)];
  return {
    name: 'copy_runs',
    params: Array(6).fill('i32'),
    locals: Array(4).fill('i32'),
    body: [
      [...op.get(src), ...op.set(ps), ...op.get(dst), ...op.set(pd)],
      forLoop(r, count, 1, [
        forLoop(k, runBytes, 4, [[...at(pd, k), ...at(ps, k), ...op.f32Load(), ...op.f32Store()]]),
        advance(ps, srcStep),
        advance(pd, dstStep),
      ]),
    ],
  };
}

/**
 * A strip of rows with a zero border (winograd-blocks.ts' copyStrip): `before` zero rows, `rows`
 * rows each `left` zero bytes, `copy` bytes from the source row, `right` zero bytes, then `after`
 * zero rows; dst rows `dstRow` bytes apart, source rows `srcRow`. With bulk memory, as the
 * JavaScript fill and copyWithin that did this ran ~3x slower on the shared heap of a threaded
 * backend (ResNet's stem, 128 px, batch 16, 2 threads: 0.8 ms of a thread's 6.4).
 * (src, srcRow, dst, dstRow, before, rows, after, left, copy, right)
 */
function stripRows(): FunctionDef {
  const [src, srcRow, dst, dstRow, before, rows, after, left, copy, right, r] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const zero = (at: number[], bytes: number[]) => [...at, ...op.i32(0), ...bytes, ...op.memoryFill];
  const advance = (p: number, bytes: number[]) => [...op.get(p), ...bytes, ...op.i32Add, ...op.set(p)];
  const rowsBytes = (count: number) => [...op.get(count), ...op.get(dstRow), ...op.i32Mul];
  return {
    name: 'strip_rows',
    params: Array(10).fill('i32'),
    locals: ['i32'],
    body: [
      zero(op.get(dst), rowsBytes(before)),
      advance(dst, rowsBytes(before)),
      forLoop(r, rows, 1, [
        zero(op.get(dst), op.get(left)),
        [...at(dst, left), ...op.get(src), ...op.get(copy), ...op.memoryCopy],
        zero([...at(dst, left), ...op.get(copy), ...op.i32Add], op.get(right)),
        advance(dst, op.get(dstRow)),
        advance(src, op.get(srcRow)),
      ]),
      zero(op.get(dst), rowsBytes(after)),
    ],
  };
}

/**
 * One output row of a 3x3, stride-2 max pool: dst pixel j the max over rows r0, r1, r2 (byte
 * addresses of input rows; the caller repeats a row for a window past the image's edge) and
 * columns 2j - left + {0, 1, 2}, clamped to [0, w - 1] (repeating a column changes no max, so the
 * window is the padded one with the padding never winning). From -inf through f32x4.pmax(acc, x),
 * acc < x ? x : acc, one maxps each (max is a NaN- and -0-aware sequence): a NaN never wins, as in
 * the cpu backend's pool. (r0, r1, r2, dst, outW, w, pixBytes (a multiple of 16), left)
 */
function maxPoolRow(): FunctionDef {
  const [r0, r1, r2, dst, outW, w, pix, left, j, v, o0, o1, o2, last] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const rows = [r0, r1, r2];
  const cols = [o0, o1, o2];
  // o = clamp(2j - left + k, 0, w - 1) * pix
  const column = (o: number, k: number) => [
    ...op.get(j), ...op.i32(1), ...op.i32Shl, ...op.get(left), ...op.i32Sub, ...op.i32(k), ...op.i32Add, ...op.set(o),
    ...op.i32(0), ...op.get(o), ...op.get(o), ...op.i32(0), ...op.i32LtS, ...op.select, ...op.set(o),
    ...op.get(last), ...op.get(o), ...op.get(o), ...op.get(last), ...op.i32GeS, ...op.select, ...op.get(pix), ...op.i32Mul, ...op.set(o),
  ];
  const load = (row: number, col: number) => [...op.get(row), ...op.get(col), ...op.i32Add, ...op.get(v), ...op.i32Add, ...op.v128Load()];
  const max: number[] = [...op.f32x4Const(-Infinity)];
  for (const row of rows) for (const col of cols) max.push(...load(row, col), ...op.f32x4Pmax);
  return {
    name: 'max_pool_row',
    params: Array(8).fill('i32'),
    locals: Array(6).fill('i32'),
    body: [
      [...op.get(w), ...op.i32(1), ...op.i32Sub, ...op.set(last)],
      forLoop(j, outW, 1, [
        ...cols.map((o, k) => column(o, k)),
        forLoop(v, pix, 16, [[...op.get(dst), ...op.get(v), ...op.i32Add, ...max, ...op.v128Store()]]),
        [...op.get(dst), ...op.get(pix), ...op.i32Add, ...op.set(dst)],
      ]),
    ],
  };
}

/** `bytes` zero bytes at dst (bulk memory, for the same reason as stripRows). (dst, bytes) */
function zero(): FunctionDef {
  return { name: 'zero', params: ['i32', 'i32'], locals: [], body: [[...op.get(0), ...op.i32(0), ...op.get(1), ...op.memoryFill]] };
}

export interface SimdKernels {
  /** out = (lo <= x <= hi) ? dy : 0 (lo < x with strictLow), over `bytes` (a multiple of 16). */
  maskGrad(x: number, dy: number, out: number, bytes: number, lo: number, hi: number, strictLow: boolean): void;
  batchNormSums(x: number, dy: number, mean: number, sumDy: number, sumDxm: number, totalBytes: number, rowBytes: number): void;
  batchNormForward(x: number, mean: number, k: number, offset: number, out: number, totalBytes: number, rowBytes: number): void;
  batchNormBackward(x: number, dy: number, mean: number, a: number, b: number, d: number, out: number, totalBytes: number, rowBytes: number): void;
  adamStep(p: number, g: number, avg: number, sqr: number, outP: number, outAvg: number, outSqr: number, bytes: number, h: AdamHyper): void;
  depthwiseFilterGrad(x: number, dy: number, acc: number, geometry: DepthwiseGeometry): void;
  /** One image; the same geometry fields, kh/kw being the (effective) pool window. */
  maxPoolGrad(x: number, dy: number, dx: number, geometry: DepthwiseGeometry): void;
  /** dst += src over `bytes` (a multiple of 16). */
  addInto(dst: number, src: number, bytes: number): void;
  /** x clamped to [lo, hi] over `bytes` (a multiple of 16), NaN and -0 as cpu's kernel of that kind. */
  clamp(kind: ClampKind, x: number, out: number, bytes: number, lo: number, hi: number): void;
  /** See copyRuns above. */
  copyRuns(src: number, srcStep: number, dst: number, dstStep: number, runBytes: number, count: number): void;
  /** See maxPoolRow above. */
  maxPoolRow(r0: number, r1: number, r2: number, dst: number, outW: number, w: number, pixBytes: number, left: number): void;
  /** See zero above. */
  zero(dst: number, bytes: number): void;
  /** See stripRows above. */
  stripRows(src: number, srcRow: number, dst: number, dstRow: number, before: number, rows: number, after: number, left: number, copy: number, right: number): void;
}

export interface AdamHyper {
  decay: number;
  mom: number;
  sqrMom: number;
  eps: number;
  debias2: number;
  stepSize: number;
}

export interface DepthwiseGeometry {
  h: number;
  w: number;
  ho: number;
  wo: number;
  channelBytes: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  pt: number;
  pl: number;
}

const FUNCTIONS = (): FunctionDef[] => [
  maskGrad('mask_grad_ge', false),
  maskGrad('mask_grad_gt', true),
  batchNormSums(),
  batchNormForward(),
  batchNormBackward(),
  adamStep(),
  depthwiseFilterGrad(),
  maxPoolGrad(),
  addInto(),
  clamp('clip'),
  clamp('relu6'),
  clamp('relu'),
  copyRuns(),
  stripRows(),
  zero(),
  maxPoolRow(),
];

const wrappers = new WeakMap<WasmExports, SimdKernels>();

/**
 * The SIMD kernels bound to this backend's heap, or null where they cannot run (no wasm SIMD,
 * memory not reachable): callers then use their stock-kernel path.
 */
export function simdKernels(backend: BackendWasm): SimdKernels | null {
  return wrap(exportsOnBackend(backend, 'simd-kernels', FUNCTIONS));
}

/** The same kernels on a kernel-pool thread's instance of the heap. */
export function simdKernelsOnMemory(memory: WasmMemory): SimdKernels | null {
  return wrap(exportsOnMemory(memory, 'simd-kernels', FUNCTIONS));
}

function wrap(e: WasmExports | null): SimdKernels | null {
  if (!e) return null;
  let kernels = wrappers.get(e);
  if (!kernels) {
    kernels = {
      maskGrad: (x, dy, out, bytes, lo, hi, strictLow) => (strictLow ? e.mask_grad_gt : e.mask_grad_ge)(x, dy, out, bytes, lo, hi),
      batchNormSums: (x, dy, mean, s1, s2, total, row) => e.bn_sums(x, dy, mean, s1, s2, total, row),
      batchNormForward: (x, mean, k, offset, out, total, row) => e.bn_forward(x, mean, k, offset, out, total, row),
      batchNormBackward: (x, dy, mean, a, b, d, out, total, row) => e.bn_backward(x, dy, mean, a, b, d, out, total, row),
      adamStep: (p, g, avg, sqr, oP, oA, oS, bytes, h) => e.adam_step(p, g, avg, sqr, oP, oA, oS, bytes, h.decay, h.mom, h.sqrMom, h.eps, h.debias2, h.stepSize),
      depthwiseFilterGrad: (x, dy, acc, g) =>
        e.dw_filter_grad(x, dy, acc, g.h, g.w, g.ho, g.wo, g.channelBytes, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl),
      maxPoolGrad: (x, dy, dx, g) =>
        e.max_pool_grad(x, dy, dx, g.h, g.w, g.ho, g.wo, g.channelBytes, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl),
      addInto: (dst, src, bytes) => e.add_into(dst, src, bytes),
      clamp: (kind, x, out, bytes, lo, hi) => e[`clamp_${kind}`](x, out, bytes, lo, hi),
      copyRuns: (src, srcStep, dst, dstStep, runBytes, count) => e.copy_runs(src, srcStep, dst, dstStep, runBytes, count),
      zero: (dst, bytes) => e.zero(dst, bytes),
      maxPoolRow: (r0, r1, r2, dst, outW, w, pix, left) => e.max_pool_row(r0, r1, r2, dst, outW, w, pix, left),
      stripRows: (src, srcRow, dst, dstRow, before, rows, after, left, copy, right) => e.strip_rows(src, srcRow, dst, dstRow, before, rows, after, left, copy, right),
    };
    wrappers.set(e, kernels);
  }
  return kernels;
}

/** Test hook: whether this module validates at all (encoder / opcode errors show here). */
export function simdModuleBytes(shared = false): Uint8Array {
  return encodeModule(FUNCTIONS(), { shared });
}
