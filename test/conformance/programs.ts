// The programs of the conformance suite. Each root program exercises one OS
// behaviour and prints what it saw as JSON lines; the tests assert on those
// lines, identically for the Node adapter and the simulated kernel.
import { Buffer } from 'node:buffer';
import { programs, type Addr, type Os, type Signal, type Stream } from '../../src/os/types.js';
import { emit, errno, errnoAsync, inbox, lines, readAll, reap, until } from '../support/os.js';

const FOREVER = 1e9;

function stayAlive(os: Os): void {
  os.timer(FOREVER, () => {});
}

// ------------------------------------------------------------ small children

async function exitWith(os: Os, args: readonly string[]): Promise<void> {
  await os.sleep(Number(args[1] ?? 0));
  os.exit(Number(args[0]));
}

/** Installs what args[0] says, reports ready on its channel, then idles. */
function signalTarget(os: Os, args: readonly string[]): void {
  const [mode, sig] = args as [string, Signal];
  if (mode === 'handle') {
    os.onSignal(sig, () => {
      emit(os, { got: sig });
      os.exit(0);
    });
  } else if (mode === 'swallow') {
    os.onSignal(sig, () => {});
  } else if (mode === 'reset') {
    os.onSignal(sig, () => os.exit(0));
    os.onSignal(sig, null);
  }
  os.channel!.send('ready');
  stayAlive(os);
}

/** Appends `<name> <SIG>` to a file when signalled, then exits. Spawns `child` first if asked. */
async function markOnSignal(os: Os, args: readonly string[]): Promise<void> {
  const [file, name, sig, child] = args as [string, string, Signal, string | undefined];
  os.onSignal(sig, () => {
    os.fs.appendFile(file, `${name} ${sig}\n`);
    os.exit(0);
  });
  if (child) {
    const c = os.spawn({ program: 'mark-on-signal', args: [file, child, sig] });
    await inbox(os, c.channel!)();
  }
  os.channel!.send('ready');
  stayAlive(os);
}

/** Spawns an orphan-to-be, forwards its readiness, then waits to be killed. */
async function middle(os: Os, args: readonly string[]): Promise<void> {
  const c = os.spawn({ program: 'orphan', args: [args[0]!, String(os.pid)] });
  await inbox(os, c.channel!)();
  os.channel!.send({ grandchild: c.pid });
  stayAlive(os);
}

/** Records what it sees when its parent dies: the death signal, the channel disconnect, the new ppid. */
async function orphan(os: Os, args: readonly string[]): Promise<void> {
  const [file, parent] = args as [string, string];
  const seen: Record<string, unknown> = { parent: Number(parent), ppidAtStart: os.ppid() };
  seen.armed = os.setParentDeathSignal('SIGUSR2');
  os.onSignal('SIGUSR2', () => (seen.deathSignal = true));
  os.channel!.onDisconnect(() => (seen.disconnect = true));
  os.channel!.send('ready');
  await until(os, () => os.ppid() !== Number(parent), 10_000);
  seen.ppidAfter = os.ppid();
  await until(os, () => seen.deathSignal === true && seen.disconnect === true, 3000);
  os.fs.appendFile(file, JSON.stringify(seen) + '\n');
  os.exit(0);
}

async function burnCounting(os: Os): Promise<void> {
  let count = 0;
  os.onSignal('SIGUSR2', () => count++);
  os.channel!.send('ready');
  // Let the ready message leave before the loop is held.
  await os.sleep(20);
  os.burn(600);
  await os.sleep(100);
  os.channel!.send({ count });
  await os.sleep(20);
}

function acceptReply(os: Os): void {
  os.listeners[0]!.accept((s) => s.end(String(os.pid)));
  os.channel!.send('ready');
}

/** Accepts, says ready, then holds its event loop until killed: it never gets to take a connection. */
async function acceptThenBurn(os: Os): Promise<void> {
  os.listeners[0]!.accept((s) => s.end(String(os.pid)));
  os.channel!.send('ready');
  await os.sleep(20);
  os.burn(60_000);
}

async function busyAcceptor(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const busy = os.spawn({ program: 'accept-then-burn', listeners: [l] });
  await inbox(os, busy.channel!)();
  await os.sleep(100);
  // It accepts but its loop is held: the connection waits in the backlog, not in its hands.
  const waiting = await os.connect(l.address);
  const late = readAll(waiting);
  await os.sleep(200);
  os.kill(busy.pid, 'SIGKILL');
  await reap(os, busy.pid);
  const next = os.spawn({ program: 'accept-reply', listeners: [l] });
  const reply = await late;
  os.kill(next.pid, 'SIGKILL');
  await reap(os, next.pid);
  l.close();
  emit(os, { servedByNext: reply === String(next.pid) });
}

