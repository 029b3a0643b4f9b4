/**
 * The registry side: which kernels we add to / replace on the 'wasm' backend, and doing it once.
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.js';
import { conv2dConfig, convMaxPool2dConfig, fusedConv2dConfig, residualConv2dConfig } from './conv2d-forward.js';
import { depthwiseBackpropFilterConfig } from './depthwise-backprop-filter.js';
import { depthwiseBackpropInputConfig } from './depthwise-backprop-input.js';
import { adamStepConfig } from './adam-step.js';
import { batchMatMulConfig } from './batch-mat-mul.js';
import { batchNormConfig } from './batch-norm.js';
import { batchNormTrainingKernels } from './batch-norm-training.js';
import { fusedGradKernels, installWasmGradients } from './fused-grads.js';
import { clipByValueConfig, relu6Config, reluConfig } from './clamp.js';
import { castConfig, identityConfig } from './identity.js';
import { maxPoolConfig } from './max-pool.js';
import { maxPoolGradConfig } from './max-pool-grad.js';
import { padV2Config } from './pad.js';
import { maxConfig, meanConfig, sumConfig } from './reduce.js';
import { sliceConfig } from './slice.js';
import { tileConfig } from './tile.js';
import { rememberStockKernel } from './wasm-ops.js';

/** Kernels registered by this module, in registration order. */
export const WASM_TRAINING_KERNELS: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  conv2dConfig,
  fusedConv2dConfig,
  residualConv2dConfig,
  convMaxPool2dConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  tileConfig,
  sumConfig,
  meanConfig,
  maxConfig,
  maxPoolConfig,
  maxPoolGradConfig,
  sliceConfig,
  padV2Config,
  reluConfig,
  relu6Config,
  clipByValueConfig,
  identityConfig,
  castConfig,
  batchNormConfig,
  batchMatMulConfig,
  adamStepConfig,
  ...batchNormTrainingKernels,
  ...fusedGradKernels,
];

/** Which of our kernels is in the registry right now (tfjs keeps one config per name+backend). */
function isOurs(config: tf.KernelConfig): boolean {
  return tf.getKernel(config.kernelName, 'wasm')?.kernelFunc === config.kernelFunc;
}

export interface RegisterResult {
  /** Kernels that were missing and are now provided. */
  added: string[];
  /** Stock kernels replaced by faster ones. */
  replaced: string[];
  /** Kernels whose (global) gradient now takes a fused path on wasm; see fused-grads.ts. */
  gradients: string[];
}

/**
 * Registers the training kernels on 'wasm'. Safe to call any number of times; later calls do
 * nothing. Kernels that need a backend-specific setup (cwrap) reuse the stock kernels' setup, so
 * this works whether or not the wasm backend has been initialised yet.
 */
export function registerWasmTrainingKernels(): RegisterResult {
  const result: RegisterResult = { added: [], replaced: [], gradients: installWasmGradients() };
  for (const config of WASM_TRAINING_KERNELS) {
    if (isOurs(config)) continue;
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing) {
      rememberStockKernel(config.kernelName);
      tf.unregisterKernel(config.kernelName, 'wasm');
      result.replaced.push(config.kernelName);
      // Our kernel may fall back to the stock one, whose cwrap binding is made by its setupFunc when
      // the backend initialises; keep that setup attached to the name.
      tf.registerKernel({ ...config, setupFunc: existing.setupFunc });
    } else {
      result.added.push(config.kernelName);
      tf.registerKernel(config);
    }
  }
  return result;
}

export function wasmTrainingKernelsRegistered(): boolean {
  return WASM_TRAINING_KERNELS.every(isOurs);
}
