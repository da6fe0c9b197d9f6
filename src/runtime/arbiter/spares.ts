// Spare workers (spare_workers): worker processes started ahead with the
// program's SPARE argument, node and drover's worker code loaded, the app
// not, waiting for a spec (worker/spare.ts). A worker's spawn takes a spare
// of its role when one holds exactly the listeners it would be handed (a
// fast spare inherited the public sockets at its own spawn; a reload that
// binds elsewhere cannot use it). The arbiter fills the pool again only when
// nothing boots, so a spare's own start never slows a boot it cannot help.
import type { Channel, Listener } from '../../os/types.js';
import { assert } from '../assert.js';

export type Role = 'fast' | 'slow';

export interface Spare {
  readonly pid: number;
  readonly role: Role;
  readonly channel: Channel;
  /** What it was spawned with: a fast spare's public listeners, none for a slow one. */
  readonly listeners: readonly Listener[];
  /** Once taken, where its messages go (the worker it became); until then a spare says nothing. */
  to: ((message: unknown) => void) | null;
  /** Let go by the arbiter (unwanted, or stopping): its exit is expected. */
  leaving: boolean;
  readonly startedAt: number;
}

export class Spares {
  private readonly byPid = new Map<number, Spare>();

  /** Spares alive or not yet reaped, leaving ones included (stop waits for every one). */
  get size(): number {
    return this.byPid.size;
  }

  add(pid: number, role: Role, channel: Channel, listeners: readonly Listener[], now: number): Spare {
    assert(pid > 1 && !this.byPid.has(pid), 'Spares.add: a new child pid');
    const s: Spare = { pid, role, channel, listeners, to: null, leaving: false, startedAt: now };
    channel.onMessage((m) => s.to?.(m));
    this.byPid.set(pid, s);
    return s;
  }

  /** Ready for work, of each role. */
  counts(): Record<Role, number> {
    return { fast: this.count('fast'), slow: this.count('slow') };
  }

  /** Ready for work, by role (not leaving). */
  count(role: Role): number {
    let n = 0;
    for (const s of this.byPid.values()) if (s.role === role && !s.leaving) n++;
    return n;
  }

  /** A spare of `role` that holds exactly `listeners`, in order, now out of the pool; null when none does. */
  take(role: Role, listeners: readonly Listener[]): Spare | null {
    for (const s of this.byPid.values()) {
      if (s.role !== role || s.leaving || !same(s.listeners, listeners)) continue;
      this.byPid.delete(s.pid);
      assert(!this.byPid.has(s.pid) && s.to === null, 'Spares.take: out of the pool, not yet anyone\'s');
      return s;
    }
    return null;
  }

  /** The spare with this pid, now out of the table (it exited); null: not a spare. */
  remove(pid: number): Spare | null {
    const s = this.byPid.get(pid) ?? null;
    this.byPid.delete(pid);
    assert(!this.byPid.has(pid), 'Spares.remove: gone from the table');
    return s;
  }

  /**
   * Marks as leaving, and returns, the spares the pool should not keep:
   * those holding other listeners than `listeners` (a reload bound
   * elsewhere), and those beyond `want` of their role.
   */
  unwanted(listeners: readonly Listener[], want: Readonly<Record<Role, number>>): Spare[] {
    const kept: Record<Role, number> = { fast: 0, slow: 0 };
    const out: Spare[] = [];
    for (const s of this.byPid.values()) {
      if (s.leaving) continue;
      if ((s.role === 'fast' && !same(s.listeners, listeners)) || kept[s.role] >= want[s.role]) {
        s.leaving = true;
        out.push(s);
      } else kept[s.role]++;
    }
    assert(this.count('fast') <= want.fast && this.count('slow') <= want.slow, 'Spares.unwanted: no more kept than wanted');
    return out;
  }

  /** Every spare, each now leaving (the arbiter stops). */
  letAllGo(): Spare[] {
    const out = [...this.byPid.values()];
    for (const s of out) s.leaving = true;
    assert(this.count('fast') === 0 && this.count('slow') === 0, 'Spares.letAllGo: none left ready');
    return out;
  }
}

function same(a: readonly Listener[], b: readonly Listener[]): boolean {
  return a.length === b.length && a.every((l, i) => l === b[i]);
}