/**
 * Accepts on listeners[0], answering each connection with its pid; pauses
 * and resumes when its parent says so, and acks each word. With args[0]
 * 'paused' it pauses before it accepts.
 */
function pausable(os: Os, args: readonly string[]): void {
  const l = os.listeners[0]!;
  const errors: string[] = [];
  if (args[0] === 'paused') l.pause();
  l.accept((s) => s.end(String(os.pid)), (e) => errors.push(e.code));
  os.channel!.onMessage((m) => {
    if (m === 'pause') l.pause();
    else if (m === 'resume') l.resume();
    os.channel!.send({ did: m, errors });
  });
  os.channel!.send('ready');
}

/** A connection, and whether it has been answered yet. */
function waiting(os: Os, addr: Addr): Promise<{ answered: () => boolean; reply: Promise<string> }> {
  return os.connect(addr).then((s) => {
    let done = false;
    const reply = readAll(s).then((r) => ((done = true), r));
    return { answered: () => done, reply };
  });
}

/**
 * Listener.pause/resume across processes: a paused acceptor takes nothing
 * while another takes everything; alone and paused, connections still
 * succeed and wait, and resume serves them all; pause/resume again and again.
 */
async function pauseResume(os: Os, args: readonly string[]): Promise<void> {
  const addr: Addr = args[0] ? { path: `${args[0]}/pr.sock` } : { host: '127.0.0.1', port: 0 };
  const l = await os.listen(addr);
  const spawnOne = async (extra: string[] = []) => {
    const c = os.spawn({ program: 'pausable', args: extra, listeners: [l] });
    const next = inbox(os, c.channel!);
    await next();
    const say = async (word: string) => {
      c.channel!.send(word);
      return (await next()) as { did: string; errors: string[] };
    };
    return { c, say };
  };
  const a = await spawnOne();
  const b = await spawnOne();
  const pid = (x: { c: { pid: number } }) => String(x.c.pid);
  const out: Record<string, unknown> = {};

  // 1. A paused, B accepting: B takes them all.
  await a.say('pause');
  const first: string[] = [];
  for (let i = 0; i < 12; i++) first.push(await readAll(await os.connect(l.address)));
  out.othersTookAll = first.every((r) => r === pid(b));

  // 2. B gone, A paused: connections succeed and wait; resume serves them all.
  os.kill(b.c.pid, 'SIGKILL');
  await reap(os, b.c.pid);
  const held = await Promise.all([0, 1, 2, 3, 4].map(() => waiting(os, l.address)));
  await os.sleep(300);
  out.waitedWhilePaused = held.every((h) => !h.answered());
  await a.say('resume');
  out.resumeServedAll = (await Promise.all(held.map((h) => h.reply))).every((r) => r === pid(a));

  // 3. Again and again; a second pause or resume changes nothing.
  const rounds: boolean[] = [];
  for (let round = 0; round < 4; round++) {
    await a.say('pause');
    await a.say('pause');
    const w = await waiting(os, l.address);
    await os.sleep(100);
    const waited = !w.answered();
    await a.say('resume');
    await a.say('resume');
    rounds.push(waited && (await w.reply) === pid(a) && (await readAll(await os.connect(l.address))) === pid(a));
  }
  out.rounds = rounds;

  // 4. Paused before accepting: takes nothing until resumed.
  const c = await spawnOne(['paused']);
  await a.say('pause');
  const w = await waiting(os, l.address);
  await os.sleep(200);
  out.pausedBeforeAccept = !w.answered();
  out.errors = (await c.say('resume')).errors;
  out.servedAfter = (await w.reply) === pid(c);

  for (const x of [a, c]) os.kill(x.c.pid, 'SIGKILL');
  for (const x of [a, c]) await reap(os, x.c.pid);
  l.close();
  emit(os, out);
}

/** args[0] 'resume': pauses and resumes at once; 'pause': just pauses. Holds nothing else: no timer, no message handler. */
function pauseAlone(os: Os, args: readonly string[]): void {
  const l = os.listeners[0]!;
  l.accept((s) => {
    s.end(String(os.pid));
    l.close();
  });
  l.pause();
  if (args[0] === 'resume') l.resume();
  os.channel!.send('ready');
}

/**
 * Liveness: a paused listener does not keep its process alive; a resumed
 * one does, from the call on (on the real OS, also while its descriptor is
 * on its way).
 */
async function pauseLiveness(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const paused = os.spawn({ program: 'pause-alone', args: ['pause'], listeners: [l] });
  const resumed = os.spawn({ program: 'pause-alone', args: ['resume'], listeners: [l] });
  const pausedExit = await reap(os, paused.pid);
  await os.sleep(300);
  const reply = await readAll(await os.connect(l.address));
  const resumedExit = await reap(os, resumed.pid);
  l.close();
  emit(os, { pausedExit: pausedExit.code, served: reply === String(resumed.pid), resumedExit: resumedExit.code });
}

