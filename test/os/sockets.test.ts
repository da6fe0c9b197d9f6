// Sockets on the real OS: the bind-only listener that the creator holds
// without accepting, Unix path handling, and what children inherit.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { UNIX_PATH_MAX, type Addr, type Child, type Listener } from '../../src/os/types.js';
import { findExecutable } from '../../src/os/node/spawn.js';
import { harness, inbox, readAll, reap, rejection, until } from './helpers.js';

const h = harness();
const os = h.os;
const open: Listener[] = [];
afterEach(async () => {
  for (const l of open.splice(0)) l.close();
  await h.cleanup();
});

async function listen(addr: Addr, opts?: { mode?: number }): Promise<Listener> {
  const l = await os.listen(addr, opts);
  open.push(l);
  return l;
}

async function acceptor(l: Listener): Promise<Child> {
  const c = h.spawn({ program: 'accept-reply', listeners: [l] });
  await inbox(os, c.channel!)();
  return c;
}

async function ask(addr: Addr): Promise<string> {
  return readAll(await os.connect(addr));
}

describe.each([
  ['TCP', (): Addr => ({ host: '127.0.0.1', port: 0 })],
  ['Unix', (): Addr => ({ path: join(h.tmp(), 's') })],
])('%s: the creator holds the socket and accepts nothing', (_, where) => {
  test('children accept; with none left, a connection waits in the backlog for the next one', async () => {
    const l = await listen(where());
    const kids = await Promise.all([acceptor(l), acceptor(l)]);
    const replies = new Set<string>();
    for (let i = 0; i < 8; i++) replies.add(await ask(l.address));
    expect([...replies].every((r) => kids.some((k) => String(k.pid) === r))).toBe(true);
    for (const k of kids) os.kill(k.pid, 'SIGKILL');
    for (const k of kids) await reap(os, k.pid);
    // Nobody accepts now, this process included: connect still succeeds.
    const waiting = await os.connect(l.address);
    const late = readAll(waiting);
    let early = false;
    void late.then(() => (early = true));
    await os.sleep(200);
    expect(early).toBe(false);
    const third = await acceptor(l);
    expect(await late).toBe(String(third.pid));
  });
});

describe('TCP', () => {
  test('port 0 is resolved; a taken port is a one-line EADDRINUSE, held or accepting, and for racing binds', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const port = (l.address as { port: number }).port;
    expect(port).toBeGreaterThan(0);
    const held = await rejection(os.listen({ host: '127.0.0.1', port }));
    expect(held.code).toBe('EADDRINUSE');
    expect(held.message).toBe(`EADDRINUSE: address 127.0.0.1:${port} is already in use; stop the other server or choose another --bind`);
    l.close();
    // libuv sets SO_REUSEADDR, so two binds of an idle port both succeed; the second listen fails.
    const both = await Promise.allSettled([os.listen({ host: '127.0.0.1', port }), os.listen({ host: '127.0.0.1', port })]);
    const ok = both.filter((r) => r.status === 'fulfilled');
    for (const r of ok) open.push(r.value);
    expect(ok).toHaveLength(1);
    expect(both.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok')).sort()).toEqual(['EADDRINUSE', 'ok']);
  });

  test('connect to a closed port is ECONNREFUSED naming the address', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const addr = l.address;
    l.close();
    const e = await rejection(os.connect(addr));
    expect(e.code).toBe('ECONNREFUSED');
    expect(e.message).toContain(`127.0.0.1:${(addr as { port: number }).port}`);
  });

  test('a command started by a child does not inherit the listening socket', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const c = h.spawn({ program: 'command-fds', listeners: [l] });
    const r = (await inbox(os, c.channel!)()) as { fds: string[]; listener: string; channel: string };
    expect(r.listener).toMatch(/^socket:/);
    expect(r.channel).toMatch(/^socket:/);
    expect(r.fds).not.toContain(r.listener);
    expect(r.fds).not.toContain(r.channel);
  });
});

