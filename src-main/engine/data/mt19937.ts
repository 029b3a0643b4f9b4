/**
 * The 32-bit Mersenne Twister exactly as PyTorch's CPU generator uses it (`torch.manual_seed(s)`
 * seeds it with the reference `init_genrand(s)`), so that splits match fastai bit for bit.
 */
const N = 624;
const M = 397;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const MATRIX_A = 0x9908b0df;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed: number) {
    // PyTorch keeps the low 32 bits of the 64-bit seed.
    this.state[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.state[i - 1] ^ (this.state[i - 1] >>> 30);
      this.state[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness (enough for crop positions and shuffles). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < N; i++) {
      const y = (s[i] & UPPER_MASK) | (s[(i + 1) % N] & LOWER_MASK);
      s[i] = s[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }
}

/**
 * `torch.manual_seed(seed); torch.randperm(n)` on the CPU: Fisher-Yates driven by
 * `z = random() % (n - i)`, swapping a[i] and a[i + z].
 */
export function torchRandperm(n: number, seed: number): number[] {
  return randpermWith(n, new MT19937(seed));
}

/** The same shuffle with a caller-owned generator (used for seeded per-epoch batch order). */
export function randpermWith(n: number, rng: MT19937): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n - 1; i++) {
    const z = rng.nextUint32() % (n - i);
    const tmp = perm[i];
    perm[i] = perm[i + z];
    perm[i + z] = tmp;
  }
  return perm;
}