/**
 * The socket's creator pauses and resumes its own accept: connections wait
 * meanwhile (connect succeeds), the socket file stays, resume serves them,
 * several times over; close still removes the file.
 */
async function pauseResumeCreator(os: Os, args: readonly string[]): Promise<void> {
  const path = `${args[0]}/own.sock`;
  const l = await os.listen({ path });
  const errors: string[] = [];
  l.accept((s) => s.end('served'), (e) => errors.push(e.code));
  const rounds: boolean[] = [];
  for (let round = 0; round < 3; round++) {
    l.pause();
    l.pause();
    const w = await waiting(os, { path });
    await os.sleep(100);
    const waited = !w.answered() && os.fs.exists(path);
    l.resume();
    l.resume();
    rounds.push(waited && (await w.reply) === 'served');
  }
  l.pause();
  l.close();
  l.resume(); // after close: nothing
  emit(os, { rounds, errors, gone: !os.fs.exists(path), refused: await errnoAsync(os.connect({ path })) });
}

async function listenAndWait(os: Os, args: readonly string[]): Promise<void> {
  await os.listen({ path: args[0]! });
  os.channel!.send('ready');
  stayAlive(os);
}

async function appender(os: Os, args: readonly string[]): Promise<void> {
  const [file, tag, n] = args as [string, string, string];
  const fd = os.fs.open(file, 'a');
  for (let i = 0; i < Number(n); i++) {
    os.fs.write(fd, `${tag} ${i}\n`);
    if (i % 10 === 0) await os.sleep(1);
  }
  os.fs.close(fd);
}

function printEnv(os: Os): void {
  emit(os, { foo: os.env.FOO ?? null, home: os.env.HOME ?? null, cwd: os.cwd() });
  os.stderr.write('to stderr\n');
}

function reportNow(os: Os): void {
  os.channel!.send({ now: os.now() });
  // Stay until the parent has the message: the channel keeps us alive while we listen.
  os.channel!.onMessage(() => os.exit(0));
}

// ---------------------------------------------------------------- root programs

async function spawnWait(os: Os): Promise<void> {
  let sigchld = 0;
  os.onSignal('SIGCHLD', () => sigchld++);
  const noChildren = errno(() => os.waitpid(-1));
  const c = os.spawn({ program: 'exit-with', args: ['7', '50'], channel: false });
  const whileRunning = os.waitpid(c.pid);
  const runningAny = os.waitpid(-1);
  await until(os, () => sigchld > 0);
  const killZombie = errno(() => os.kill(c.pid, 'SIGTERM'));
  const first = os.waitpid(c.pid);
  const again = errno(() => os.waitpid(c.pid));
  const killReaped = errno(() => os.kill(c.pid, 'SIGTERM'));
  const stranger = errno(() => os.waitpid(os.pid));
  emit(os, { noChildren, positivePid: c.pid > 0, whileRunning, runningAny, sigchld, killZombie, first, again, killReaped, stranger, childPidMatches: first?.pid === c.pid });
}

async function sigchldMany(os: Os): Promise<void> {
  const codes: number[] = [];
  let calls = 0;
  os.onSignal('SIGCHLD', () => {
    calls++;
    // The loop every SIGCHLD handler needs: signals merge, so collect all; ECHILD ends it.
    for (;;) {
      let e = null;
      if (errno(() => (e = os.waitpid(-1))) === 'ECHILD' || e === null) break;
      codes.push((e as { code: number }).code);
    }
  });
  for (const [code, delay] of [[1, 30], [2, 120], [3, 240]]) {
    os.spawn({ program: 'exit-with', args: [String(code), String(delay)], channel: false });
  }
  await until(os, () => codes.length === 3);
  emit(os, { codes: codes.sort(), calls });
}

async function spawnTarget(os: Os, mode: string, sig: Signal) {
  const c = os.spawn({ program: 'signal-target', args: [mode, sig] });
  // A dozen Node processes booting at once on two busy cores (the suite runs two files at a time) take a while.
  return { pid: c.pid, ready: inbox(os, c.channel!)(60_000) };
}

async function defaultActions(os: Os): Promise<void> {
  const terminate: Signal[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'SIGABRT', 'SIGKILL'];
  const survive: Signal[] = ['SIGCHLD', 'SIGWINCH', 'SIGUSR1', 'SIGTTIN', 'SIGTTOU'];
  const targets = await Promise.all([...terminate, ...survive].map((s) => spawnTarget(os, 'none', s)));
  await Promise.all(targets.map((t) => t.ready));
  const result: Record<string, unknown> = {};
  [...terminate, ...survive].forEach((sig, i) => os.kill(targets[i]!.pid, sig));
  for (const [i, sig] of terminate.entries()) {
    const e = await reap(os, targets[i]!.pid);
    result[sig] = e.signal ?? `code ${e.code}`;
  }
  await os.sleep(300);
  for (const [j, sig] of survive.entries()) {
    const pid = targets[terminate.length + j]!.pid;
    const still = os.waitpid(pid) === null;
    os.kill(pid, 'SIGKILL');
    const e = await reap(os, pid);
    result[sig] = still ? `survived, then ${e.signal}` : `died: ${e.signal ?? e.code}`;
  }
  emit(os, result);
}

