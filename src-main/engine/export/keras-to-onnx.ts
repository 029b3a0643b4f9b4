/**
 * Translates a Keras/TF.js LayersModel (topology JSON + named weights) into an ONNX inference graph
 * (opset 13), for the layers the app's models are made of: Conv2D, DepthwiseConv2D, BatchNormalization,
 * ReLU (incl. ReLU6), Activation, ZeroPadding2D, Max/AveragePooling2D, global pooling, Concatenate, Add,
 * Multiply, Dense, Flatten, Softmax, Rescaling; Dropout-like layers are the identity at inference.
 * Anything else is refused by name rather than approximated.
 *
 * Layout: the graph input stays channels-last (NHWC, as TF.js and image decoders deliver pixels); one
 * Transpose turns it into NCHW, the layout ONNX's Conv and pooling operators define, and everything
 * after runs NCHW. Keras axes are mapped accordingly (channels: -1 -> 1).
 *
 * Padding: Keras 'same' puts the odd pixel of a strided window at the bottom/right; ONNX wants
 * explicit pads, so they are computed from the (static) spatial size exactly as TF does.
 *
 * Folding (exact in real arithmetic; in float32 it moves results by a few ulp):
 * - BatchNorm after a convolution becomes the convolution's weights and bias:
 *   W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps).
 * - BatchNorm (on pooled features) before a Dense becomes the Dense's weights and bias:
 *   (x * s + t) W + b = x (diag(s) W) + (t W + b). That is fastai's head: BN -> Dropout -> Linear.
 * - ZeroPadding2D before a 'valid' convolution becomes the convolution's pads.
 * Folds are computed in float64 and only taken when the intermediate tensor has no other reader.
 *
 * ZeroPadding2D before a pool is always folded, whatever `fold` says: a Pad node there would be merged
 * into the pool by ONNX Runtime's PadFusion (basic level, on by default), and a pool's padding is not
 * zeros (max-pool ignores it, average-pool may leave it out of the count). See pooling().
 */