describe('Unix', () => {
  test('a path over the limit is ENAMETOOLONG, with the length, the limit and the fix', async () => {
    const dir = h.tmp();
    const pad = (n: number) => join(dir, 'x'.repeat(n - dir.length - 1));
    const e = await rejection(os.listen({ path: pad(UNIX_PATH_MAX + 1) }));
    expect(e.code).toBe('ENAMETOOLONG');
    expect(e.message).toContain(pad(UNIX_PATH_MAX + 1));
    expect(e.message).toMatch(/108 bytes.*107.*\/tmp/);
    (await listen({ path: pad(UNIX_PATH_MAX) })).close();
  });

  test('mode 0600 by default, as asked otherwise, with the umask left as it was', async () => {
    const dir = h.tmp();
    const umask = process.umask();
    await listen({ path: join(dir, 'a') });
    await listen({ path: join(dir, 'b') }, { mode: 0o660 });
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'b')).mode & 0o777).toBe(0o660);
    expect(process.umask()).toBe(umask);
  });

  test('a live socket is refused, a stale one replaced, a file kept', async () => {
    const dir = h.tmp();
    const path = join(dir, 's');
    const l = await listen({ path }); // held, not accepting: still live
    expect((await rejection(os.listen({ path }))).code).toBe('EADDRINUSE');
    l.close();
    // Its creator killed before it could close: the path is left behind, stale.
    const dead = h.spawn({ program: 'listen-and-die', args: [path], channel: false });
    expect(await reap(os, dead.pid)).toMatchObject({ signal: 'SIGKILL' });
    expect(statSync(path).isSocket()).toBe(true);
    const fresh = await listen({ path });
    fresh.accept((s) => s.end('fresh'));
    expect(await ask({ path })).toBe('fresh');
    writeFileSync(join(dir, 'file'), 'not a socket');
    const e = await rejection(os.listen({ path: join(dir, 'file') }));
    expect(e.code).toBe('EEXIST');
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('not a socket');
  });

  test('two listens at once on a stale socket\'s path: one gets it, the other EADDRINUSE, and the path answers the one that has it', async () => {
    const dir = h.tmp();
    const path = join(dir, 's');
    const dead = h.spawn({ program: 'listen-and-die', args: [path], channel: false });
    expect(await reap(os, dead.pid)).toMatchObject({ signal: 'SIGKILL' });
    expect(statSync(path).isSocket()).toBe(true);
    // Without a lock from the stale check to the listen, the second removed the
    // first's socket (bound, not yet listening: it refuses connections as a stale one does) and both "had" it.
    const [a, b] = await Promise.allSettled([listen({ path }), listen({ path })]);
    const won = [a, b].filter((r) => r.status === 'fulfilled');
    const lost = [a, b].filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(((lost[0] as PromiseRejectedResult).reason as { code?: string }).code).toBe('EADDRINUSE');
    const l = (won[0] as PromiseFulfilledResult<Listener>).value;
    // The loser's probe connected and left: its connection waits in the backlog, closed (EPIPE on the reply).
    l.accept((s) => s.on('error', () => {}).end('the one'));
    expect(await ask({ path })).toBe('the one');
    expect(readdirSync(dir).sort()).toEqual(['s']); // no lock left behind
  });

  test('a lock left by a process that died mid-listen is taken over; a live owner\'s is waited for', async () => {
    const dir = h.tmp();
    const path = join(dir, 's');
    writeFileSync(`${path}.lock`, '999999'); // no such process
    const l = await listen({ path });
    expect(readdirSync(dir)).toEqual(['s']);
    l.close();
    writeFileSync(`${path}.lock`, String(process.pid)); // alive: this process
    const waiting = listen({ path });
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(path)).toBe(false); // still waiting for the lock
    (await import('node:fs')).unlinkSync(`${path}.lock`);
    const l2 = await waiting;
    expect(existsSync(path)).toBe(true);
    l2.close();
  });

  test('a lock that is not a plain file of ours (a symlink another user put in a shared directory) is refused at once, never read', async () => {
    const { symlinkSync } = await import('node:fs');
    const dir = h.tmp();
    const path = join(dir, 's');
    // It leads to a file naming a live process (this one): followed, it would be waited on for 10 s.
    writeFileSync(join(dir, 'elsewhere'), String(process.pid));
    symlinkSync(join(dir, 'elsewhere'), `${path}.lock`);
    const t0 = performance.now();
    const e = await rejection(os.listen({ path }));
    expect(e.code).toBe('EPERM');
    expect(e.message).toBe(`EPERM: ${path}.lock is not a plain file, not a lock of this user's: another user may be holding the socket's path; remove it, or put the socket in a directory of your own`);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(existsSync(path)).toBe(false);
  });

  // Root can give a file away, so no second process is needed to play the other user.
  test.skipIf(process.getuid?.() !== 0)('a lock that is a plain file of another uid is refused at once, and left in place', async () => {
    const { chownSync } = await import('node:fs');
    const dir = h.tmp();
    const path = join(dir, 's');
    // Naming a live process (this one): read and believed, it would be waited on for 10 s.
    writeFileSync(`${path}.lock`, String(process.pid));
    chownSync(`${path}.lock`, 65534, 65534);
    const t0 = performance.now();
    const e = await rejection(os.listen({ path }));
    expect(e.code).toBe('EPERM');
    expect(e.message).toBe(`EPERM: ${path}.lock is owned by uid 65534, not a lock of this user's: another user may be holding the socket's path; remove it, or put the socket in a directory of your own`);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(readdirSync(dir)).toEqual(['s.lock']); // neither removed as stale nor a socket bound beside it
    expect(statSync(`${path}.lock`).uid).toBe(65534);
  });

  test("the creator's close removes the path; a child's close does not", async () => {
    const path = join(h.tmp(), 's');
    const l = await listen({ path });
    const c = h.spawn({ program: 'hold-listener', listeners: [l] });
    const next = inbox(os, c.channel!);
    await next();
    c.channel!.send('close');
    expect(await next()).toBe('closed');
    expect(await reap(os, c.pid)).toMatchObject({ code: 0 });
    expect(existsSync(path)).toBe(true);
    l.accept((s) => s.end('still here'));
    expect(await ask({ path })).toBe('still here');
    l.close();
    expect(existsSync(path)).toBe(false);
    expect((await rejection(os.connect({ path }))).code).toBe('ENOENT');
  });
});

