/**
 * A BatchNorm in inference mode as the per-channel affine map it is, y = x * scale + shift with
 * scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, in float64: what folding it into
 * a neighbouring layer needs (the ONNX exporter and the inference model both fold).
 */
export interface BatchNormWeights {
  /** Absent when the layer does not scale (Keras `scale: false`): 1. */
  gamma?: ArrayLike<number>;
  /** Absent when the layer does not center (Keras `center: false`): 0. */
  beta?: ArrayLike<number>;
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
  epsilon: number;
}

export interface Affine {
  scale: Float64Array;
  shift: Float64Array;
}

export function batchNormAffine(w: BatchNormWeights): Affine {
  const n = w.mean.length;
  const scale = new Float64Array(n);
  const shift = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    scale[i] = (w.gamma ? w.gamma[i] : 1) / Math.sqrt(w.variance[i] + w.epsilon);
    shift[i] = (w.beta ? w.beta[i] : 0) - w.mean[i] * scale[i];
  }
  return { scale, shift };
}
