/**
 * A minimal WebAssembly encoder: enough to write small SIMD loops that run directly on the tfjs
 * wasm heap (there is no Emscripten / wat2wasm in this project, and the tfjs binary cannot be
 * rebuilt). A module imports the backend's memory (`env.memory`, shared for the threaded build)
 * and exports functions whose i32 arguments are byte addresses in that heap.
 *
 * Instructions are plain byte arrays; `op` holds the ones we use (opcodes from the WebAssembly
 * core and fixed-width SIMD specifications). `WebAssembly.validate` checks every module built.
 */

export type ValType = 'i32' | 'f32' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function f32Bytes(v: number): number[] {
  return Array.from(new Uint8Array(new Float32Array([v]).buffer));
}

const simd = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm];
/** memarg: alignment hint log2(bytes) and a constant byte offset. */
const mem = (alignLog2: number, offset = 0) => [...uleb(alignLog2), ...uleb(offset)];

export const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  else: [0x05],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  tee: (local: number) => [0x22, ...uleb(local)],
  f32Load: (offset = 0) => [0x2a, ...mem(2, offset)],
  f32Store: (offset = 0) => [0x38, ...mem(2, offset)],
  i32Load: (offset = 0) => [0x28, ...mem(2, offset)],
  i32: (v: number) => [0x41, ...sleb(v)],
  f32: (v: number) => [0x43, ...f32Bytes(v)],
  /** (a, b, condition) -> condition ? a : b */
  select: [0x1b],
  i32Eqz: [0x45],
  i32LtS: [0x48],
  i32GeS: [0x4e],
  i32GeU: [0x4f],
  i32And: [0x71],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32Or: [0x72],
  i32Shl: [0x74],
  f32Add: [0x92],
  f32Sub: [0x93],
  f32Mul: [0x94],
  v128Load: (offset = 0) => simd(0x00, ...mem(2, offset)),
  /** v128.load32_splat: one float broadcast to 4 lanes. */
  load32Splat: (offset = 0) => simd(0x09, ...mem(2, offset)),
  v128Store: (offset = 0) => simd(0x0b, ...mem(2, offset)),
  /** v128.const of four equal floats. */
  f32x4Const: (v: number) => simd(0x0c, ...f32Bytes(v), ...f32Bytes(v), ...f32Bytes(v), ...f32Bytes(v)),
  i32x4Splat: simd(0x11),
  i32x4ExtractLane: (lane: number) => simd(0x1b, lane),
  f32x4ExtractLane: (lane: number) => simd(0x1f, lane),
  f32x4Splat: simd(0x13),
  f32x4Gt: simd(0x44),
  f32x4Le: simd(0x45),
  f32x4Ge: simd(0x46),
  v128And: simd(0x4e),
  v128Bitselect: simd(0x52),
  f32x4Neg: simd(0xe1),
  f32x4Add: simd(0xe4),
  f32x4Sub: simd(0xe5),
  f32x4Mul: simd(0xe6),
  f32x4Sqrt: simd(0xe3),
  f32x4Div: simd(0xe7),
  f32x4Min: simd(0xe8),
  f32x4Max: simd(0xe9),
  /** Pseudo-min/max: b < a ? b : a and a < b ? b : a, one minps/maxps each (min/max are NaN- and -0-aware sequences). */
  f32x4Pmin: simd(0xea),
  f32x4Pmax: simd(0xeb),
  /** Bulk memory (memmove / memset): memory.copy (dst, src, bytes), memory.fill (dst, byte, bytes). */
  memoryCopy: [0xfc, ...uleb(10), 0x00, 0x00],
  memoryFill: [0xfc, ...uleb(11), 0x00],
};

/**
 * `counter = limit; do { body } while (--counter != 0)`: `limit` is code that leaves an i32 on the
 * stack, which must be at least 1 (a zero would run 2^32 times). For inner loops whose counts the
 * caller knows are positive: one decrement and branch per iteration.
 */
export function countDown(counter: number, limit: number[], body: number[][]): number[] {
  return [...limit, ...op.set(counter), ...op.loop, ...body.flat(), ...op.get(counter), ...op.i32(1), ...op.i32Sub, ...op.tee(counter), ...op.brIf(0), ...op.end];
}

/**
 * `for (local = 0; local < limit; local += step) body` with i32 locals, compared unsigned (byte
 * offsets into a heap of up to 4 GiB do not fit a signed i32). `step` is a constant, or
 * `{ local }` for a step held in a local.
 */
export function forLoop(local: number, limit: number, step: number | { local: number }, body: number[][]): number[] {
  return [
    ...op.i32(0),
    ...op.set(local),
    ...op.block,
    ...op.loop,
    ...op.get(local),
    ...op.get(limit),
    ...op.i32GeU,
    ...op.brIf(1),
    ...body.flat(),
    ...op.get(local),
    ...(typeof step === 'number' ? op.i32(step) : op.get(step.local)),
    ...op.i32Add,
    ...op.set(local),
    ...op.br(0),
    ...op.end,
    ...op.end,
  ];
}

export interface FunctionDef {
  name: string;
  params: ValType[];
  /** Extra locals, numbered after the params. */
  locals: ValType[];
  body: number[][];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...uleb(bytes.length), ...bytes];
}

/**
 * A module importing `env.memory` (`shared` must match the memory it will be given; the maximum
 * is 4 GiB, 65536 pages, which covers both tfjs builds) and exporting `functions`.
 */
export function encodeModule(functions: FunctionDef[], memory: { shared: boolean }): Uint8Array {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((p) => [VALTYPE[p]])), ...vec([])]);
  const limits = memory.shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  const imports = vec([[...name('env'), ...name('memory'), 0x02, ...limits]]);
  const funcs = vec(functions.map((_, i) => uleb(i)));
  const exports = vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const codes = vec(
    functions.map((f) => {
      const locals = vec(f.locals.map((t) => [...uleb(1), VALTYPE[t]]));
      const body = [...locals, ...f.body.flat(), ...op.end];
      return [...uleb(body.length), ...body];
    }),
  );
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, codes),
  ]);
}
