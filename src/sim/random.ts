// The simulator's only source of randomness. sfc32 is small, fast and passes
// PractRand; its 128-bit state is filled by splitmix64 from the 64-bit seed,
// so seeds that differ in one bit give unrelated streams. Each process gets
// its own stream forked from the kernel's at spawn, so a process drawing more
// or fewer numbers never shifts the kernel's tie-breaks or another process's
// values.

import { assert } from '../os/assert.js';

const MASK64 = (1n << 64n) - 1n;

export function seedToBigInt(seed: number | bigint): bigint {
  let s: bigint;
  if (typeof seed === 'bigint') s = BigInt.asUintN(64, seed);
  else {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be finite, got ${seed}`);
    s = BigInt.asUintN(64, BigInt(Math.trunc(seed)));
  }
  // An unsigned 64-bit seed, what Rng expects; a small non-negative integer seed is itself (`--seed 42` is seed 42).
  assert(s >= 0n && s <= MASK64, 'seedToBigInt: a seed is an unsigned 64-bit integer');
  assert(typeof seed === 'bigint' || !(seed >= 0 && seed <= Number.MAX_SAFE_INTEGER) || s === BigInt(Math.trunc(seed)), 'seedToBigInt: a non-negative safe integer seed is unchanged');
  return s;
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  /** The seed it was made from: an app's own stream is derived from its process's without drawing from it (app-globals.ts, "random"). */
  readonly seed: bigint;

  constructor(seed: bigint) {
    this.seed = seed;
    // Every caller hands a 64-bit seed (seedToBigInt, fork, a seed xor a 64-bit constant); the mask below is belt and braces.
    assert(seed >= 0n && seed <= MASK64, () => `Rng: seed ${seed} is not an unsigned 64-bit integer`);
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
    const d0 = this.d;
    for (let i = 0; i < 12; i++) this.u32();
    // sfc32's fourth word is a counter: each draw moves it by one.
    assert(this.d === ((d0 + 12) | 0), 'Rng: twelve warm-up rounds ran');
  }

  /** Draws so far, as a wrapping int32: sfc32's fourth word counts them (compare differences with `| 0`). */
  get draws(): number {
    assert(this.d === (this.d | 0), 'Rng.draws: the counter word is an int32');
    return this.d;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    // The state is four int32 words (every update ends in `| 0` or a bitwise op): no float ever creeps in.
    assert(this.a === (this.a | 0) && this.b === (this.b | 0), 'Rng.u32: state words a, b are int32');
    assert(this.c === (this.c | 0) && this.d === (this.d | 0), 'Rng.u32: state words c, d are int32');
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
    const u = this.u32();
    assert(u >= 0 && u <= 0xffffffff, 'Rng.float: u32 is an unsigned 32-bit integer');
    const f = u / 4294967296;
    assert(f < 1, 'Rng.float: a float is below 1');
    return f;
  }

  /** Uniform integer in [0, n). n must be below 2^32. */
  below(n: number): number {
    // n = 0 answers NaN and a fraction answers fractions; from 2^32 up the top of [0, n) is never drawn.
    assert(Number.isInteger(n) && n > 0, 'Rng.below: n is a positive integer');
    assert(n <= 0xffffffff, 'Rng.below: n is below 2^32');
    return this.u32() % n;
  }

  /** An independent stream: 64 fresh bits of this one seed a new generator. */
  fork(): Rng {
    const d0 = this.d;
    const hi = BigInt(this.u32());
    const lo = BigInt(this.u32());
    // Two draws, always: a fork shifts its parent's stream by a fixed amount, so what follows replays.
    assert(((this.d - d0) | 0) === 2, 'Rng.fork: two draws');
    // 64 bits, no more: two halves that overlap would seed streams that collide.
    assert(hi <= 0xffffffffn, 'Rng.fork: the high half is 32 bits');
    assert(lo <= 0xffffffffn, 'Rng.fork: the low half is 32 bits');
    return new Rng((hi << 32n) | lo);
  }
}
