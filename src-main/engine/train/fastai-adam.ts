/**
 * fastai's `Adam` (the default `opt_func` of `vision_learner`), step for step:
 *   p *= 1 - lr*wd                          (decoupled weight decay, before the step; none on BN/bias)
 *   avg = mom*avg + (1-mom)*g               (beta1 = the scheduled "mom", with dampening)
 *   sqr = sqr_mom*sqr + (1-sqr_mom)*g²
 *   p -= lr/(1-mom^step) * avg / (sqrt(sqr/(1-sqr_mom^step)) + eps)
 * with sqr_mom 0.99 and eps 1e-5 (not PyTorch's 0.999 / 1e-8). Parameters without a gradient in
 * a step (frozen ones) are left alone and their step count does not advance, as in fastai.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAM_STEP, type AdamStepAttrs } from '../wasm-kernels/adam-step.js';

export interface OptimizedParam {
  variable: tf.Variable;
  /** Index of the parameter group, which selects the learning rate. */
  group: number;
  /** fastai applies no weight decay to BatchNorm and bias parameters. */
  weightDecay: boolean;
}

export interface FastaiAdamOptions {
  sqrMom?: number;
  eps?: number;
  wd?: number;
}

interface Moments {
  avg: tf.Tensor;
  sqr: tf.Tensor;
}

interface ParamState extends Moments {
  step: number;
}

/** Serializable optimizer state (for checkpoints). */
export interface AdamStateSnapshot {
  /** Keyed by variable name. */
  params: Record<string, { avg: Float32Array; sqr: Float32Array; shape: number[]; step: number }>;
}

export class FastaiAdam {
  readonly sqrMom: number;
  readonly eps: number;
  readonly wd: number;
  private readonly state = new Map<string, ParamState>();
  private readonly byName: Map<string, OptimizedParam>;

  constructor(readonly params: OptimizedParam[], options: FastaiAdamOptions = {}) {
    this.sqrMom = options.sqrMom ?? 0.99;
    this.eps = options.eps ?? 1e-5;
    this.wd = options.wd ?? 0.01;
    this.byName = new Map(params.map((p) => [p.variable.name, p]));
  }

  /**
   * One step. `grads` maps variable names to gradients (as `tf.variableGrads` returns them);
   * `lrs` has one learning rate per group; `mom` is beta1 for this step.
   */
  step(grads: tf.NamedTensorMap, lrs: readonly number[], mom: number): void {
    for (const [name, grad] of Object.entries(grads)) {
      const param = this.byName.get(name);
      if (!param) continue;
      const lr = lrs[param.group];
      if (lr === undefined) throw new Error(`No learning rate for parameter group ${param.group} (got ${lrs.length} rates).`);
      const prev = this.state.get(name);
      const step = (prev?.step ?? 0) + 1;
      const decay = param.weightDecay && this.wd !== 0 ? 1 - lr * this.wd : 1;
      const update = this.fused ? this.updateWithKernel : this.updateWithOps;
      const next = update.call(this, param.variable, grad, prev, { decay, mom, sqrMom: this.sqrMom, eps: this.eps, debias2: 1 - this.sqrMom ** step, stepSize: lr / (1 - mom ** step) });
      prev?.avg.dispose();
      prev?.sqr.dispose();
      this.state.set(name, { ...next, step });
    }
  }

  /** The whole update as one wasm kernel per parameter (see wasm-kernels/adam-step.ts). */
  private get fused(): boolean {
    return tf.getBackend() === 'wasm' && tf.getKernel(ADAM_STEP, 'wasm') !== undefined;
  }

  private updateWithOps(variable: tf.Variable, grad: tf.Tensor, prev: ParamState | undefined, a: AdamStepAttrs): Moments {
    return tf.tidy(() => {
      const p = a.decay !== 1 ? variable.mul(a.decay) : variable;
      const avg = prev ? prev.avg.mul(a.mom).add(grad.mul(1 - a.mom)) : grad.mul(1 - a.mom);
      const sqr = prev ? prev.sqr.mul(a.sqrMom).add(grad.square().mul(1 - a.sqrMom)) : grad.square().mul(1 - a.sqrMom);
      const update = avg.div(sqr.div(a.debias2).sqrt().add(a.eps)).mul(a.stepSize);
      variable.assign(p.sub(update));
      return { avg, sqr };
    });
  }

  private updateWithKernel(variable: tf.Variable, grad: tf.Tensor, prev: ParamState | undefined, a: AdamStepAttrs): Moments {
    const zeros = prev ? undefined : tf.zerosLike(grad);
    const inputs = { param: variable, grad, avg: prev?.avg ?? zeros!, sqr: prev?.sqr ?? zeros! };
    const [p, avg, sqr] = tf.engine().runKernel(ADAM_STEP, inputs, a as unknown as tf.NamedAttrMap) as tf.Tensor[];
    zeros?.dispose();
    variable.assign(p);
    p.dispose();
    return { avg, sqr };
  }

  /** Forgets all moments (fastai creates a new optimizer state when unfreezing). */
  reset(): void {
    for (const s of this.state.values()) {
      s.avg.dispose();
      s.sqr.dispose();
    }
    this.state.clear();
  }

  dispose(): void {
    this.reset();
  }

  async snapshot(): Promise<AdamStateSnapshot> {
    const params: AdamStateSnapshot['params'] = {};
    for (const [name, s] of this.state) {
      params[name] = { avg: (await s.avg.data()) as Float32Array, sqr: (await s.sqr.data()) as Float32Array, shape: s.avg.shape, step: s.step };
    }
    return { params };
  }

  restore(snapshot: AdamStateSnapshot): void {
    this.reset();
    for (const [name, s] of Object.entries(snapshot.params)) {
      if (!this.byName.has(name)) throw new Error(`Optimizer state names a parameter the model does not have: ${name}.`);
      this.state.set(name, { avg: tf.tensor(s.avg, s.shape), sqr: tf.tensor(s.sqr, s.shape), step: s.step });
    }
  }
}
