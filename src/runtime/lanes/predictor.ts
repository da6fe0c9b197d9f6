// The predictor (DESIGN.md, "Lanes"): is a request slow? A fixed-capacity
// table keyed by the route key (route-key.ts), holding an EWMA of the
// route's observed durations and a slow flag. Its memory is typed arrays
// allocated once at construction (17 bytes a slot: 68 KiB for the default
// 4096 slots, plus 4 bytes a prefix hint): no number of distinct paths can
// grow it.
//
// Rules:
// - An unknown route is fast.
// - observe(key, ms): the average becomes ms for a new route, else
//   alpha * ms + (1 - alpha) * average (alpha 0.3 by default, the Frappe
//   seed's). One observation over the threshold (ms > slowThresholdMs)
//   marks the route slow at once; a slow route becomes fast again only when
//   an observation brings its average below the threshold. (An observation at
//   or under the threshold never marks a route slow, whatever its average.)
//   An error answer (4xx, 5xx) may raise an average, never lower it: a fast
//   404 or 400 says nothing of what the route's work costs, and any client
//   can provoke one - two of them taught a route of 1.5 s that it was fast,
//   and its next request held a fast worker.
// - markSlow(key, avgMs?): another worker learned the route is slow (the
//   arbiter broadcasts it): slow, with the larger of the local average and
//   the given one (the threshold if none is given, so one fast observation
//   here brings it back).
// - export() / import(): the slow routes as plain data ({ key, avgMs }), to
//   survive reloads and for the broadcast.
// - Static hints (`slowRoutes`), slow whatever is observed (the operator
//   said so), given as `[METHOD ]PATH`:
//     'GET /reports/monthly', 'POST /users/:id/export', 'GET /users/42/x'
//        one route, keyed like a request (ids fold, so `:id` or any id);
//     'GET /reports/*'  every route under /reports, with at least one more
//        segment (not /reports itself); '/*' is every path but `/`;
//     a missing method or '*' means GET, HEAD, POST, PUT, PATCH, DELETE and
//        OPTIONS (the key includes the method; other methods are not hinted).
//   A '*' anywhere but as the last whole segment, a query or a fragment in a
//   pattern is an error. An exact hint is a pinned table entry (never
//   evicted); a prefix hint is checked by a second allocation-free scan of
//   the URL (routeUnder) in classify(), only when prefix hints exist and
//   the table does not already say slow.
//
// Table: open addressing over `capacity` slots (a power of two, 4096 by
// default); a key lives in the first free slot of the window of `probe`
// (8) slots from (key & mask), wrapping. Slots are never emptied one by
// one, so a lookup stops at the first free slot. When a new route finds its
// window full, it replaces the least recently touched (observed or marked)
// fast entry of the window; only if the whole window is slow, the slow one
// touched fewest times (ties: the least recently); pinned hints never - and
// if the window is all pinned, the observation is dropped. A flood of unique
// fast paths thus churns through fast entries and leaves learned slow routes
// in place; a flood of unique slow ones (each touched once) churns through
// its own entries, not through routes that real traffic keeps touching (a
// review evicted a learned route with 6,000 unique slow URLs). The count of
// touches lives in the flags byte above its three bits, saturating at 31.
// Recency is a 32-bit counter of touches, compared with wrapping arithmetic:
// exact as long as an entry is not 2^32 touches older than another.
//
// Key 0 is stored as 1 (0 marks a free slot): two of the 2^32 keys share an
// entry, which adds nothing noticeable to the hash's own collisions.

import { assert } from '../assert.js';
import { routeKey, routeUnder, prefixState } from './route-key.js';

export interface PredictorOptions {
  /** Slots in the table, a power of two, 16..2^24; default 4096. */
  capacity?: number;
  /** Weight of a new observation in the average, 0 < alpha <= 1; default 0.3. */
  alpha?: number;
  /** An observation over this (ms) marks the route slow; default 1000. */
  slowThresholdMs?: number;
  /** Static hints, see the top of predictor.ts. */
  slowRoutes?: readonly string[];
  /** Slots a key may live in from its home slot, 1..64; default 8. */
  probe?: number;
}

/** A slow route, as export() gives and import() takes it. Plain data (JSON). */
export interface SlowRoute {
  key: number;
  avgMs: number;
  /** Asked for in the slow lane since it was learned (the arbiter's table): imported with a touch more than one only announced. */
  used?: boolean;
}

export const DEFAULT_CAPACITY = 4096;
export const DEFAULT_ALPHA = 0.3;
export const DEFAULT_SLOW_THRESHOLD_MS = 1000;
export const DEFAULT_PROBE = 8;
/** The methods a hint without a method (or with `*`) covers. */
export const HINT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