async function handlers(os: Os): Promise<void> {
  const handled = await spawnTarget(os, 'handle', 'SIGTERM');
  const reset = await spawnTarget(os, 'reset', 'SIGTERM');
  const swallow = await spawnTarget(os, 'swallow', 'SIGTERM');
  await Promise.all([handled.ready, reset.ready, swallow.ready]);
  os.kill(handled.pid, 'SIGTERM');
  os.kill(reset.pid, 'SIGTERM');
  os.kill(swallow.pid, 'SIGTERM');
  const h = await reap(os, handled.pid);
  const r = await reap(os, reset.pid);
  await os.sleep(200);
  const swallowedAlive = os.waitpid(swallow.pid) === null;
  os.kill(swallow.pid, 'SIGKILL');
  const k = await reap(os, swallow.pid);
  const catchKill = errno(() => os.onSignal('SIGKILL', () => {}));
  emit(os, { handled: h, reset: r.signal, swallowedAlive, killed: k.signal, catchKill });
}

async function coalesce(os: Os): Promise<void> {
  const c = os.spawn({ program: 'burn-counting' });
  const next = inbox(os, c.channel!);
  await next();
  for (let i = 0; i < 3; i++) os.kill(c.pid, 'SIGUSR2');
  const report = (await next()) as { count: number };
  await reap(os, c.pid);
  emit(os, report);
}

async function groupKill(os: Os, args: readonly string[]): Promise<void> {
  const file = `${args[0]}/marks`;
  const leader = os.spawn({ program: 'mark-on-signal', args: [file, 'leader', 'SIGTERM', 'member'], newGroup: true });
  await inbox(os, leader.channel!)();
  os.kill(-leader.pid, 'SIGTERM');
  const e = await reap(os, leader.pid);
  await until(os, () => lines(os, file).length === 2, 3000);
  const emptyGroup = errno(() => os.kill(-999_999, 'SIGTERM'));
  emit(os, { leader: e, marks: lines(os, file).sort(), emptyGroup });
}

async function reparent(os: Os, args: readonly string[]): Promise<void> {
  const file = `${args[0]}/orphan`;
  const m = os.spawn({ program: 'middle', args: [file] });
  const { grandchild } = (await inbox(os, m.channel!)()) as { grandchild: number };
  os.kill(m.pid, 'SIGKILL');
  const e = await reap(os, m.pid);
  const done = await until(os, () => lines(os, file).length > 0, 5000);
  const seen = done ? JSON.parse(lines(os, file)[0]!) : null;
  emit(os, { middle: e.signal, middlePid: m.pid, grandchildNotOurs: errno(() => os.waitpid(grandchild)), seen });
}

/** A parent-death SIGKILL asked at spawn reaches a child whose event loop is held. */
async function pdeathBlocked(os: Os): Promise<void> {
  const m = os.spawn({ program: 'middle-blocked' });
  const { grandchild } = (await inbox(os, m.channel!)()) as { grandchild: number };
  await os.sleep(200);
  const aliveBefore = os.alive(grandchild);
  os.kill(m.pid, 'SIGKILL');
  await reap(os, m.pid);
  const gone = await until(os, () => !os.alive(grandchild), 3000);
  if (!gone) os.kill(grandchild, 'SIGKILL');
  emit(os, { aliveBefore, goneAfterParent: gone });
}

async function middleBlocked(os: Os): Promise<void> {
  const c = os.spawn({ program: 'blocked', parentDeathSignal: 'SIGKILL' });
  await inbox(os, c.channel!)();
  os.channel!.send({ grandchild: c.pid });
  stayAlive(os);
}

async function blocked(os: Os): Promise<void> {
  os.channel!.send('ready');
  await os.sleep(20);
  os.burn(60_000); // a request stuck in a CPU loop: no JS runs, no handler
}

async function tcp(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const port = (l.address as { port: number }).port;
  l.accept((s) => s.pipe(s));
  const s = await os.connect({ host: '127.0.0.1', port });
  const echoed = readAll(s);
  s.end('hello');
  const text = await echoed;
  const inUse = await errnoAsync(os.listen({ host: '127.0.0.1', port }));
  l.close();
  await os.sleep(50);
  const refused = await errnoAsync(os.connect({ host: '127.0.0.1', port }));
  emit(os, { portAssigned: port > 0, echoed: text, inUse, refused });
}