describe('a socket a child makes', () => {
  // Without a drover parent, a short-lived helper process puts the socket
  // into LISTEN (listen.ts); with one, the parent echoes the descriptor and
  // no process starts. The child's node path is broken, so a helper would fail.
  test('with a channel: listens and resumes through its parent, no helper process', async () => {
    const path = join(h.tmp(), 's');
    const c = h.spawn({ program: 'listen-own', args: [path] });
    const next = inbox(os, c.channel!);
    expect(await next()).toBe('listening');
    // In LISTEN before the child accepts: the connection waits in the backlog.
    const first = readAll(await os.connect({ path }));
    c.channel!.send('accept');
    expect(await next()).toEqual({ did: 'accept' });
    expect(await first).toBe(String(c.pid));
    c.channel!.send('pause');
    expect(await next()).toEqual({ did: 'pause' });
    const waiting = readAll(await os.connect({ path }));
    c.channel!.send('resume');
    expect(await next()).toEqual({ did: 'resume' });
    expect(await waiting).toBe(String(c.pid));
    os.kill(c.pid, 'SIGKILL');
    await reap(os, c.pid);
  });

  test('a child asking for too many copies gets a refusal and none; the parent keeps no descriptor of it', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    for (const [n, copies] of [['4', 4], ['1000', 0], ['0', 0], ['1.5', 0]] as const) {
      const c = h.spawn({ program: 'echo-abuse', args: [n] });
      const got = (await inbox(os, c.channel!)()) as { copies: number; errors: string[] };
      expect(got.copies, n).toBe(copies);
      expect(got.errors, n).toEqual(copies === 0 ? [`asked for ${n} copies (1-4)`] : []);
      await reap(os, c.pid);
    }
    expect(await until(os, () => fds() === before, 2000)).toBe(true);
  });

  test('without a channel, the helper is needed: its failure is the listen\'s error', async () => {
    const dir = h.tmp();
    const c = h.spawn({ program: 'listen-own', args: [join(dir, 's'), join(dir, 'out')], channel: false });
    expect(await reap(os, c.pid)).toMatchObject({ code: 0 });
    expect(readFileSync(join(dir, 'out'), 'utf8')).toMatch(/cannot start the listener helper/);
  });
});