// Flags of a slot: USED on every entry, so that 0 means "just taken".
const SLOW = 1;
const PINNED = 2;
const USED = 4;
/** One touch, in the flags byte's upper five bits (see the eviction rule). */
const TOUCH = 8;
const TOUCHES_MAX = 0xf8;
/** The flags with one more touch counted, up to the bound. */
const oneMore = (f: number): number => (f < TOUCHES_MAX ? f + TOUCH : f);

/** A static hint, parsed: exact (one key a method) or a prefix (prefix states a method). */
export interface CompiledHint {
  methods: string[];
  path: string;
  prefix: boolean;
}

/** Parse one `slow_routes` pattern; throws a RangeError saying what is wrong. */
export function parseHint(pattern: string): CompiledHint {
  const s = pattern.trim();
  const sp = s.indexOf(' ');
  let method = sp < 0 ? '*' : s.slice(0, sp);
  const path = sp < 0 ? s : s.slice(sp + 1).trim();
  if (method === '') method = '*';
  if (!/^(\*|[A-Za-z]+)$/.test(method)) throw new RangeError(`slow route ${JSON.stringify(pattern)}: the method must be a word or *`);
  if (!path.startsWith('/')) throw new RangeError(`slow route ${JSON.stringify(pattern)}: the path must start with /`);
  if (/[?#\s]/.test(path)) throw new RangeError(`slow route ${JSON.stringify(pattern)}: no query, fragment or space in a pattern`);
  const prefix = path === '/*' || path.endsWith('/*');
  const base = prefix ? path.slice(0, -2) : path;
  if (base.includes('*')) throw new RangeError(`slow route ${JSON.stringify(pattern)}: * only as the last whole segment ('GET /reports/*')`);
  return { methods: method === '*' ? [...HINT_METHODS] : [method], path: base === '' ? '/' : base, prefix };
}

export class Predictor {
  readonly capacity: number;
  readonly alpha: number;
  readonly slowThresholdMs: number;
  readonly probe: number;
  private readonly mask: number;
  private readonly keys: Int32Array;
  private readonly avg: Float64Array;
  private readonly flags: Uint8Array;
  private readonly touched: Uint32Array;
  private readonly prefixes: Int32Array;
  private readonly prefixCount: number;
  private clock = 0;
  private used = 0;

  constructor(opts: PredictorOptions = {}) {
    const capacity = opts.capacity ?? DEFAULT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 16 || capacity > 1 << 24 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`predictor capacity: a power of two from 16 to 16777216, not ${capacity}`);
    }
    const alpha = opts.alpha ?? DEFAULT_ALPHA;
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`predictor alpha: 0 < alpha <= 1, not ${alpha}`);
    const thr = opts.slowThresholdMs ?? DEFAULT_SLOW_THRESHOLD_MS;
    if (!(thr >= 0 && thr < Infinity)) throw new RangeError(`slow threshold: a finite number of ms >= 0, not ${thr}`);
    const probe = opts.probe ?? DEFAULT_PROBE;
    if (!Number.isInteger(probe) || probe < 1 || probe > 64 || probe > capacity) throw new RangeError(`predictor probe: 1..64, not ${probe}`);
    this.capacity = capacity;
    this.alpha = alpha;
    this.slowThresholdMs = thr;
    this.probe = probe;
    this.mask = capacity - 1;
    // One allocation for the four columns: each ArrayBuffer is a zeroed block of its own and
    // external memory V8 must account for, which a worker's boot paid four times.
    const table = new ArrayBuffer(capacity * 17);
    this.avg = new Float64Array(table, 0, capacity);
    this.keys = new Int32Array(table, capacity * 8, capacity);
    this.touched = new Uint32Array(table, capacity * 12, capacity);
    this.flags = new Uint8Array(table, capacity * 16, capacity);

    const prefixStates: number[] = [];
    for (const pattern of opts.slowRoutes ?? []) {
      const hint = parseHint(pattern);
      for (const m of hint.methods) {
        if (hint.prefix) {
          const st = prefixState(m, hint.path);
          if (!prefixStates.includes(st)) prefixStates.push(st);
        } else {
          const j = this.slot(routeKey(m, hint.path));
          if (j < 0) throw new RangeError(`slow routes: too many exact hints for a table of ${capacity}`);
          this.flags[j] = this.flags[j]! | USED | SLOW | PINNED;
          this.avg[j] = Math.max(this.avg[j]!, thr);
        }
      }
    }
    this.prefixes = Int32Array.from(prefixStates);
    this.prefixCount = prefixStates.length;
    // Hints take slots once each, and never more than the table has.
    assert(this.used <= capacity, 'predictor: more entries than slots');
    // With no exact hint there is nothing to count: the scan of every slot,
    // in a worker's boot, runs before the JIT and measured 1.6 ms.
    assert(this.used === 0 || this.slowCount === this.used, 'predictor: an exact hint that is not slow');
  }

  /** Is the route slow? Unknown routes are fast. Exact hints count; prefix hints need classify(). Allocates nothing. */
  predict(key: number): boolean {
    const k = key === 0 ? 1 : key | 0;
    const keys = this.keys;
    const mask = this.mask;
    let j = k & mask;
    for (let p = 0; p < this.probe; p++) {
      const e = keys[j];
      if (e === k) return (this.flags[j]! & SLOW) !== 0;
      if (e === 0) return false;
      j = (j + 1) & mask;
    }
    return false;
  }

  /**
   * Key, lookup and decision for one request, as node:http gives it
   * (`req.method`, `req.url`), prefix hints included. Allocates nothing.
   */
  classify(method: string, url: string): boolean {
    return this.classifyKey(routeKey(method, url), method, url);
  }

  /** classify() for a key the caller already has (it also needs it to observe()). */
  classifyKey(key: number, method: string, url: string): boolean {
    if (this.predict(key)) return true;
    return this.prefixCount !== 0 && routeUnder(method, url, this.prefixes, this.prefixCount);
  }

  /** A request of this route took `ms`; `error`: it was answered 4xx or 5xx. Non-finite or negative durations are ignored. */
  observe(key: number, ms: number, error = false): void {
    if (!(ms >= 0 && ms < Infinity)) return;
    if (error) {
      // Unknown is fast already: a fast error takes no slot either.
      const e = this.find(key);
      if (e < 0 ? ms <= this.slowThresholdMs : ms < this.avg[e]!) return;
    }
    const j = this.slot(key);
    if (j < 0) return;
    const f = this.flags[j]!;
    const thr = this.slowThresholdMs;
    if (f !== 0) {
      const a = this.alpha * ms + (1 - this.alpha) * this.avg[j]!;
      this.avg[j] = a;
      if (ms > thr) this.flags[j] = oneMore(f) | SLOW;
      else if ((f & (SLOW | PINNED)) === SLOW && a < thr) this.flags[j] = oneMore(f) & ~SLOW;
      else this.flags[j] = oneMore(f);
    } else {
      this.avg[j] = ms;
      this.flags[j] = ms > thr ? USED | SLOW | TOUCH : USED | TOUCH;
    }
    // The rules: one observation over the threshold is slow at once; a hint stays slow; averages stay finite.
    assert(ms <= thr || (this.flags[j]! & SLOW) !== 0, 'predictor: an observation over the threshold left its route fast');
    assert((this.flags[j]! & PINNED) === 0 || (this.flags[j]! & SLOW) !== 0, 'predictor: a pinned hint turned fast');
    assert(this.avg[j]! >= 0 && this.avg[j]! < Infinity, 'predictor: an average outside 0..Infinity');
    this.touched[j] = this.clock;
    this.clock = (this.clock + 1) >>> 0;
  }

  /** Another worker (through the arbiter) or a saved table says the route is slow. */
  markSlow(key: number, avgMs?: number): void {
    const given = avgMs !== undefined && avgMs >= 0 && avgMs < Infinity ? avgMs : this.slowThresholdMs;
    const j = this.slot(key);
    if (j < 0) return;
    const f = this.flags[j]!;
    if (f !== 0) this.avg[j] = Math.max(this.avg[j]!, given);
    else this.avg[j] = given;
    this.flags[j] = oneMore(f) | USED | SLOW;
    // News never lowers an average: the larger of the two stands.
    assert(this.avg[j]! >= given && this.avg[j]! < Infinity, 'predictor: markSlow lowered or broke the average');
    this.touched[j] = this.clock;
    this.clock = (this.clock + 1) >>> 0;
  }

  /**
   * Another worker saw the route's average fall below the threshold: fast
   * again here too, with that average (a pinned hint stays slow). Unknown
   * routes are fast already and take no slot.
   */
  markFast(key: number, avgMs: number): void {
    const j = this.find(key);
    if (j < 0 || !(avgMs >= 0 && avgMs < Infinity)) return;
    const f = this.flags[j]!;
    if ((f & PINNED) !== 0) return;
    this.avg[j] = avgMs;
    this.flags[j] = f & ~SLOW;
    // The lookup of a request (predict) finds this entry, now fast.
    assert(!this.predict(key), 'predictor: a route marked fast still predicts slow');
  }

  /** The learned slow routes (hints are not included: they come from the settings). Plain data. */
  export(): SlowRoute[] {
    const out: SlowRoute[] = [];
    for (let j = 0; j < this.capacity; j++) {
      if ((this.flags[j]! & (SLOW | PINNED)) === SLOW) out.push({ key: this.keys[j]!, avgMs: this.avg[j]! });
    }
    return out;
  }

  /**
   * Mark the routes of an export() slow (markSlow each). Entries that are not
   * { key: int32, avgMs: finite >= 0 } are skipped; returns how many were taken.
   */
  import(routes: readonly unknown[]): number {
    let n = 0;
    for (const r of routes) {
      if (typeof r !== 'object' || r === null) continue;
      const { key, avgMs } = r as Partial<SlowRoute>;
      if (typeof key !== 'number' || (key | 0) !== key || typeof avgMs !== 'number' || !(avgMs >= 0 && avgMs < Infinity)) continue;
      this.markSlow(key, avgMs);
      // A route traffic uses outranks a flood's one-shot URLs, each announced once, when a window is full (see the eviction rule).
      if ((r as SlowRoute).used === true) this.markSlow(key, avgMs);
      n++;
    }
    return n;
  }

  /** Entries in use (never more than capacity). */
  get size(): number {
    return this.used;
  }

  /** Entries currently slow, hints included. */
  get slowCount(): number {
    let n = 0;
    for (let j = 0; j < this.capacity; j++) if ((this.flags[j]! & SLOW) !== 0) n++;
    return n;
  }

  /** The table's own memory: the bytes of its typed arrays, fixed at construction. */
  get byteLength(): number {
    return this.keys.byteLength + this.avg.byteLength + this.flags.byteLength + this.touched.byteLength + this.prefixes.byteLength;
  }

  /** The typed arrays themselves, for tests that check they are never replaced. */
  get arrays(): readonly ArrayBufferView[] {
    return [this.keys, this.avg, this.flags, this.touched, this.prefixes];
  }

  /** The average (ms) of a route, undefined if unknown. */
  average(key: number): number | undefined {
    const j = this.find(key);
    return j < 0 ? undefined : this.avg[j];
  }

  /** The slot holding key, or -1. */
  private find(key: number): number {
    const k = key === 0 ? 1 : key | 0;
    let j = k & this.mask;
    for (let p = 0; p < this.probe; p++) {
      const e = this.keys[j];
      if (e === k) {
        assert((this.flags[j]! & USED) !== 0, 'predictor: a key in a slot not in use');
        return j;
      }
      if (e === 0) return -1;
      j = (j + 1) & this.mask;
    }
    return -1;
  }

  /**
   * The slot of key, taking one for it if it has none (a free one, else the
   * victim of the eviction rule, whose entry is cleared); -1 if the window is
   * all pinned.
   */
  private slot(key: number): number {
    const k = key === 0 ? 1 : key | 0;
    const keys = this.keys;
    const mask = this.mask;
    let j = k & mask;
    let victim = -1;
    let victimAge = -1;
    let victimSlow = true;
    let victimTouches = TOUCHES_MAX + 1;
    for (let p = 0; p < this.probe; p++) {
      const e = keys[j];
      if (e === k) return j;
      if (e === 0) {
        keys[j] = k;
        this.flags[j] = 0;
        this.used++;
        // Slots are never emptied one by one, so a free one is taken only while some are left.
        assert(this.used <= this.capacity, 'predictor: more entries than slots');
        return j;
      }
      const f = this.flags[j]!;
      if ((f & PINNED) === 0) {
        const slow = (f & SLOW) !== 0;
        const age = (this.clock - this.touched[j]!) >>> 0;
        // Among slow ones the fewest touches; fast ones all count as equal (a flood of them churns itself).
        const touches = slow ? f & TOUCHES_MAX : 0;
        // A fast entry beats any slow one; among equals, the fewest touches, then the oldest.
        if ((victimSlow && !slow) || (slow === victimSlow && (touches < victimTouches || (touches === victimTouches && age > victimAge)))) {
          victim = j;
          victimAge = age;
          victimSlow = slow;
          victimTouches = touches;
        }
      }
      j = (j + 1) & mask;
    }
    if (victim >= 0) {
      // Pinned hints are never evicted.
      assert((this.flags[victim]! & PINNED) === 0, 'predictor: a pinned hint evicted');
      keys[victim] = k;
      this.flags[victim] = 0;
    }
    return victim;
  }
}