/**
 * Flow control: a reader that does not read stops its writer. write() turns
 * false after a bounded amount (the socket buffers), 'drain' waits for the
 * reader, and every byte arrives once it reads.
 */
async function backpressure(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  let server: Stream | null = null;
  const accepted = new Promise<void>((resolve) =>
    l.accept((s) => {
      server = s;
      s.pause();
      resolve();
    }),
  );
  const client = await os.connect(l.address);
  await accepted;
  const chunk = Buffer.alloc(64 * 1024, 120);
  const LIMIT = 64 * 1024 * 1024;
  let written = 0;
  for (;;) {
    written += chunk.length;
    if (!client.write(chunk) || written >= LIMIT) break;
    await os.sleep(0); // a real socket flushes to the kernel between writes
  }
  let drained = false;
  client.once('drain', () => (drained = true));
  await os.sleep(200);
  const drainedUnread = drained;
  let got = 0;
  const s = server!;
  s.on('data', (d: Buffer) => (got += d.length));
  const ended = new Promise<void>((resolve) => s.on('end', resolve));
  s.resume();
  for (let i = 0; i < 500 && !drained; i++) await os.sleep(10);
  client.end();
  await ended;
  s.destroy();
  l.close();
  emit(os, { stopped: written < LIMIT, pastHighWaterMark: written > 16 * 1024, drainedUnread, drained, whole: got === written });
}

/**
 * A socket nobody reads, whose peer ends: with nothing unread it ends and
 * closes by itself (net.Socket reads 0 after EOF); with bytes unread it
 * stays open, 'end' waiting behind them.
 */
async function unreadEof(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  let n = 0;
  l.accept((s) => {
    if (n++ === 0) s.end();
    else s.end('unread');
  });
  let closedEmpty = false;
  let closedWithData = false;
  const empty = await os.connect(l.address);
  empty.on('close', () => (closedEmpty = true));
  await os.sleep(20);
  const withData = await os.connect(l.address);
  withData.on('close', () => (closedWithData = true));
  await os.sleep(300);
  const seen = { closedEmpty, closedWithData };
  withData.resume(); // read it: now it ends and closes
  await os.sleep(100);
  l.close();
  emit(os, { ...seen, closedAfterRead: closedWithData });
}

/**
 * Flow control's edges: write callbacks held by a full reader all run when
 * the reader goes; a connection whose client ended before it was accepted is
 * still accepted, and then ends; a writer that burned CPU first is held by
 * the window like any other (on a Unix socket, whose buffers are small).
 */
async function flowEdges(os: Os, args: readonly string[]): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 121);
  // 1. Held callbacks when the reader destroys its end.
  const l1 = await os.listen({ host: '127.0.0.1', port: 0 });
  let reader: Stream | null = null;
  const got1 = new Promise<void>((resolve) => l1.accept((s) => ((reader = s), s.pause(), resolve())));
  const w = await os.connect(l1.address);
  w.on('error', () => {});
  await got1;
  let writes = 0;
  let called = 0;
  for (let i = 0; i < 400; i++) {
    writes++;
    if (!w.write(chunk, () => called++)) break;
    await os.sleep(0);
  }
  await os.sleep(50);
  const heldBeforeClose = called < writes;
  reader!.destroy();
  await os.sleep(300);
  const allCalledAfterClose = called === writes;
  w.destroy();
  l1.close();

  // 2. A client that connects and ends before anyone accepts.
  const l2 = await os.listen({ host: '127.0.0.1', port: 0 });
  const early = await os.connect(l2.address);
  early.on('error', () => {});
  early.end();
  await os.sleep(100);
  let accepted = 0;
  let ended = false;
  l2.accept((s) => {
    accepted++;
    s.on('end', () => (ended = true));
    s.on('error', () => {});
  });
  await os.sleep(200);
  l2.close();

  // 3. A writer that burned CPU first, to a Unix socket whose reader waits 1 s.
  const l3 = await os.listen({ path: `${args[0]}/flow.sock` });
  let readAt = -1;
  l3.accept((s) => {
    s.pause();
    void os.sleep(1000).then(() => {
      readAt = os.now();
      s.resume();
    });
  });
  const b = await os.connect({ path: `${args[0]}/flow.sock` });
  os.burn(5);
  for (let sent = 0; sent < 8 * 1024 * 1024; sent += chunk.length) {
    if (!b.write(chunk)) await new Promise((resolve) => b.once('drain', resolve));
  }
  const doneAt = os.now();
  b.destroy();
  l3.close();
  emit(os, { heldBeforeClose, allCalledAfterClose, accepted, ended, burnWaited: readAt >= 0 && doneAt >= readAt });
}

