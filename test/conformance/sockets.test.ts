import { expect, test } from 'vitest';
import { conformance, type RunResult } from './worlds.js';

function ok(r: RunResult): any {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr, leftovers: r.leftovers }).toEqual({ code: 0, signal: null, stderr: '', leftovers: [] });
  return r.records[0];
}

conformance('sockets', (world) => {
  test('TCP: listen on port 0, accept, connect, echo; a taken port is EADDRINUSE; a closed one refuses', async () => {
    expect(ok(await world().run('tcp'))).toEqual({ portAssigned: true, echoed: 'hello', inUse: 'EADDRINUSE', refused: 'ECONNREFUSED' });
  });

  test('Unix: listen, accept, connect, echo; the socket file is a socket, mode 0600, removed by close', async () => {
    const dir = world().tmp();
    expect(ok(await world().run('unix', [dir]))).toEqual({ echoed: 'over unix', isSocket: true, mode: '600', gone: true, missing: 'ENOENT' });
  });

  test('flow control: a reader that does not read stops its writer (write() false after a bounded amount), drain waits for it, and every byte arrives', async () => {
    expect(ok(await world().run('backpressure'))).toEqual({ stopped: true, pastHighWaterMark: true, drainedUnread: false, drained: true, whole: true });
  });

  test('a socket nobody reads ends and closes when its peer ends with nothing unread; with bytes unread it waits for them to be read', async () => {
    expect(ok(await world().run('unread-eof'))).toEqual({ closedEmpty: true, closedWithData: false, closedAfterRead: true });
  });

  test('flow control\'s edges: held write callbacks all run when the reader goes; a client that ended before accept is accepted and ends; a writer that burned first is held too', async () => {
    const dir = world().tmp();
    expect(ok(await world().run('flow-edges', [dir]))).toEqual({ heldBeforeClose: true, allCalledAfterClose: true, accepted: 1, ended: true, burnWaited: true });
  });

  test('a listening socket shared by two children: the parent accepts none, and the backlog waits for the next child', async () => {
    expect(ok(await world().run('shared-listener'))).toEqual({ fromChildrenOnly: true, lateFromThird: true });
  });

  test('a connection waiting while the only acceptor is busy (its loop held) is served by the next acceptor after that one dies', async () => {
    expect(ok(await world().run('busy-acceptor'))).toEqual({ servedByNext: true });
  });

  test.each([
    ['TCP', false],
    ['Unix', true],
  ])('%s: a paused acceptor takes nothing while another takes everything; alone and paused, connections wait and resume serves them all; again and again', async (_, unix) => {
    const args = unix ? [world().tmp()] : [];
    expect(ok(await world().run('pause-resume', args))).toEqual({
      othersTookAll: true,
      waitedWhilePaused: true,
      resumeServedAll: true,
      rounds: [true, true, true, true],
      pausedBeforeAccept: true,
      errors: [],
      servedAfter: true,
    });
  });

  test('a paused listener does not keep its process alive; a resumed one does, at once', async () => {
    expect(ok(await world().run('pause-liveness'))).toEqual({ pausedExit: 0, served: true, resumedExit: 0 });
  });

  test('the creator pauses and resumes its own accept: connections wait, the socket file stays, resume serves them; close still removes it', async () => {
    const dir = world().tmp();
    expect(ok(await world().run('pause-resume-creator', [dir]))).toEqual({ rounds: [true, true, true], errors: [], gone: true, refused: 'ENOENT' });
  });

  test('Unix paths: over the limit is ENAMETOOLONG, a live socket is refused, a stale one refuses connections and is replaced (by one of two listens at once), a file kept, a missing directory named with its fix', async () => {
    const dir = world().tmp();
    expect(ok(await world().run('unix-paths', [dir]))).toEqual({
      tooLong: 'ENAMETOOLONG',
      longestOk: true,
      liveRefused: 'EADDRINUSE',
      staleLeft: true,
      staleConnect: 'ECONNREFUSED',
      staleTakenOnce: 1,
      otherRefused: ['EADDRINUSE'],
      staleReplaced: true,
      fileInTheWay: 'EEXIST',
      fileKept: 'not a socket',
      missingDir: `ENOENT: cannot create the Unix socket ${dir}/no/s: its directory ${dir}/no does not exist; create it (mkdir -p ${dir}/no) or fix the path`,
      mode660: '660',
    });
  });
});
