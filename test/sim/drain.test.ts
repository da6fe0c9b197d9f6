// The drain between batches (Machine.drain, app-globals settled): what an
// event started runs to its end before the next batch, without a turn of the
// host's event loop per batch.
import { describe, expect, it } from 'vitest';
import type { Os } from '../../src/os/types.js';
import { boot } from './helpers.js';

// The host's own, taken before any simulated process runs.
const { setImmediate: hostImmediate, clearImmediate: hostClearImmediate, setTimeout: hostTimeout, Date: HostDate } = globalThis;

/** Ticks, microtasks and promise reactions, nested `depth` deep in turns, each noting where it is. */
async function chain(os: Os, name: string, depth: number, seen: string[]): Promise<void> {
  for (let i = 0; i < depth; i++) {
    await new Promise<void>((r) => process.nextTick(r));
    await new Promise<void>((r) => queueMicrotask(r));
    await Promise.resolve();
  }
  seen.push(`${name} done @${os.now()}`);
}

/** Ticks and microtasks only, alternating `depth` deep: no promise settles, so the drain's rounds alone must see them through. */
function callbacks(os: Os, name: string, depth: number, seen: string[]): void {
  let i = 0;
  const step = (): void => {
    if (++i >= depth) seen.push(`${name} done @${os.now()}`);
    else if (i % 2 === 0) process.nextTick(step);
    else queueMicrotask(step);
  };
  step();
}

/** Two timers 1 ms apart, each starting a chain `start` 50 deep: what each noted, in order. The second must find the first's chain finished. */
async function twoChains(start: (os: Os, name: string, depth: number, seen: string[]) => unknown): Promise<string[]> {
  const seen: string[] = [];
  const { k } = boot({
    main: (os) => {
      for (const [t, name] of [[1, 'a'], [2, 'b']] as const) {
        os.timer(t, () => {
          seen.push(`${name} start @${os.now()}`);
          void start(os, name, 50, seen);
        });
      }
    },
  });
  await k.run();
  return seen;
}

describe('the drain between batches', () => {
  it('runs a chain of ticks and microtasks an event started before the next batch, with no promise in it', async () => {
    expect(await twoChains(callbacks)).toEqual(['a start @1', 'a done @1', 'b start @2', 'b done @2']);
  });

  it("runs every tick, microtask and reaction an event started before the next event's batch", async () => {
    expect(await twoChains(chain)).toEqual(['a start @1', 'a done @1', 'b start @2', 'b done @2']);
  });

  it("turns the host's event loop once in 1024 batches, not once a batch", async () => {
    let turns = 0;
    let on = true;
    let foreign = 0;
    const spin = (): void => {
      turns++;
      // The host's own code runs in a turn: the simulator's globals are out (hostTurn).
      if (globalThis.setTimeout !== hostTimeout || globalThis.Date !== HostDate) foreign++;
      if (on) handle = hostImmediate(spin);
    };
    let handle = hostImmediate(spin);
    const { k } = boot({
      main: (os) => {
        let n = 0;
        // 4096 batches: one timer a millisecond.
        const next = (): void => {
          if (++n < 4096) os.timer(1, next);
        };
        os.timer(1, next);
      },
    });
    const r = await k.run();
    on = false;
    hostClearImmediate(handle);
    expect(r.events).toBeGreaterThanOrEqual(4096);
    // A turn per batch would be more than 4096; the host still gets a turn every 1024.
    expect(turns).toBeGreaterThanOrEqual(3);
    expect(turns).toBeLessThan(16);
    expect(foreign).toBe(0);
  });
});