async function unix(os: Os, args: readonly string[]): Promise<void> {
  const path = `${args[0]}/sock`;
  const l = await os.listen({ path });
  l.accept((s) => s.pipe(s));
  const st = os.fs.stat(path);
  const s = await os.connect({ path });
  const echoed = readAll(s);
  s.end('over unix');
  const text = await echoed;
  l.close();
  await os.sleep(50);
  emit(os, { echoed: text, isSocket: st.isSocket(), mode: (st.mode & 0o777).toString(8), gone: !os.fs.exists(path), missing: await errnoAsync(os.connect({ path })) });
}

async function sharedListener(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const addr = l.address;
  const kids = [0, 1].map(() => os.spawn({ program: 'accept-reply', listeners: [l] }));
  await Promise.all(kids.map((k) => inbox(os, k.channel!)()));
  const replies = new Set<string>();
  for (let i = 0; i < 10; i++) replies.add(await readAll(await os.connect(addr)));
  for (const k of kids) os.kill(k.pid, 'SIGKILL');
  for (const k of kids) await reap(os, k.pid);
  // Nobody accepts now. The connection must still be taken, by the socket's backlog, not by us.
  const waiting = await os.connect(addr);
  const late = readAll(waiting);
  await os.sleep(100);
  const third = os.spawn({ program: 'accept-reply', listeners: [l] });
  const lateReply = await late;
  os.kill(third.pid, 'SIGKILL');
  await reap(os, third.pid);
  l.close();
  const pids = kids.map((k) => String(k.pid));
  emit(os, { fromChildrenOnly: [...replies].every((r) => pids.includes(r)), lateFromThird: lateReply === String(third.pid) });
}

async function unixPaths(os: Os, args: readonly string[]): Promise<void> {
  const dir = args[0]!;
  const out: Record<string, unknown> = {};
  const pad = (total: number) => `${dir}/${'x'.repeat(total - dir.length - 1)}`;
  out.tooLong = await errnoAsync(os.listen({ path: pad(108) }));
  const longest = await os.listen({ path: pad(107) });
  longest.close();
  out.longestOk = true;

  const path = `${dir}/s`;
  const holder = os.spawn({ program: 'listen-and-wait', args: [path] });
  await inbox(os, holder.channel!)();
  out.liveRefused = await errnoAsync(os.listen({ path }));
  os.kill(holder.pid, 'SIGKILL');
  await reap(os, holder.pid);
  out.staleLeft = os.fs.exists(path);
  // Connecting to it, its listener dead (the slow lane's fast workers rely on this: a refusal means nothing was sent).
  out.staleConnect = await errnoAsync(os.connect({ path }));
  // Two listens at once over the stale socket: one has it, the other is refused (never both).
  const both = await Promise.allSettled([os.listen({ path }), os.listen({ path })]);
  const won = both.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  out.staleTakenOnce = won.length;
  out.otherRefused = both.flatMap((r) => (r.status === 'rejected' ? [(r.reason as { code?: string }).code] : []));
  out.staleReplaced = os.fs.stat(path).isSocket();
  for (const l of won) l.close();

  os.fs.writeFile(`${dir}/plain`, 'not a socket');
  out.fileInTheWay = await errnoAsync(os.listen({ path: `${dir}/plain` }));
  out.fileKept = os.fs.readFile(`${dir}/plain`);
  out.missingDir = await os.listen({ path: `${dir}/no/s` }).then(() => 'listening', (e: Error) => e.message);
  const g = await os.listen({ path: `${dir}/g` }, { mode: 0o660 });
  out.mode660 = (os.fs.stat(`${dir}/g`).mode & 0o777).toString(8);
  g.close();
  emit(os, out);
}

async function appendTwo(os: Os, args: readonly string[]): Promise<void> {
  const file = `${args[0]}/log`;
  const kids = ['A', 'B'].map((tag) => os.spawn({ program: 'appender', args: [file, tag, '200'], channel: false }));
  for (const k of kids) await reap(os, k.pid);
  const all = lines(os, file);
  const ordered = (tag: string) => all.filter((l) => l.startsWith(tag + ' ')).every((l, i) => l === `${tag} ${i}`);
  emit(os, { count: all.length, wellFormed: all.every((l) => /^[AB] \d+$/.test(l)), orderedA: ordered('A'), orderedB: ordered('B') });
}

function pidfile(os: Os, args: readonly string[]): void {
  const path = `${args[0]}/drover.pid`;
  os.fs.writeFile(`${path}.tmp`, `${os.pid}\n`);
  os.fs.rename(`${path}.tmp`, path);
  const first = os.fs.readFile(path);
  os.fs.writeFile(`${path}.tmp`, 'replaced\n');
  os.fs.rename(`${path}.tmp`, path);
  const second = os.fs.readFile(path);
  const tmpGone = !os.fs.exists(`${path}.tmp`);
  const exclusive = errno(() => os.fs.open(path, 'wx'));
  os.fs.chmod(path, 0o640);
  const mode = (os.fs.stat(path).mode & 0o777).toString(8);
  os.fs.unlink(path);
  const missing = errno(() => os.fs.readFile(path));
  os.fs.mkdir(`${args[0]}/a/b`, { recursive: true });
  const isDir = os.fs.stat(`${args[0]}/a/b`).isDirectory();
  emit(os, { first: first === `${os.pid}\n`, second, tmpGone, exclusive, mode, missing, isDir, listing: os.fs.readdir(args[0]!) });
}

