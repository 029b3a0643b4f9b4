/**
 * What the inference model's fused layers (ResidualConv2D, ConvMaxPool2D) share: a folded
 * convolution's geometry, activation and weights (kernel, bias). Only inference builds them (from a
 * rewritten topology), so they are not trainable and are never saved.
 */
import * as tf from '@tensorflow/tfjs';

export type FusedActivation = 'linear' | 'relu' | 'relu6';

/** 'same', 'valid', or pixels on every side (a ZeroPadding2D folded in). */
export type LayerPad = 'same' | 'valid' | number;

export interface FusedConvConfig {
  filters: number;
  kernelSize: [number, number];
  strides: [number, number];
  pad: LayerPad;
  dilationRate: [number, number];
  activation: FusedActivation;
}

/** The fused op's arguments (tf.fused.conv2d's, explicit padding in pixels allowed). */
export interface FusedConvArgs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  strides: [number, number];
  pad: LayerPad;
  dilations: [number, number];
  activation: FusedActivation;
}

/** A size given as one number or a pair, as a pair. */
export const pair = (v: number | number[]): [number, number] => (Array.isArray(v) ? [v[0], v[1]] : [v, v]);

export abstract class FusedConvLayer<Config extends FusedConvConfig> extends tf.layers.Layer {
  protected readonly conv: Config;
  private kernel?: tf.LayerVariable;
  private bias?: tf.LayerVariable;

  /** `extra`: the subclass's own fields of the config. */
  constructor(args: FusedConvConfig & { name?: string; dtype?: tf.DataType }, extra: Omit<Config, keyof FusedConvConfig>) {
    super({ name: args.name, trainable: false, dtype: args.dtype });
    const { filters, pad, activation } = args;
    const conv: FusedConvConfig = { filters, kernelSize: pair(args.kernelSize), strides: pair(args.strides), pad, dilationRate: pair(args.dilationRate), activation };
    this.conv = { ...conv, ...extra } as Config;
  }

  /** The input shape (the first input's, where there are several). */
  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const xShape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = xShape[xShape.length - 1];
    if (typeof channels !== 'number') throw new Error(`${this.name}: the input's channels must be known`);
    const [kh, kw] = this.conv.kernelSize;
    this.kernel = this.addWeight('kernel', [kh, kw, channels, this.conv.filters], 'float32', tf.initializers.zeros());
    this.bias = this.addWeight('bias', [this.conv.filters], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  /** The convolution's arguments for the fused op, x aside. */
  protected convArgs(): Omit<FusedConvArgs, 'x'> {
    const c = this.conv;
    return {
      filter: this.kernel!.read() as tf.Tensor4D,
      bias: this.bias!.read() as tf.Tensor1D,
      strides: c.strides,
      pad: c.pad,
      dilations: c.dilationRate,
      activation: c.activation,
    };
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.conv };
  }
}