import { type Affine, batchNormAffine } from '../models/batch-norm-affine.js';
import { flattenKerasModel, type LayerCall } from './keras-graph.js';
import { attr, ONNX_FLOAT, type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx-proto.js';
import { outSize, pair, samePads, zeroWindowMask } from './padding.js';

export interface NamedWeight {
  shape: number[];
  values: Float32Array;
}

export interface KerasToOnnxOptions {
  inputName?: string;
  outputName?: string;
  /** Symbolic name of the batch dimension. */
  batchDim?: string;
  /** Fold BatchNorm and padding into neighbouring layers (default true). */
  fold?: boolean;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

export interface ConversionReport {
  opCounts: Record<string, number>;
  foldedBatchNorms: number;
  foldedPads: number;
  /** BatchNorms left as ONNX BatchNormalization nodes (nothing to fold them into). */
  keptBatchNorms: number;
  parameters: number;
  inputShape: (number | string)[];
  outputShape: (number | string)[];
}

export const ONNX_OPSET = 13;
/** IR version 7 is the one that introduced opset 13 (ONNX 1.8); every runtime since reads it. */
export const ONNX_IR_VERSION = 7;

/** A Keras (channels-last) shape; null is unknown. */
type Shape = (number | null)[];

interface Value {
  name: string;
  shape: Shape;
}


const SUPPORTED = [
  'Conv2D',
  'DepthwiseConv2D',
  'BatchNormalization',
  'ReLU',
  'Activation',
  'ZeroPadding2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Concatenate',
  'Add',
  'Multiply',
  'Dense',
  'Flatten',
  'Softmax',
  'Rescaling',
];

/** NHWC axis -> NCHW axis for rank-4 tensors. */
const NCHW_AXIS = [0, 2, 3, 1];

class Converter {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly report = { foldedBatchNorms: 0, foldedPads: 0, keptBatchNorms: 0 };
  private readonly values = new Map<string, Value>();
  private readonly consumers = new Map<string, LayerCall[]>();
  private readonly absorbed = new Set<string>();
  private readonly pendingPads = new Map<string, { source: string; pads: [number, number, number, number] }>();
  private readonly pendingAffine = new Map<string, Affine & { source: string }>();
  private readonly usedWeights = new Set<string>();
  private readonly names = new Set<string>();
  private readonly scalars = new Map<number, string>();
  /** ONNX values known to be >= 0 (outputs of ReLU, ReLU6, sigmoid, softmax, and max-pools of those). */
  private readonly nonNegative = new Set<string>();

  constructor(
    private readonly weights: Map<string, NamedWeight>,
    private readonly fold: boolean,
    private readonly graphOutput: string,
  ) {}

  // ---- bookkeeping ----

  setCalls(calls: LayerCall[]): void {
    for (const call of calls) for (const i of call.inputs) this.consumers.set(i, [...(this.consumers.get(i) ?? []), call]);
  }

  /** The only layer reading `id`, if exactly one does and `id` is not the model's output. */
  private soleConsumer(id: string): LayerCall | undefined {
    const c = this.consumers.get(id);
    return c?.length === 1 && id !== this.graphOutput ? c[0] : undefined;
  }

  defineValue(id: string, value: Value): void {
    this.values.set(id, value);
    this.names.add(value.name);
  }

  private value(id: string, call: LayerCall): Value {
    const v = this.values.get(id);
    if (!v) throw new Error(`Layer "${call.layerName}" reads a tensor that was not computed (internal ordering error)`);
    return v;
  }

  private unique(name: string): string {
    let n = name;
    for (let k = 2; this.names.has(n); k++) n = `${name}_${k}`;
    this.names.add(n);
    return n;
  }

  private weight(call: LayerCall, name: string): NamedWeight {
    const key = `${call.layerName}/${name}`;
    const w = this.weights.get(key);
    if (!w) throw new Error(`Layer "${call.layerName}" (${call.className}) needs the weight "${key}", which the weights do not contain`);
    this.usedWeights.add(key);
    return w;
  }

  private optionalWeight(call: LayerCall, name: string, present: boolean): NamedWeight | undefined {
    return present ? this.weight(call, name) : undefined;
  }

  unusedWeights(): string[] {
    return [...this.weights.keys()].filter((k) => !this.usedWeights.has(k));
  }

  private init(name: string, dims: number[], values: Float32Array): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dims, data: { type: 'float32', values } });
    return n;
  }

  private int64Init(name: string, values: number[]): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dims: [values.length], data: { type: 'int64', values } });
    return n;
  }

  private scalar(value: number): string {
    let n = this.scalars.get(value);
    if (!n) {
      n = this.unique(`const_${value}`);
      this.initializers.push({ name: n, dims: [], data: { type: 'float32', values: Float32Array.of(value) } });
      this.scalars.set(value, n);
    }
    return n;
  }

  emit(opType: string, inputs: string[], output: string, attributes: Record<string, OnnxAttribute> = {}): string {
    const name = this.unique(output);
    this.nodes.push({ opType, name, inputs, outputs: [name], attributes });
    const clipsAtZero = opType === 'Clip' && inputs[1] === this.scalars.get(0);
    if (opType === 'Relu' || opType === 'Sigmoid' || opType === 'Softmax' || clipsAtZero || (opType === 'MaxPool' && this.nonNegative.has(inputs[0]))) this.nonNegative.add(name);
    return name;
  }

  // ---- layers ----

  convert(call: LayerCall): void {
    if (this.absorbed.has(call.id)) return;
    const c = call.config;
    if (c.data_format !== undefined && c.data_format !== 'channels_last') {
      throw new Error(`Layer "${call.layerName}" uses data_format ${String(c.data_format)}; only channels_last models are exported`);
    }
    switch (call.className) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.convolution(call);
      case 'BatchNormalization':
        return this.batchNorm(call);
      case 'ReLU':
        return this.reluLayer(call);
      case 'Activation':
        return this.define(call, this.activation(String(c.activation), this.input(call).name, call.id, this.input(call).shape.length, call), this.input(call).shape);
      case 'Softmax': {
        const x = this.input(call);
        const axis = this.axis(Number(c.axis ?? -1), x.shape.length, call);
        return this.define(call, this.emit('Softmax', [x.name], call.id, { axis: attr.int(axis) }), x.shape);
      }
      case 'ZeroPadding2D':
        return this.zeroPadding(call);
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return this.pooling(call);
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        return this.globalPooling(call);
      case 'Concatenate':
        return this.concatenate(call);
      case 'Add':
      case 'Multiply':
        return this.elementwise(call);
      case 'Dense':
        return this.dense(call);
      case 'Flatten':
        return this.flatten(call);
      case 'Rescaling':
        return this.rescaling(call);
      default:
        throw new Error(`Layer "${call.layerName}" is a ${call.className}, which the ONNX exporter does not translate (it handles ${SUPPORTED.join(', ')})`);
    }
  }

  private input(call: LayerCall, index = 0): Value {
    return this.value(call.inputs[index], call);
  }

  private define(call: LayerCall, name: string, shape: Shape, id = call.output): void {
    this.values.set(id, { name, shape });
  }

  private axis(kerasAxis: number, rank: number, call: LayerCall): number {
    const a = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    if (a < 0 || a >= rank || (rank !== 2 && rank !== 4)) throw new Error(`Layer "${call.layerName}": axis ${kerasAxis} on a rank-${rank} tensor is not supported`);
    return rank === 4 ? NCHW_AXIS[a] : a;
  }

  private activation(name: string, input: string, output: string, rank: number, call: LayerCall): string {
    switch (name) {
      case 'linear':
        return input;
      case 'relu':
        return this.emit('Relu', [input], output);
      case 'relu6':
        return this.emit('Clip', [input, this.scalar(0), this.scalar(6)], output);
      case 'sigmoid':
        return this.emit('Sigmoid', [input], output);
      case 'tanh':
        return this.emit('Tanh', [input], output);
      case 'softmax':
        return this.emit('Softmax', [input], output, { axis: attr.int(this.axis(-1, rank, call)) });
      default:
        throw new Error(`Layer "${call.layerName}" uses the activation "${name}", which the ONNX exporter does not translate`);
    }
  }

  /** BatchNorm as a per-channel affine map (float64), from its weights. */
  private batchNormAffine(bn: LayerCall, rank: number): Affine {
    const c = bn.config;
    const axis = Array.isArray(c.axis) ? (c.axis.length === 1 ? Number(c.axis[0]) : NaN) : Number(c.axis ?? -1);
    if (axis !== -1 && axis !== rank - 1) throw new Error(`BatchNormalization "${bn.layerName}" normalises axis ${JSON.stringify(c.axis)}; only the channel (last) axis is supported`);
    return batchNormAffine({
      mean: this.weight(bn, 'moving_mean').values,
      variance: this.weight(bn, 'moving_variance').values,
      gamma: this.optionalWeight(bn, 'gamma', c.scale !== false)?.values,
      beta: this.optionalWeight(bn, 'beta', c.center !== false)?.values,
      epsilon: Number(c.epsilon ?? 1e-3),
    });
  }

  private convolution(call: LayerCall): void {
    const c = call.config;
    const depthwise = call.className === 'DepthwiseConv2D';
    let source = call.inputs[0];
    let extra: [number, number, number, number] = [0, 0, 0, 0]; // top, bottom, left, right
    const pad = this.pendingPads.get(source);
    if (pad) {
      source = pad.source;
      extra = pad.pads;
    }
    const x = this.value(source, call);
    if (x.shape.length !== 4) throw new Error(`Layer "${call.layerName}" expects an image tensor, got rank ${x.shape.length}`);
    const [, h, w, cin] = x.shape;
    const kernel = this.weight(call, depthwise ? 'depthwise_kernel' : 'kernel');
    const [kh, kw, kin, kout] = kernel.shape;
    if (kin !== cin) throw new Error(`Layer "${call.layerName}": kernel expects ${kin} input channels, the tensor has ${cin}`);
    const [sh, sw] = pair(c.strides ?? 1, 'strides', call.layerName);
    const [dh, dw] = pair(c.dilation_rate ?? 1, 'dilation_rate', call.layerName);
    const ph = h === null ? null : h + extra[0] + extra[1];
    const pw = w === null ? null : w + extra[2] + extra[3];
    let same: [number, number, number, number] = [0, 0, 0, 0];
    if (c.padding === 'same') {
      const axisPads = (size: number | null, k: number, s: number, d: number): [number, number] => {
        if (size !== null) return samePads(size, k, s, d);
        if (s === 1 && ((k - 1) * d) % 2 === 0) return [((k - 1) * d) / 2, ((k - 1) * d) / 2];
        throw new Error(`Layer "${call.layerName}": 'same' padding with stride ${s} needs a known input size; export with a fixed image size`);
      };
      const [t, b] = axisPads(ph, kh, sh, dh);
      const [l, r] = axisPads(pw, kw, sw, dw);
      same = [t, b, l, r];
    } else if (c.padding !== 'valid') {
      throw new Error(`Layer "${call.layerName}" has padding ${JSON.stringify(c.padding)}; only 'same' and 'valid' are supported`);
    }
    const pads = extra.map((p, i) => p + same[i]) as [number, number, number, number];
    const outC = depthwise ? kin * kout : kout;
    const outShape: Shape = [null, outSize(h, pads[0] + pads[1], kh, sh, dh), outSize(w, pads[2] + pads[3], kw, sw, dw), outC];

    // HWIO -> OIHW; depthwise [kh, kw, C, M] -> [C*M, 1, kh, kw] (output channel c*M + m, as TF orders them).
    const W = new Float64Array(outC * (depthwise ? 1 : kin) * kh * kw);
    const k = kernel.values;
    for (let y = 0; y < kh; y++) {
      for (let xx = 0; xx < kw; xx++) {
        for (let i = 0; i < kin; i++) {
          for (let o = 0; o < kout; o++) {
            const src = ((y * kw + xx) * kin + i) * kout + o;
            const dst = depthwise ? ((i * kout + o) * kh + y) * kw + xx : ((o * kin + i) * kh + y) * kw + xx;
            W[dst] = k[src];
          }
        }
      }
    }
    let bias: Float64Array | undefined = c.use_bias === false ? undefined : Float64Array.from(this.weight(call, 'bias').values);

    let outputId = call.output;
    let name = call.id;
    const act = String(c.activation ?? 'linear');
    const bn = this.fold && act === 'linear' ? this.soleConsumer(call.output) : undefined;
    if (bn?.className === 'BatchNormalization') {
      const { scale, shift } = this.batchNormAffine(bn, 4);
      const per = W.length / outC;
      for (let o = 0; o < outC; o++) for (let j = 0; j < per; j++) W[o * per + j] *= scale[o];
      const b = new Float64Array(outC);
      for (let o = 0; o < outC; o++) b[o] = (bias ? bias[o] : 0) * scale[o] + shift[o];
      bias = b;
      this.absorbed.add(bn.id);
      this.report.foldedBatchNorms++;
      outputId = bn.output;
      name = bn.id;
    }
    const inputs = [x.name, this.init(`${call.id}.weight`, [outC, depthwise ? 1 : kin, kh, kw], Float32Array.from(W))];
    if (bias) inputs.push(this.init(`${call.id}.bias`, [outC], Float32Array.from(bias)));
    const conv = this.emit('Conv', inputs, act === 'linear' ? name : `${name}/conv`, {
      kernel_shape: attr.ints([kh, kw]),
      strides: attr.ints([sh, sw]),
      dilations: attr.ints([dh, dw]),
      // ONNX pads: all begins, then all ends: [top, left, bottom, right].
      pads: attr.ints([pads[0], pads[2], pads[1], pads[3]]),
      group: attr.int(depthwise ? kin : 1),
    });
    this.define(call, this.activation(act, conv, name, 4, call), outShape, outputId);
  }

  private batchNorm(call: LayerCall): void {
    const x = this.input(call);
    const affine = this.batchNormAffine(call, x.shape.length);
    const next = this.fold ? this.soleConsumer(call.output) : undefined;
    if (next?.className === 'Dense' && x.shape.length === 2) {
      // Folded into the Dense when it is converted.
      this.pendingAffine.set(call.output, { ...affine, source: call.inputs[0] });
      this.report.foldedBatchNorms++;
      return;
    }
    this.report.keptBatchNorms++;
    const c = call.config;
    const n = affine.scale.length;
    const mean = this.weight(call, 'moving_mean').values;
    const variance = this.weight(call, 'moving_variance').values;
    const gamma = this.optionalWeight(call, 'gamma', c.scale !== false)?.values ?? new Float32Array(n).fill(1);
    const beta = this.optionalWeight(call, 'beta', c.center !== false)?.values ?? new Float32Array(n);
    const out = this.emit(
      'BatchNormalization',
      [x.name, this.init(`${call.id}.gamma`, [n], gamma), this.init(`${call.id}.beta`, [n], beta), this.init(`${call.id}.mean`, [n], mean), this.init(`${call.id}.var`, [n], variance)],
      call.id,
      { epsilon: attr.float(Number(c.epsilon ?? 1e-3)) },
    );
    this.define(call, out, x.shape);
  }

  private reluLayer(call: LayerCall): void {
    const c = call.config;
    const x = this.input(call);
    if (Number(c.negative_slope ?? 0) !== 0 || Number(c.threshold ?? 0) !== 0) {
      throw new Error(`ReLU "${call.layerName}" has a negative slope or threshold, which the ONNX exporter does not translate`);
    }
    const max = c.max_value;
    const out = max === null || max === undefined ? this.emit('Relu', [x.name], call.id) : this.emit('Clip', [x.name, this.scalar(0), this.scalar(Number(max))], call.id);
    this.define(call, out, x.shape);
  }

  private zeroPadding(call: LayerCall): void {
    const x = this.input(call);
    const p = call.config.padding;
    let pads: [number, number, number, number];
    if (typeof p === 'number') pads = [p, p, p, p];
    else if (Array.isArray(p) && p.length === 2 && Array.isArray(p[0]) && Array.isArray(p[1])) pads = [p[0][0], p[0][1], p[1][0], p[1][1]];
    else if (Array.isArray(p) && p.length === 2) pads = [p[0], p[0], p[1], p[1]];
    else throw new Error(`ZeroPadding2D "${call.layerName}" has padding ${JSON.stringify(p)}`);
    const [, h, w, ch] = x.shape;
    const shape: Shape = [null, h === null ? null : h + pads[0] + pads[1], w === null ? null : w + pads[2] + pads[3], ch];
    // Folded into the next layer's pads when that is exact: a 'valid' convolution or average pool
    // (zeros counted), or any max-pool (see pooling()). A Pad node left in front of a pool would be
    // merged into it by ONNX Runtime's PadFusion anyway, with the wrong padding value.
    const next = this.soleConsumer(call.output);
    const foldable =
      ((next?.className === 'Conv2D' || next?.className === 'DepthwiseConv2D') && this.fold && next.config.padding === 'valid') ||
      next?.className === 'MaxPooling2D' ||
      (next?.className === 'AveragePooling2D' && next.config.padding !== 'same');
    if (next?.className === 'AveragePooling2D' && next.config.padding === 'same') {
      // Keras counts these zeros but not the 'same' padding; ONNX Runtime would merge a Pad node into the pool.
      throw new Error(`ZeroPadding2D "${call.layerName}" before the 'same' AveragePooling2D "${next.layerName}" has no faithful ONNX translation`);
    }
    if (foldable) {
      this.pendingPads.set(call.output, { source: call.inputs[0], pads });
      this.report.foldedPads++;
      this.define(call, x.name, shape); // never read: the next layer takes the unpadded source
      return;
    }
    const padsInit = this.int64Init(`${call.id}.pads`, [0, 0, pads[0], pads[2], 0, 0, pads[1], pads[3]]);
    this.define(call, this.emit('Pad', [x.name, padsInit], call.id, { mode: attr.string('constant') }), shape);
  }

  private pooling(call: LayerCall): void {
    const c = call.config;
    let source = call.inputs[0];
    let zero: [number, number, number, number] = [0, 0, 0, 0]; // folded ZeroPadding2D: top, bottom, left, right
    const pad = this.pendingPads.get(source);
    if (pad) {
      source = pad.source;
      zero = pad.pads;
    }
    const x = this.value(source, call);
    const [kh, kw] = pair(c.pool_size ?? 2, 'pool_size', call.layerName);
    const [sh, sw] = pair(c.strides ?? [kh, kw], 'strides', call.layerName);
    const [, h, w, ch] = x.shape;
    const ph = h === null ? null : h + zero[0] + zero[1];
    const pw = w === null ? null : w + zero[2] + zero[3];
    const max = call.className === 'MaxPooling2D';
    let same: [number, number, number, number] = [0, 0, 0, 0];
    if (c.padding === 'same') {
      if (ph === null || pw === null) throw new Error(`Layer "${call.layerName}": 'same' pooling needs a known input size`);
      same = [...samePads(ph, kh, sh, 1), ...samePads(pw, kw, sw, 1)] as [number, number, number, number];
    } else if (c.padding !== undefined && c.padding !== 'valid') {
      throw new Error(`Layer "${call.layerName}" has padding ${JSON.stringify(c.padding)}`);
    }
    const pads = zero.map((p, i) => p + same[i]) as [number, number, number, number];
    if (pads[0] >= kh || pads[1] >= kh || pads[2] >= kw || pads[3] >= kw) {
      // ONNX Runtime rejects pool padding as wide as the window (and a separate Pad node would be merged back in).
      throw new Error(`Layer "${call.layerName}": padding [${pads}] is as wide as its ${kh}x${kw} window, which ONNX Runtime does not accept`);
    }
    const outH = outSize(ph, same[0] + same[1], kh, sh, 1);
    const outW = outSize(pw, same[2] + same[3], kw, sw, 1);
    const attributes: Record<string, OnnxAttribute> = { kernel_shape: attr.ints([kh, kw]), strides: attr.ints([sh, sw]), pads: attr.ints([pads[0], pads[2], pads[1], pads[3]]) };
    // Keras' average counts ZeroPadding2D's zeros but not 'same' padding (never both: see zeroPadding()).
    if (!max) attributes.count_include_pad = attr.int(zero.some((p) => p > 0) ? 1 : 0);
    let out = this.emit(max ? 'MaxPool' : 'AveragePool', [x.name], max && zero.some((p) => p > 0) ? `${call.id}/pool` : call.id, attributes);
    if (max && zero.some((p) => p > 0)) {
      // ONNX max-pool padding never wins (it acts as -inf); Keras' zero padding does where a window's
      // real values are all negative. Max with 0 on the windows that reach into the zeros restores
      // that. Not needed (and skipped) when the input cannot be negative, e.g. ResNet's after a ReLU.
      if (this.nonNegative.has(x.name)) {
        this.nonNegative.add(out);
      } else {
        if (h === null || w === null || outH === null || outW === null) throw new Error(`Layer "${call.layerName}": zero padding before a max-pool needs a known input size`);
        out = this.emit('Max', [out, this.init(`${call.id}.zero_windows`, [1, 1, outH, outW], zeroWindowMask(h, w, outH, outW, kh, kw, sh, sw, zero, same))], call.id);
      }
    }
    this.define(call, out, [null, outH, outW, ch]);
  }

  private globalPooling(call: LayerCall): void {
    const x = this.input(call);
    const op = call.className === 'GlobalMaxPooling2D' ? 'GlobalMaxPool' : 'GlobalAveragePool';
    const ch = x.shape[3];
    if (call.config.keepdims === true) {
      this.define(call, this.emit(op, [x.name], call.id), [null, 1, 1, ch]);
      return;
    }
    const pooled = this.emit(op, [x.name], `${call.id}/pool`);
    this.define(call, this.emit('Flatten', [pooled], call.id, { axis: attr.int(1) }), [null, ch]);
  }

  private concatenate(call: LayerCall): void {
    const xs = call.inputs.map((_, i) => this.input(call, i));
    const rank = xs[0].shape.length;
    const kerasAxis = Number(call.config.axis ?? -1);
    const a = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    const shape = [...xs[0].shape];
    shape[a] = xs.some((x) => x.shape[a] === null) ? null : xs.reduce((n, x) => n + (x.shape[a] as number), 0);
    this.define(call, this.emit('Concat', xs.map((x) => x.name), call.id, { axis: attr.int(this.axis(kerasAxis, rank, call)) }), shape);
  }

  private elementwise(call: LayerCall): void {
    const xs = call.inputs.map((_, i) => this.input(call, i));
    const op = call.className === 'Add' ? (xs.length > 2 ? 'Sum' : 'Add') : 'Mul';
    if (op === 'Mul' && xs.length > 2) {
      let acc = xs[0].name;
      xs.slice(1).forEach((x, i) => (acc = this.emit('Mul', [acc, x.name], i === xs.length - 2 ? call.id : `${call.id}/mul${i}`)));
      return this.define(call, acc, xs[0].shape);
    }
    this.define(call, this.emit(op, xs.map((x) => x.name), call.id), xs[0].shape);
  }

  private dense(call: LayerCall): void {
    const c = call.config;
    let source = call.inputs[0];
    const affine = this.pendingAffine.get(source);
    if (affine) source = affine.source;
    const x = this.value(source, call);
    if (x.shape.length !== 2) throw new Error(`Dense "${call.layerName}" is applied to a rank-${x.shape.length} tensor; only [batch, features] inputs are exported`);
    const kernel = this.weight(call, 'kernel');
    const [nin, nout] = kernel.shape;
    const bias = c.use_bias === false ? undefined : this.weight(call, 'bias').values;
    let W: Float32Array = kernel.values;
    let b: Float32Array | undefined = bias;
    if (affine) {
      // (x*s + t) W + b = x (diag(s) W) + (t W + b)
      const Wf = new Float32Array(nin * nout);
      const bf = new Float64Array(nout);
      for (let o = 0; o < nout; o++) bf[o] = bias ? bias[o] : 0;
      for (let i = 0; i < nin; i++) {
        for (let o = 0; o < nout; o++) {
          const wio = kernel.values[i * nout + o];
          Wf[i * nout + o] = wio * affine.scale[i];
          bf[o] += affine.shift[i] * wio;
        }
      }
      W = Wf;
      b = Float32Array.from(bf);
    }
    const act = String(c.activation ?? 'linear');
    const inputs = [x.name, this.init(`${call.id}.weight`, [nin, nout], W)];
    if (b) inputs.push(this.init(`${call.id}.bias`, [nout], b));
    const gemm = this.emit('Gemm', inputs, act === 'linear' ? call.id : `${call.id}/gemm`);
    this.define(call, this.activation(act, gemm, call.id, 2, call), [null, nout]);
  }

  private flatten(call: LayerCall): void {
    const x = this.input(call);
    if (x.shape.length === 2) return this.define(call, x.name, x.shape);
    if (x.shape.length !== 4) throw new Error(`Flatten "${call.layerName}" on a rank-${x.shape.length} tensor is not supported`);
    // Keras flattens in NHWC order: go back to it first.
    const nhwc = this.emit('Transpose', [x.name], `${call.id}/nhwc`, { perm: attr.ints([0, 2, 3, 1]) });
    const [, h, w, ch] = x.shape;
    this.define(call, this.emit('Flatten', [nhwc], call.id, { axis: attr.int(1) }), [null, h === null || w === null || ch === null ? null : h * w * ch]);
  }

  private rescaling(call: LayerCall): void {
    const x = this.input(call);
    const scale = Number(call.config.scale ?? 1);
    const offset = Number(call.config.offset ?? 0);
    let out = this.emit('Mul', [x.name, this.scalar(scale)], offset === 0 ? call.id : `${call.id}/scale`);
    if (offset !== 0) out = this.emit('Add', [out, this.scalar(offset)], call.id);
    this.define(call, out, x.shape);
  }

  outputOf(id: string): Value {
    const v = this.values.get(id);
    if (!v) throw new Error('The model output was never computed');
    return v;
  }

  /** Renames a value everywhere (used to give the final tensor its public name). */
  rename(from: string, to: string): void {
    if (this.names.has(to)) throw new Error(`The output name "${to}" is already used inside the graph`);
    for (const n of this.nodes) {
      n.inputs = n.inputs.map((i) => (i === from ? to : i));
      if (n.outputs.includes(from)) {
        n.outputs = n.outputs.map((o) => (o === from ? to : o));
        n.name = to;
      }
    }
  }
}

