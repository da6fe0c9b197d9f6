// A spare worker's wait for its spec (worker/spare.ts), against a stand-in
// Os: what it does before 'go', and that nothing said after 'go' is lost
// before the worker listens.
import { describe, expect, test } from 'vitest';
import type { Os, Signal } from '../../src/os/types.js';
import { parseWorkerTitle, SPARE, SPARE_TITLE, stillSpare, workerTitle, type WorkerSpec } from '../../src/runtime/protocol.js';
import { awaitGo } from '../../src/runtime/worker/spare.js';

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function standIn(withChannel = true) {
  const onMessage: ((m: unknown) => void)[] = [];
  const onDisconnect: (() => void)[] = [];
  const signals = new Map<Signal, (() => void) | null>();
  const said: string[] = [];
  let title = '';
  const os = {
    channel: withChannel ? { onMessage: (fn: (m: unknown) => void) => onMessage.push(fn), onDisconnect: (fn: () => void) => onDisconnect.push(fn), send: () => true, connected: true, close() {} } : null,
    setTitle: (t: string) => (title = t),
    onSignal: (sig: Signal, fn: (() => void) | null) => signals.set(sig, fn),
    exit: (code: number) => {
      throw new Exit(code);
    },
    stderr: { write: (s: string) => said.push(s) },
  } as unknown as Os;
  return {
    os,
    deliver: (m: unknown) => onMessage.forEach((fn) => fn(m)),
    disconnect: () => onDisconnect.forEach((fn) => fn()),
    signals,
    said,
    title: () => title,
  };
}

const SPEC = { app: '/srv/app.js', generation: 7, role: 'fast' } as unknown as WorkerSpec;

describe('a spare worker', () => {
  test('waits, titled as a spare, for go; what the arbiter says after go reaches the worker in order once it listens', async () => {
    const s = standIn();
    const going = awaitGo(s.os);
    expect(s.title()).toBe('drover: spare worker');
    s.deliver({ t: 'go', spec: SPEC });
    // Before the worker's code runs on: a drain and a lane message, said at once.
    s.deliver({ t: 'drain' });
    s.deliver({ t: 'lane-orphans', ids: [1] });
    const { spec, inbox } = await going;
    expect(spec).toEqual(SPEC);
    const heard: unknown[] = [];
    inbox.onMessage((m) => heard.push(m));
    s.deliver({ t: 'lane-orphans', ids: [2] });
    expect(heard).toEqual([{ t: 'drain' }, { t: 'lane-orphans', ids: [1] }, { t: 'lane-orphans', ids: [2] }]);
    // Once given work, the arbiter's going away is the worker's business (its parent-death signal), not the spare's.
    expect(() => s.disconnect()).not.toThrow();
  });

  test('stops on TERM, INT and QUIT and when its arbiter is gone; HUP and USR1 do not stop it', () => {
    const s = standIn();
    void awaitGo(s.os);
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) expect(() => s.signals.get(sig)!()).toThrow(new Exit(0));
    for (const sig of ['SIGHUP', 'SIGUSR1'] as const) expect(() => s.signals.get(sig)!()).not.toThrow();
    expect(() => s.disconnect()).toThrow(new Exit(0));
  });

  test('refuses anything but go first, and a start without a channel', () => {
    const s = standIn();
    void awaitGo(s.os);
    expect(() => s.deliver({ t: 'drain' })).toThrow(/the first message to a spare is go/);
    const lone = standIn(false);
    expect(() => awaitGo(lone.os)).toThrow(new Exit(3));
    expect(lone.said.join('')).toMatch(/started by its arbiter, over a channel/);
  });
});

describe('a worker\'s title', () => {
  test('reads back as what it was written from; a spare is one until it titles itself a worker', () => {
    expect(workerTitle({ role: 'fast', generation: 12, app: '/srv/my app.js' })).toBe('drover: worker gen 12 [my app.js]');
    expect(parseWorkerTitle(workerTitle({ role: 'fast', generation: 12, app: '/srv/my app.js' }))).toEqual({ role: 'fast', generation: 12, app: 'my app.js' });
    expect(parseWorkerTitle(workerTitle({ role: 'slow', generation: 3, app: '/srv/a.js' }))).toEqual({ role: 'slow', generation: 3, app: null });
    for (const t of [SPARE_TITLE, '', 'drover: arbiter [a.js]', 'drover: worker gen x [a.js]', 'drover: slow worker gen 3 [a.js]', 'drover: worker gen 3']) expect(parseWorkerTitle(t)).toBeNull();
    expect(stillSpare([SPARE], SPARE_TITLE)).toBe(true);
    expect(stillSpare([SPARE], '')).toBe(true);
    expect(stillSpare([SPARE], 'drover: slow worker gen 2')).toBe(false);
    expect(stillSpare(['{"generation":1}'], SPARE_TITLE)).toBe(false);
  });
});