describe('pause and resume', () => {
  /** Connections waiting in the accept queue of the TCP listening socket on `port` (/proc/net/tcp's rx_queue of a LISTEN socket): nobody has taken them. */
  function acceptQueue(port: number): number {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A') return Number.parseInt(f[4]!.split(':')[1]!, 16);
    }
    throw new Error(`no listening socket on port ${port}`);
  }

  async function pausable(l: Listener, args: string[] = []) {
    const c = h.spawn({ program: 'pausable', args, listeners: [l] });
    const next = inbox(os, c.channel!);
    expect(await next()).toEqual({ ready: c.pid });
    const say = async (word: string): Promise<unknown> => {
      c.channel!.send(word);
      return next();
    };
    return { c, next, say };
  }

  test('the parent holding the socket takes no connection through pauses and resumes: they wait in the kernel\'s queue; no adapter message reaches a channel handler', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const port = (l.address as { port: number }).port;
    const a = await pausable(l);
    const pid = String(a.c.pid);
    for (let round = 0; round < 3; round++) {
      expect(await a.say('pause')).toEqual({ did: 'pause' });
      const replies = (await Promise.all([0, 1, 2].map(() => os.connect(l.address)))).map(readAll);
      // Taken by no process: neither this one (which holds the socket) nor the paused child.
      expect(await until(os, () => acceptQueue(port) === 3, 3000)).toBe(true);
      await os.sleep(200);
      expect(acceptQueue(port)).toBe(3);
      // Every message on either channel is a word or its ack: the copy's own messages are not seen.
      expect(await a.say('resume')).toEqual({ did: 'resume' });
      expect(await Promise.all(replies)).toEqual([pid, pid, pid]);
      expect(acceptQueue(port)).toBe(0);
    }
    expect(await a.say('strays')).toEqual({ did: 'strays', strays: [] });
  });

  test('a listener the parent has closed meanwhile: resume reports EINVAL, stays paused, and the child lives on', async () => {
    const l = await os.listen({ host: '127.0.0.1', port: 0 });
    const a = await pausable(l);
    expect(await a.say('pause')).toEqual({ did: 'pause' });
    l.close();
    expect(await a.say('resume')).toEqual({ did: 'resume' });
    expect(await a.next()).toEqual({ error: 'EINVAL' });
    // Still paused (a second resume tries again), still alive.
    expect(await a.say('resume')).toEqual({ did: 'resume' });
    expect(await a.next()).toEqual({ error: 'EINVAL' });
    expect(await a.say('strays')).toEqual({ did: 'strays', strays: [] });
  });

  test.each([
    ['resumes after', 'after'],
    ['was asking when', 'asking'],
  ])('the parent gone (the child %s it died): resume reports ENOTCONN and does not crash the child', async (_, mode) => {
    const file = join(h.tmp(), 'outcome');
    const m = h.spawn({ program: 'pause-middle', args: [file, mode] });
    const r = (await inbox(os, m.channel!)()) as { child: number };
    if (mode === 'asking') await os.sleep(800); // the child asks 300 ms after its word; its parent is busy
    os.kill(m.pid, 'SIGKILL');
    await reap(os, m.pid);
    expect(await until(os, () => existsSync(file), 10_000)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe('ENOTCONN\n');
    // It exited by itself, after writing: it did not crash.
    expect(await until(os, () => !existsSync(`/proc/${r.child}`) || /^[ZX]/.test(readFileSync(`/proc/${r.child}/stat`, 'latin1').split(') ')[1]!), 5000)).toBe(true);
  });

  test.skipIf(!findExecutable('prlimit', process.env.PATH))('a child with no descriptor free to receive the copy: resume reports EMFILE and stays paused; with one free it resumes', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const a = await pausable(l);
    execFileSync('prlimit', ['--pid', String(a.c.pid), '--nofile=200:200']);
    expect(await a.say('pause')).toEqual({ did: 'pause' });
    expect(await a.say('fill')).toMatchObject({ did: 'fill', code: 'EMFILE' });
    expect(await a.say('resume')).toEqual({ did: 'resume' });
    expect(await a.next()).toEqual({ error: 'EMFILE' });
    expect(await a.say('unfill')).toEqual({ did: 'unfill' });
    expect(await a.say('resume')).toEqual({ did: 'resume' });
    expect(await readAll(await os.connect(l.address))).toBe(String(a.c.pid));
  });

  test('sockets from systemd (LISTEN_FDS): the process pauses and resumes its own accept, and its child gets copies from it', async () => {
    const l = await listen({ host: '127.0.0.1', port: 0 });
    const out = join(h.tmp(), 'out');
    const script = fileURLToPath(new URL('./systemd-parent.ts', import.meta.url));
    const c = h.spawn({
      command: ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', process.execPath, '--import', 'tsx', script],
      listeners: [l],
      stdout: { file: out },
    });
    l.close(); // the activated process holds the only descriptor now (and its child)
    expect(await reap(os, c.pid, 30_000)).toMatchObject({ code: 0 });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual({
      listeners: 1,
      childPausedWaited: true,
      childResumed: true,
      ownServed: 'systemd',
      ownPausedWaited: true,
      ownResumed: 'systemd',
      errors: [],
    });
  });
});
