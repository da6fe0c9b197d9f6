import { expect, test } from 'vitest';
import { conformance, type RunResult } from './worlds.js';

function ok(r: RunResult): any {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr, leftovers: r.leftovers }).toEqual({ code: 0, signal: null, stderr: '', leftovers: [] });
  expect(r.records).toHaveLength(1);
  return r.records[0];
}

conformance('processes', (world) => {
  test('spawn, exit, waitpid: a dead child is a zombie until collected, exactly once', async () => {
    const rec = ok(await world().run('spawn-wait'));
    expect(rec).toEqual({
      noChildren: 'ECHILD',
      positivePid: true,
      whileRunning: null,
      runningAny: null,
      sigchld: 1,
      killZombie: null, // signalling a zombie is not an error
      first: { pid: expect.any(Number), code: 7, signal: null },
      again: 'ECHILD',
      killReaped: 'ESRCH',
      stranger: 'ECHILD',
      childPidMatches: true,
    });
  });

  test('SIGCHLD is raised for exited children; a handler that loops waitpid(-1) collects them all', async () => {
    const rec = ok(await world().run('sigchld-many'));
    expect(rec.codes).toEqual([1, 2, 3]);
    // Standard signals may merge; the handler runs at least once and never more than once per child.
    expect(rec.calls).toBeGreaterThanOrEqual(1);
    expect(rec.calls).toBeLessThanOrEqual(3);
  });

  test("titleOf tells what ps shows: the title a process set (its own, a child's), null once it is dead, reaped or never was", async () => {
    // What a pidfile check needs (arbiter/pidfile.ts): a live pid that is not a drover arbiter is a stale pidfile's.
    expect(ok(await world().run('titles'))).toEqual({
      own: 'drover-conformance: parent',
      child: 'drover-conformance: child [x.js]',
      zombie: null,
      reaped: null,
      nobody: null,
      notAPid: null,
    });
  });

  test('spawning an unknown program or command fails at once with ENOENT', async () => {
    expect(ok(await world().run('spawn-errors'))).toEqual({ program: 'ENOENT', command: 'ENOENT' });
  });

  test('env replaces the environment, cwd applies, stdout goes to an append file and stderr joins it', async () => {
    const dir = world().tmp();
    const rec = ok(await world().run('stdio-env-cwd', [dir]));
    expect(rec).toEqual({ code: 0, child: { foo: 'bar', home: null, cwd: dir }, stderrLine: true });
  });

  test('a process lives while it has work and exits like a Node process whose loop went empty', async () => {
    const rec = ok(await world().run('lifetime'));
    expect(rec.empty).toMatchObject({ code: 0, signal: null });
    expect(rec.thrown).toMatchObject({ code: 1 });
    expect(rec.rejected).toMatchObject({ code: 1 });
    expect(rec.timer).toMatchObject({ code: 0 });
    expect(rec.timer.ms).toBeGreaterThanOrEqual(100);
    expect(rec.unref).toMatchObject({ code: 0 });
    expect(rec.unref.ms).toBeLessThan(10_000);
    expect(rec.channel).toMatchObject({ code: 5 }); // kept alive by its message handler until 'bye'
    expect(rec.channel.ms).toBeGreaterThanOrEqual(300);
    expect(rec.exitInTimer).toMatchObject({ code: 3 });
  });

  test('messages sent right after spawn wait for the handler the child installs later, in order', async () => {
    expect(ok(await world().run('early-messages'))).toEqual({ got: [1, 2, 3], code: 0 });
  });

  test('messages that came before the parent closed the channel still reach a handler installed after it, and keep the child alive for them', async () => {
    const dir = world().tmp();
    expect(ok(await world().run('early-then-close', [dir]))).toEqual({ got: [1, 2, 3], code: 0 });
  });

  test('an orphan is re-parented, gets its parent-death signal and sees its channel disconnect', async () => {
    const dir = world().tmp();
    const rec = ok(await world().run('reparent', [dir]));
    expect(rec.middle).toBe('SIGKILL');
    expect(rec.grandchildNotOurs).toBe('ECHILD');
    expect(rec.seen).toMatchObject({ parent: rec.middlePid, ppidAtStart: rec.middlePid, armed: true, deathSignal: true, disconnect: true });
    // 1 on a plain machine; a subreaper's pid where one exists. Never the dead parent.
    expect(rec.seen.ppidAfter).not.toBe(rec.middlePid);
  });

  test('a parent-death SIGKILL asked for at spawn ends a child whose event loop is held when its parent dies', async () => {
    expect(ok(await world().run('pdeath-blocked'))).toEqual({ aliveBefore: true, goneAfterParent: true });
  });

  test('killing a process group reaches the leader and its children', async () => {
    const dir = world().tmp();
    const rec = ok(await world().run('group-kill', [dir]));
    expect(rec).toEqual({
      leader: { pid: expect.any(Number), code: 0, signal: null },
      marks: ['leader SIGTERM', 'member SIGTERM'],
      emptyGroup: 'ESRCH',
    });
  });
});