/**
 * Converts a LayersModel to ONNX. The model must take one [batch, H, W, C] image (H, W fixed) and
 * return one [batch, K] tensor.
 */
export function kerasToOnnx(topology: unknown, weights: Map<string, NamedWeight>, options: KerasToOnnxOptions = {}): { model: OnnxModel; report: ConversionReport } {
  const inputName = options.inputName ?? 'pixels';
  const outputName = options.outputName ?? 'probabilities';
  const batch = options.batchDim ?? 'batch';
  const graph = flattenKerasModel(topology, '__input__');
  const shape = graph.input.shape;
  if (shape.length !== 4 || shape.slice(1).some((d) => typeof d !== 'number')) {
    throw new Error(`The model input has shape [${shape.map(String)}]; the ONNX export needs a fixed image size [batch, H, W, C]`);
  }

  const conv = new Converter(weights, options.fold ?? true, graph.output);
  conv.setCalls(graph.calls);
  conv.defineValue(inputName, { name: inputName, shape });
  const nchw = conv.emit('Transpose', [inputName], `${inputName}_nchw`, { perm: attr.ints([0, 3, 1, 2]) });
  conv.defineValue(graph.input.id, { name: nchw, shape });
  for (const call of graph.calls) conv.convert(call);

  const unused = conv.unusedWeights();
  if (unused.length) throw new Error(`${unused.length} weight(s) belong to no layer of the topology (${unused.slice(0, 5).join(', ')}): the weights and model.json do not match`);

  const out = conv.outputOf(graph.output);
  if (out.shape.length !== 2 || typeof out.shape[1] !== 'number') throw new Error(`The model output has shape [${out.shape.map(String)}]; expected [batch, classes]`);
  if (out.name === inputName) throw new Error('The model output is its input: there is nothing to export');
  if (out.name !== outputName) conv.rename(out.name, outputName);

  const inputShape = [batch, ...(shape.slice(1) as number[])];
  const outputShape = [batch, out.shape[1]];
  const opCounts: Record<string, number> = {};
  for (const n of conv.nodes) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
  const parameters = conv.initializers.reduce((sum, t) => sum + (t.data.type === 'float32' ? t.data.values.length : 0), 0);

  const model: OnnxModel = {
    irVersion: ONNX_IR_VERSION,
    opsetVersion: ONNX_OPSET,
    producerName: options.producerName ?? 'finetune-studio',
    producerVersion: options.producerVersion ?? '',
    docString: options.docString,
    graph: {
      name: String((topology as { config?: { name?: string } })?.config?.name ?? 'model'),
      nodes: conv.nodes,
      initializers: conv.initializers,
      inputs: [{ name: inputName, elemType: ONNX_FLOAT, shape: inputShape }],
      outputs: [{ name: outputName, elemType: ONNX_FLOAT, shape: outputShape }],
    },
    metadata: options.metadata ?? {},
  };
  return { model, report: { opCounts, ...conv.report, parameters, inputShape, outputShape } };
}
