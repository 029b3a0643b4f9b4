/**
 * TF.js draws each dropout mask from a generator seeded with Math.random(), so training (and an
 * lr_find sweep, which trains) is reproducible only if Math.random is. While `fn` runs,
 * Math.random is an MT19937 stream from `seed`. Start it after data preparation and model
 * building, whose own use of randomness varies with what is cached: then the same seed, data and
 * backend give the same result.
 */
import { MT19937 } from '../data/mt19937.js';

export async function withSeededMathRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  const rng = new MT19937((seed ^ 0x5eed) >>> 0);
  Math.random = () => rng.nextFloat();
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}
