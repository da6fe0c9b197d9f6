import { expect, test } from 'vitest';
import { conformance } from './worlds.js';

conformance('files', (world) => {
  test('append-mode files written by two processes keep every line whole and each writer in order', async () => {
    const dir = world().tmp();
    const r = await world().run('append-two', [dir]);
    expect(r.code).toBe(0);
    expect(r.records[0]).toEqual({ count: 400, wellFormed: true, orderedA: true, orderedB: true });
  });

  test('a pidfile is written by rename; exclusive create, chmod, unlink, mkdir -p, readdir', async () => {
    const dir = world().tmp();
    const r = await world().run('pidfile', [dir]);
    expect(r.code).toBe(0);
    expect(r.records[0]).toEqual({
      first: true,
      second: 'replaced\n',
      tmpGone: true,
      exclusive: 'EEXIST',
      mode: '640',
      missing: 'ENOENT',
      isDir: true,
      listing: ['a'],
    });
  });

  test('lstat sees a symlink that stat follows; exclusive create never follows one, dangling or not; what a process creates is its own', async () => {
    const dir = world().tmp();
    const r = await world().run('symlinks', [dir]);
    expect(r.code).toBe(0);
    expect(r.records[0]).toEqual({
      lstatLink: true,
      lstatIsFile: false,
      statFollows: true,
      exclusiveOnLink: 'EEXIST',
      exclusiveOnDangling: 'EEXIST',
      danglingNotCreated: 'ENOENT',
      targetKept: 'precious\n',
      ownFile: true,
      ownDir: true,
      dirMode: '700',
      dirIsDir: true,
      uidIsNumber: true,
    });
  });
});