/** What a private-file check relies on: lstat sees a symlink (stat follows it), O_EXCL never follows one, files are the creator's. */
function symlinks(os: Os, args: readonly string[]): void {
  const dir = args[0]!;
  os.fs.writeFile(`${dir}/target`, 'precious\n');
  os.fs.symlink(`${dir}/target`, `${dir}/link`);
  os.fs.symlink(`${dir}/nowhere`, `${dir}/dangling`);
  os.fs.mkdir(`${dir}/private`, { mode: 0o700 });
  const l = os.fs.lstat(`${dir}/link`);
  const s = os.fs.stat(`${dir}/link`);
  emit(os, {
    lstatLink: l.isSymbolicLink(),
    lstatIsFile: l.isFile(),
    statFollows: s.isFile() && !s.isSymbolicLink(),
    exclusiveOnLink: errno(() => os.fs.open(`${dir}/link`, 'wx')),
    exclusiveOnDangling: errno(() => os.fs.open(`${dir}/dangling`, 'wx')),
    danglingNotCreated: errno(() => os.fs.stat(`${dir}/nowhere`)),
    targetKept: os.fs.readFile(`${dir}/target`),
    ownFile: os.fs.lstat(`${dir}/target`).uid === os.uid,
    ownDir: os.fs.lstat(`${dir}/private`).uid === os.uid,
    dirMode: (os.fs.lstat(`${dir}/private`).mode & 0o777).toString(8),
    dirIsDir: os.fs.lstat(`${dir}/private`).isDirectory(),
    uidIsNumber: Number.isInteger(os.uid) && os.uid >= 0,
  });
}

/** Messages a parent sends right after spawn, long before the child's handler is installed: kept, in order, for it. */
async function earlyMessages(os: Os): Promise<void> {
  const c = os.spawn({ program: 'late-listener', channel: true });
  for (const m of [1, 2, 3, 'end']) c.channel!.send(m);
  const got = await new Promise((resolve) => c.channel!.onMessage(resolve));
  c.channel!.send('bye');
  const e = await reap(os, c.pid);
  emit(os, { got, code: e.code });
}

async function lateListener(os: Os): Promise<void> {
  await os.sleep(200);
  const got: unknown[] = [];
  os.channel!.onMessage((m) => {
    if (m === 'bye') os.exit(0);
    else if (m === 'end') os.channel!.send(got);
    else got.push(m);
  });
}

/** The same when the parent closed the channel before the child's handler came: still delivered, and they keep the child alive until then. */
async function earlyThenClose(os: Os, args: readonly string[]): Promise<void> {
  const file = `${args[0]}/got.json`;
  const c = os.spawn({ program: 'late-recorder', args: [file], channel: true });
  for (const m of [1, 2, 3]) c.channel!.send(m);
  c.channel!.close();
  const e = await reap(os, c.pid);
  emit(os, { got: JSON.parse(os.fs.readFile(file)), code: e.code });
}

async function lateRecorder(os: Os, args: readonly string[]): Promise<void> {
  await os.sleep(200);
  const got: unknown[] = [];
  os.channel!.onMessage((m) => {
    got.push(m);
    os.fs.writeFile(args[0]!, JSON.stringify(got));
  });
}

async function lifetime(os: Os): Promise<void> {
  const run = async (program: string, channel = false) => {
    const t0 = os.now();
    // The crashing ones print their error; that output is not under test here.
    const c = os.spawn({ program, channel, stderr: 'ignore' });
    if (channel) {
      await os.sleep(300);
      c.channel!.send('bye');
    }
    const e = await reap(os, c.pid);
    return { code: e.code, signal: e.signal, ms: os.now() - t0 };
  };
  const [empty, thrown, rejected, timer, unref, channel, exitInTimer] = await Promise.all([
    run('life-empty'), run('life-throw'), run('life-reject'), run('life-timer'), run('life-unref'), run('life-channel', true), run('life-exit'),
  ]);
  emit(os, { empty, thrown, rejected, timer, unref, channel, exitInTimer });
}

/** Sets the title it is given, says so, then idles until killed. */
function titled(os: Os, args: readonly string[]): void {
  os.setTitle(args[0]!);
  os.channel!.send('ready');
  stayAlive(os);
}

/**
 * titleOf: a child's title once it set one, this process's own, and null for
 * a child killed (a zombie), reaped, and a pid nobody has.
 */
