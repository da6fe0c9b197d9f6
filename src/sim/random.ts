// The simulator's only source of randomness. sfc32 is small, fast and passes
// PractRand; its 128-bit state is filled by splitmix64 from the 64-bit seed,
// so seeds that differ in one bit give unrelated streams. Each process gets
// its own stream forked from the kernel's at spawn, so a process drawing more
// or fewer numbers never shifts the kernel's tie-breaks or another process's
// values.

const MASK64 = (1n << 64n) - 1n;

export function seedToBigInt(seed: number | bigint): bigint {
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be finite, got ${seed}`);
  return BigInt.asUintN(64, BigInt(Math.trunc(seed)));
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  constructor(seed: bigint) {
    // splitmix64, two outputs, split into four 32-bit words. BigInt is fine
    // here: it runs once per process, never per event.
    let s = seed & MASK64;
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      s = (s + 0x9e3779b97f4a7c15n) & MASK64;
      let z = s;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
      z ^= z >> 31n;
      words.push(Number(z & 0xffffffffn), Number(z >> 32n));
    }
    this.a = words[0]! | 0;
    this.b = words[1]! | 0;
    this.c = words[2]! | 0;
    this.d = words[3]! | 0;
    // sfc32 wants a few rounds before its output is well mixed.
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). n must be below 2^32. */
  below(n: number): number {
    return this.u32() % n;
  }

  /** An independent stream: 64 fresh bits of this one seed a new generator. */
  fork(): Rng {
    const hi = BigInt(this.u32());
    const lo = BigInt(this.u32());
    return new Rng((hi << 32n) | lo);
  }
}
