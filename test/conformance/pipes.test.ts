// A child's stdout/stderr through a pipe its parent reads (StdioTarget
// 'pipe'; the semantics and the Node facts behind them are in
// src/os/types.ts). Bounds where the worlds differ: the real pipe takes about
// 200 writes unread, the simulated one has no limit, so every case stays
// well inside 100 writes or 10 KiB of unread output.
import { expect, test } from 'vitest';
import { conformance, type RunResult } from './worlds.js';
import { pipeRegistry } from './pipe-programs.js';

function ok(r: RunResult): any {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr, leftovers: r.leftovers }).toEqual({ code: 0, signal: null, stderr: '', leftovers: [] });
  expect(r.records).toHaveLength(1);
  return r.records[0];
}

conformance(
  'pipes',
  (world) => {
    test('1000 lines through a pipe arrive whole and in order; no stderr stream without a pipe for it', async () => {
      expect(ok(await world().run('pipe-order'))).toEqual({ code: 0, count: 1000, inOrder: true, stderr: null });
    });

    test("stderr 'stdout' puts both into child.stdout in write order; stderr 'pipe' is a pipe of its own", async () => {
      expect(ok(await world().run('pipe-merge'))).toEqual({ mergedStderr: null, mergedInWriteOrder: true, splitOut: true, splitErr: true });
    });

    test('a grandchild that inherited the pipe keeps it open, and the parent alive, until it exits: EOF only then', async () => {
      const rec = ok(await world().run('pipe-grandchild'));
      expect(rec).toMatchObject({ text: 'child\ngrandchild\n', exited: true, code: 0 });
      // The grandchild writes 400 ms after it starts, which is before its parent exits.
      expect(rec.endAfterExit).toBeGreaterThanOrEqual(350);
      expect(rec.endAfterLate).toBeGreaterThanOrEqual(0);
    });

    test('what a child wrote before SIGKILL arrives (within the pipe capacity), then EOF', async () => {
      const rec = ok(await world().run('pipe-killed'));
      expect(rec.signal).toBe('SIGKILL');
      expect(rec.beforeKill).toBe(true);
      // Whatever it managed to write between 'ready' and the kill: whole lines only.
      expect(rec.after.every((l: string) => l === 'more')).toBe(true);
      expect(rec.endsWithNewline).toBe(true);
    });

    test('EOF comes when the child exits, not when it stops writing', async () => {
      const rec = ok(await world().run('pipe-eof-at-exit'));
      expect(rec).toMatchObject({ text: 'hello\n', code: 0 });
      expect(rec.eofAfterData).toBeGreaterThanOrEqual(250); // it sleeps 300 ms after writing
    });

    test('a parent that never reads does not hold up a child with small output (100 writes); the unread output is discarded at its exit and the pipe holds nobody', async () => {
      expect(ok(await world().run('pipe-unread'))).toEqual({ code: 0, within10s: true, ended: true, buffered: 0 });
    });

    test('a drover program writing to a pipe whose reader destroyed its end lives on: the stream says EPIPE (lost) and drops its writes', async () => {
      expect(ok(await world().run('pipe-epipe'))).toEqual({ code: 3, signal: null });
    });
  },
  [pipeRegistry],
);