async function titles(os: Os): Promise<void> {
  os.setTitle('drover-conformance: parent');
  const c = os.spawn({ program: 'titled', args: ['drover-conformance: child [x.js]'] });
  await inbox(os, c.channel!)();
  const child = os.titleOf(c.pid);
  os.kill(c.pid, 'SIGKILL');
  await until(os, () => !os.alive(c.pid), 3000);
  const zombie = os.titleOf(c.pid);
  await reap(os, c.pid);
  emit(os, { own: os.titleOf(os.pid), child, zombie, reaped: os.titleOf(c.pid), nobody: os.titleOf(2 ** 30), notAPid: os.titleOf(-1) });
}

async function spawnErrors(os: Os): Promise<void> {
  emit(os, {
    program: errno(() => os.spawn({ program: 'no-such-program' })),
    command: errno(() => os.spawn({ command: ['drover-no-such-command'] })),
  });
}

async function stdioEnvCwd(os: Os, args: readonly string[]): Promise<void> {
  const dir = args[0]!;
  const file = `${dir}/out.log`;
  const c = os.spawn({ program: 'print-env', env: { FOO: 'bar' }, cwd: dir, stdout: { file }, stderr: 'stdout', channel: false });
  const e = await reap(os, c.pid);
  const got = lines(os, file);
  emit(os, { code: e.code, child: JSON.parse(got.find((l) => l.startsWith('{'))!), stderrLine: got.includes('to stderr') });
}

async function time(os: Os): Promise<void> {
  const t0 = os.now();
  await os.sleep(100);
  const t1 = os.now();
  os.burn(50);
  const t2 = os.now();
  let fired = false;
  os.timer(20, () => (fired = true)).cancel();
  const c = os.spawn({ program: 'report-now' });
  const m = (await inbox(os, c.channel!)()) as { now: number };
  const t3 = os.now();
  c.channel!.send('bye');
  await reap(os, c.pid);
  await os.sleep(50);
  emit(os, { slept: t1 - t0, burnt: t2 - t1, childBeforeUs: m.now <= t3, childAfterSpawn: m.now >= t2, cancelled: !fired, wall: os.wallTime() > Date.UTC(2020, 0, 1) });
}

/** Os.importModule: a module by path, evaluated once however often imported; a missing one rejects as import() does. */
async function importModule(os: Os): Promise<void> {
  const path = new URL('./module-fixture.js', import.meta.url).pathname;
  const a = await os.importModule(path);
  const b = await os.importModule(path);
  const missing = await os.importModule(`${path}.missing.js`).then(() => 'loaded', (e: { code?: string }) => e.code);
  emit(os, { answer: a.answer, same: a === b, loads: (globalThis as { droverFixtureLoads?: number }).droverFixtureLoads, missing });
}

export const registry = programs(import.meta.url, {
  'exit-with': exitWith,
  'signal-target': signalTarget,
  'mark-on-signal': markOnSignal,
  middle,
  orphan,
  'burn-counting': burnCounting,
  'accept-reply': acceptReply,
  'pdeath-blocked': pdeathBlocked,
  'middle-blocked': middleBlocked,
  blocked,
  'accept-then-burn': acceptThenBurn,
  'busy-acceptor': busyAcceptor,
  pausable,
  'pause-resume': pauseResume,
  'pause-alone': pauseAlone,
  'pause-liveness': pauseLiveness,
  'pause-resume-creator': pauseResumeCreator,
  'listen-and-wait': listenAndWait,
  appender,
  'print-env': printEnv,
  'report-now': reportNow,
  'life-empty': () => {},
  'life-throw': () => {
    throw new Error('thrown on purpose');
  },
  'life-reject': async (os) => {
    await os.sleep(10);
    throw new Error('rejected on purpose');
  },
  'life-timer': (os) => {
    os.timer(100, () => {});
  },
  'life-unref': (os) => {
    os.timer(60_000, () => {}).unref();
  },
  'early-messages': earlyMessages,
  'late-listener': lateListener,
  'early-then-close': earlyThenClose,
  'late-recorder': lateRecorder,
  'life-channel': (os) => {
    os.channel!.onMessage(() => os.exit(5));
  },
  'life-exit': async (os) => {
    await os.sleep(10);
    os.timer(10, () => os.exit(3));
  },
  'spawn-wait': spawnWait,
  'sigchld-many': sigchldMany,
  'default-actions': defaultActions,
  handlers,
  coalesce,
  'group-kill': groupKill,
  reparent,
  tcp,
  unix,
  'shared-listener': sharedListener,
  'unix-paths': unixPaths,
  'append-two': appendTwo,
  pidfile,
  symlinks,
  lifetime,
  'spawn-errors': spawnErrors,
  titled,
  titles,
  'stdio-env-cwd': stdioEnvCwd,
  time,
  'import-module': importModule,
  backpressure,
  'unread-eof': unreadEof,
  'flow-edges': flowEdges,
});
