import { expect, test } from 'vitest';
import { conformance } from './worlds.js';

conformance('signals', (world) => {
  test('default actions: terminating signals kill, CHLD/WINCH/USR1 are ignored, TTIN/TTOU stop', { timeout: 90_000 }, async () => {
    const r = await world().run('default-actions', [], { timeout: 80_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.leftovers).toEqual([]);
    expect(r.records[0]).toEqual({
      SIGTERM: 'SIGTERM',
      SIGINT: 'SIGINT',
      SIGHUP: 'SIGHUP',
      SIGQUIT: 'SIGQUIT',
      SIGUSR2: 'SIGUSR2',
      SIGABRT: 'SIGABRT',
      SIGKILL: 'SIGKILL',
      SIGCHLD: 'survived, then SIGKILL',
      SIGWINCH: 'survived, then SIGKILL',
      SIGUSR1: 'survived, then SIGKILL',
      SIGTTIN: 'survived, then SIGKILL',
      SIGTTOU: 'survived, then SIGKILL',
    });
  });

  test('a handler replaces the default action, null restores it, KILL cannot be caught', async () => {
    const r = await world().run('handlers');
    expect(r.code).toBe(0);
    expect(r.records).toEqual([
      { got: 'SIGTERM' }, // printed by the child's handler
      { handled: { pid: expect.any(Number), code: 0, signal: null }, reset: 'SIGTERM', swallowedAlive: true, killed: 'SIGKILL', catchKill: 'EINVAL' },
    ]);
  });

  test('signals sent while a process is busy are delivered after, at most once each', async () => {
    const r = await world().run('coalesce');
    expect(r.code).toBe(0);
    // The kernel merges a pending standard signal (the simulator always does);
    // Node's libuv records each arrival. Both deliver at least one, never more than were sent.
    expect(r.records[0].count).toBeGreaterThanOrEqual(1);
    expect(r.records[0].count).toBeLessThanOrEqual(3);
  });
});
