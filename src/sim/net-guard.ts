// The network outside drover, as seen by a simulated process: not there. An
// app run in the simulator that opens a socket, a DNS query or a port of its
// own on the host would make the run depend on the host (and hang, or pass,
// for reasons no seed decides). So while some kernel runs, the host's network
// entry points below are wrapped: called while a simulated process runs
// (app-globals.ts says when) they fail at the call with ERR_DROVER_NOT_SIMULATED,
// naming the module that called; called by the host (vitest, the harness,
// host work) they are the originals, called through. With no kernel running
// they are the originals themselves.
//
// Drover's own code in the simulator never reaches these: it serves with
// node:http's Server over streams the kernel hands it (server.emit('connection'),
// never listen) and talks HTTP with http.request({ createConnection }) over
// Os.connect, which is let through: a request that brings its own connection
// (that option, or an Agent whose createConnection is not a stock one) opens
// nothing on the host. A stock Agent ends in net.Socket.prototype.connect or
// tls.connect, which are guarded too.
//
// How a call fails: at once, as a throw, where Node would throw or call back
// with an error (the app sees it at its call, with its stack); fetch and
// dns.promises, which report every error as a rejected promise, return one.
//
// Processes on the host are refused the same way: node:child_process's
// spawn, exec, execFile, fork and their Sync forms (and the promisified exec
// and execFile) fail with ERR_DROVER_NOT_SIMULATED, naming the caller.
//
// Threads on the host too: node:worker_threads's Worker (new Worker(), a
// subclass of it) fails with ERR_DROVER_NOT_SIMULATED, naming the caller: a
// thread runs outside virtual time, and no kill of its process stops it.
//
// Host I/O that is not the network is let through, but waited for: the
// asynchronous functions of node:fs (the callback forms and fs.promises),
// zlib's one-shot functions (gzip, inflate, brotliCompress...) and crypto's
// key derivations (pbkdf2, scrypt, hkdf, generateKey, generateKeyPair),
// called while a simulated process runs, start their work on the host as
// Os.hostWork of that process: the kernel's clock stands still until it is
// done, and the result is handed back at the virtual time of the call, in
// the order the calls were made, so a seed replays whatever the host took.
// A callback then runs on the process's next tick (what it throws is that
// process's uncaught exception); a promise settles as the process's. They
// ran on the host unwaited: the kernel does not turn the host's event loop,
// so the callback came at some later virtual time the host decided, as the
// host, or never, and the request waiting for it was not answered.
//
// fs's streams are waited for through the fs functions they call; Node's
// module loader is not (byLoader). While a process's import is under way
// (Os.importModule, itself host work), its host I/O (a top-level
// `await readFile(...)`) runs straight on the host and the import waits
// for it: as host work of its own it would be handed back only after the
// import that waits for it.
//
// A host descriptor a process opened (fs.open, or fs.openSync for reading:
// fs.createReadStream opens one) is its own, as in a kernel: one it has not
// closed when it dies (a worker killed mid-stream, whose stream never reads
// or closes again) is closed for it, once the host I/O it had in flight is
// done (letGoHostFds). Each such death leaked one descriptor of the host
// process that runs the simulation.
//
// Host I/O that goes on after the call, in the host's time, is refused like
// the network, naming the caller: zlib's streams (createGzip... and the
// classes, Gzip...: compression middleware), fs's watchers (fs.watch,
// fs.watchFile, fs.promises.watch), and what hands out a FileHandle or a
// Dir (fs.promises.open, fs.opendir, fs.promises.opendir), whose methods
// would each be host work of their own, on an object the host may close.
//
// Writes to the host's files are refused the same way, naming the call and
// the caller: fs's calls that create, change or remove a file or directory
// (writeFile, appendFile, mkdir, rename, unlink, rm... in their callback,
// Sync and promise forms), an open for writing (fs.open, fs.openSync with a
// flag that writes, creates, truncates or appends), and fs.createWriteStream
// (and new fs.WriteStream). A file a run wrote outlasted it: the next run of
// the same seed read it and answered otherwise (--determinism reported
// drover nondeterministic), seeds run side by side read each other's, a
// replay read what the batch left, and the user's own files changed under
// them. Reads are let through, as above: templates and configs work. Calls
// on a descriptor (fs.write, fs.ftruncate...) are let through too: an app
// can only hold one opened for reading, or the host's stdio.
//
// Not covered: dns.Resolver instances, undici imported as a package, native
// addons (better-sqlite3 writes its database itself).
import type { Proc } from './processes.js';
import childProcess from 'node:child_process';
import * as childProcessNs from 'node:child_process';
import dgram from 'node:dgram';
import dns from 'node:dns';
import http from 'node:http';
import * as httpNs from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import workerThreads from 'node:worker_threads';
import fs from 'node:fs';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import * as workerThreadsNs from 'node:worker_threads';
import { assert } from '../os/assert.js';

type Fn = (...args: unknown[]) => unknown;
type Obj = Record<string, unknown>;

export const NOT_SIMULATED = 'ERR_DROVER_NOT_SIMULATED';

/** Drover's own tree (src/ or dist/): its frames are not the module to blame. */
const OWN = fileURLToPath(new URL('..', import.meta.url));
// blame's startsWith(OWN) must not take a sibling (src-old/) for drover's own.
assert(OWN.endsWith('/') || OWN.endsWith('\\'), 'net-guard: drover\'s tree is named as a directory');
/** node:child_process's entry points: each starts a process on the host, which no seed decides and nothing stops. */
const CHILD_CALLS = ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'];
const NETWORK = 'the network outside drover is not simulated';
const PROCESSES = 'processes on the host are not simulated (node:child_process)';
const THREADS = 'threads on the host are not simulated (node:worker_threads)';
const DNS_CALLS = ['lookup', 'lookupService', 'reverse', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt'];

/** zlib's one-shot functions: each has a Sync form, so it is known to end. */
const ZLIB_CALLS = ['deflate', 'deflateRaw', 'gzip', 'gunzip', 'inflate', 'inflateRaw', 'unzip', 'brotliCompress', 'brotliDecompress'];
/** crypto's work on the threadpool (its random functions are seeded instead: app-globals.ts). */
const CRYPTO_CALLS = ['pbkdf2', 'scrypt', 'hkdf', 'generateKey', 'generateKeyPair'];
/**
 * Host I/O whose work goes on after the call, ended by the host's time and
 * not by a result the kernel can hand back: refused.
 * zlib's streams (each write's work, its 'data' and 'end'): their factories and classes.
 */
const ZLIB_STREAMS = ['Deflate', 'Inflate', 'Gzip', 'Gunzip', 'DeflateRaw', 'InflateRaw', 'Unzip', 'BrotliCompress', 'BrotliDecompress'];
/** fs's watchers (events whenever the host sees a change) and what keeps a file or directory open across calls (a FileHandle's, a Dir's methods). */
const FS_REFUSED = [['watch', 'fs.watch', false, 'w'], ['watchFile', 'fs.watchFile', false, 'w'], ['opendir', 'fs.opendir', false, 'h']] as const;
const FS_PROMISES_REFUSED = [['watch', 'fs.promises.watch', false, 'w'], ['open', 'fs.promises.open', true, 'h'], ['opendir', 'fs.promises.opendir', true, 'h']] as const;
/** fs's calls that create, change or remove files and directories on the host: each in its callback, Sync and promise form (FS_WRITE). */
const FS_WRITES = ['writeFile', 'appendFile', 'copyFile', 'cp', 'rename', 'unlink', 'rm', 'rmdir', 'mkdir', 'mkdtemp', 'symlink', 'link', 'truncate', 'chmod', 'lchmod', 'chown', 'lchown', 'utimes', 'lutimes'];
/** open(2) flags that write, create, truncate or append. */
const WRITE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND;
const FS_WRITE = 'writes to files on the host are not simulated (a file a run writes outlasts it, so later runs and replays would read it, and your files would change; reading files is simulated)';
const ZLIB_TIME = "zlib's streams are not simulated (they work in the host's time; zlib.gzip and the other one-shot functions are simulated)";
const WATCH_TIME = "fs's watchers are not simulated (their events come in the host's time)";
const HANDLE_TIME = "fs's FileHandles and Dirs are not simulated (their methods work in the host's time; fs.promises.readFile, readdir and the others are simulated)";

/** The host's own close, taken before anything is wrapped: what letGoHostFds closes with. */
const hostCloseSync = fs.closeSync;

/**
 * The host descriptors a simulated process opened and has not closed, and
 * how many of its fs calls with a callback are still at work on the host.
 * Once the process is gone and none is, its descriptors are closed: not
 * before, or a read still at work would find its descriptor closed (or,
 * worse, reused by someone else's open).
 */
interface HostFds {
  readonly fds: Set<number>;
  inflight: number;
  gone: boolean;
}
/** By process (owner()): the descriptors it holds. */
const hostFds = new WeakMap<object, HostFds>();
/** The running process, as the key of its descriptors (app-globals.ts hands in its Proc). */
type Owner = () => object;
function noOwner(): object {
  assert(undo.length === 0, 'noOwner: the default only while nothing is guarded');
  assert(false, 'noOwner: asked only by a wrapper while a simulated process runs');
  return {};
}
let owner: Owner = noOwner;

type Work = (work: Promise<unknown>) => Promise<unknown>;
/** Os.hostWork of the process that runs now. */
let hostWork: Work | null = null;
/** The running process's list of host I/O its import under way waits for (SimOs.importModule); null: no import is under way. */
type Loading = () => Promise<unknown>[] | null;
/** No kernel runs: no import is under way. */
function noLoad(): null {
  assert(hostWork === null, 'noLoad: the default only while nothing is guarded');
  assert(undo.length === 0, 'noLoad: asked only by a wrapper kept from a run\'s time');
  return null;
}
let loading: Loading = noLoad;

/** No kernel runs: nothing is guarded (only a wrapper kept from a run's time may still ask). */
const notRunning = (): boolean => {
  assert(undo.length === 0, 'notRunning: the default only while nothing is guarded');
  return false;
};
let running: () => boolean = notRunning;
let undo: (() => void)[] = [];
/** Every wrapper made: none is ever wrapped again. */
const guards = new WeakSet<Fn>();

/**
 * Wrap every entry point; `simulated` says whether a simulated process runs
 * now, and `work` hands host I/O to the running process's Os.hostWork.
 */
export function guardNet(simulated: () => boolean, work: Work, loadIo: Loading, proc: Owner): void {
  // runStarted guards as the first run starts, and runEnded gives back as the last ends.
  assert(undo.length === 0, 'guardNet: once, as the first run starts');
  assert(running === notRunning, 'guardNet: nothing guarded, so no one is asked who runs');
  if (undo.length > 0) return;
  running = simulated;
  hostWork = work;
  loading = loadIo;
  owner = proc;
  const agents = new Set<unknown>([http.Agent.prototype.createConnection, https.Agent.prototype.createConnection]);
  const own = (args: unknown[]): boolean => {
    assert(running(), 'guardNet: a request is looked at only when a simulated process makes it');
    return bringsConnection(args, agents);
  };
  wrap(net as unknown as Obj, 'connect', 'net.connect');
  wrap(net as unknown as Obj, 'createConnection', 'net.createConnection');
  wrap(net.Socket.prototype as unknown as Obj, 'connect', 'net.Socket.connect');
  wrap(net.Server.prototype as unknown as Obj, 'listen', 'net.Server.listen'); // http, https and tls servers too
  wrap(tls as unknown as Obj, 'connect', 'tls.connect');
  for (const [mod, name] of [[http, 'http'], [https, 'https']] as const) {
    wrap(mod as unknown as Obj, 'request', `${name}.request`, own);
    wrap(mod as unknown as Obj, 'get', `${name}.get`, own);
  }
  for (const k of DNS_CALLS) {
    wrap(dns as unknown as Obj, k, `dns.${k}`);
    wrap(dns.promises as unknown as Obj, k, `dns.promises.${k}`, undefined, true);
  }
  wrap(dgram as unknown as Obj, 'createSocket', 'dgram.createSocket');
  wrap(globalThis as unknown as Obj, 'fetch', 'fetch', undefined, true);
  // A user app's spawn('sleep', ['1000']) left real processes behind after drover sim exited.
  for (const k of CHILD_CALLS) wrap(childProcess as unknown as Obj, k, `child_process.${k}`, undefined, false, PROCESSES);
  // Host I/O: waited for, as Os.hostWork of the process that started it.
  const fsObj = fs as unknown as Obj;
  const fsPromises = fs.promises as unknown as Obj;
  const zlibObj = zlib as unknown as Obj;
  // Refused first: what is refused is not waited for.
  for (const [k, what, rejects, why] of FS_REFUSED) wrap(fsObj, k, what, undefined, rejects, why === 'w' ? WATCH_TIME : HANDLE_TIME);
  for (const [k, what, rejects, why] of FS_PROMISES_REFUSED) wrap(fsPromises, k, what, undefined, rejects, why === 'w' ? WATCH_TIME : HANDLE_TIME);
  // Writes to the host's files: refused in every form; an open for reading is let through (and fs.open waited for, below).
  for (const k of FS_WRITES) {
    wrap(fsObj, k, `fs.${k}`, undefined, false, FS_WRITE);
    wrap(fsObj, `${k}Sync`, `fs.${k}Sync`, undefined, false, FS_WRITE);
    wrap(fsPromises, k, `fs.promises.${k}`, undefined, true, FS_WRITE);
  }
  // A descriptor opened for reading is the process's, closed for it if it dies first (letGoHostFds).
  wrap(fsObj, 'openSync', 'fs.openSync', readOnly, false, FS_WRITE, (fd) => {
    if (typeof fd === 'number') fdsOf(owner()).fds.add(fd);
  });
  // Never refused (allowed always): watched, for the descriptor it lets go of.
  wrap(fsObj, 'closeSync', 'fs.closeSync', () => true, false, FS_WRITE, (_, args) => {
    if (typeof args[0] === 'number') hostFds.get(owner())?.fds.delete(args[0]);
  });
  wrap(fsObj, 'createWriteStream', 'fs.createWriteStream', undefined, false, FS_WRITE);
  wrapClass(fsObj, 'WriteStream', 'fs.WriteStream', FS_WRITE);
  waitFor(fsObj, 'open', false, { what: 'fs.open', unless: readOnly });
  for (const k of ZLIB_STREAMS) {
    wrap(zlibObj, `create${k}`, `zlib.create${k}`, undefined, false, ZLIB_TIME);
    wrapClass(zlibObj, k, `zlib.${k}`, ZLIB_TIME);
  }
  for (const k of Object.keys(fsObj)) {
    if (!k.endsWith('Sync') && typeof fsObj[k] === 'function' && typeof fsObj[`${k}Sync`] === 'function' && !guards.has(fsObj[k] as Fn)) waitFor(fsObj, k, false);
  }
  for (const k of Object.keys(fsPromises)) if (typeof fsPromises[k] === 'function' && !guards.has(fsPromises[k] as Fn)) waitFor(fsPromises, k, true);
  for (const k of ZLIB_CALLS) waitFor(zlibObj, k, false);
  for (const k of CRYPTO_CALLS) waitFor(crypto as unknown as Obj, k, false);
  // A Worker a user's app started ran its thread on the host, in host time.
  wrapClass(workerThreads as unknown as Obj, 'Worker', 'worker_threads.Worker', THREADS);
  // So that `import { request } from 'node:http'` gets the wrapper too (and the original back).
  syncBuiltinESMExports();
  assert(undo.length > 0, 'guardNet: the entry points are wrapped');
  assert(httpNs.request === http.request, 'guardNet: the ESM exports are the wrappers too');
  assert(childProcessNs.spawn === childProcess.spawn, 'guardNet: the ESM exports of child_process are the wrappers too');
  assert(workerThreadsNs.Worker === workerThreads.Worker, 'guardNet: the ESM export of Worker is the wrapper too');
}

/** Every entry point is the original again. */
export function unguardNet(): void {
  assert(undo.length > 0, 'unguardNet: after guardNet, as the last run ends');
  assert(!running(), 'unguardNet: no simulated process runs once the last run ends');
  if (undo.length === 0) return;
  for (const f of undo) f();
  undo = [];
  running = notRunning;
  hostWork = null;
  loading = noLoad;
  owner = noOwner;
  syncBuiltinESMExports();
  assert(httpNs.request === http.request, 'unguardNet: the ESM exports are the originals again');
}

function wrap(
  obj: Obj, key: string, what: string, allowed?: (args: unknown[]) => boolean, rejects = false, kind = NETWORK,
  /** A call let through while a simulated process runs: what it returned, and its arguments. */
  seen?: (ret: unknown, args: unknown[]) => void,
): void {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  const orig = obj[key];
  if (desc === undefined || typeof orig !== 'function') return; // fetch under --no-experimental-fetch
  // Checked before the first write: a guard that could not be undone would outlive the runs.
  assert(desc.configurable === true, 'wrap: an entry point that can be put back');
  assert(!guards.has(orig as Fn), 'wrap: an entry point is wrapped once, around its original');
  const guarded = function (this: unknown, ...args: unknown[]): unknown {
    if (running() && (allowed === undefined || !allowed(args))) {
      assert(undo.length > 0, 'guarded: a call is refused only while the guards are in');
      const err = notSimulated(what, guarded, kind);
      if (rejects) return Promise.reject(err);
      throw err;
    }
    if (seen === undefined || !running()) return Reflect.apply(orig as Fn, this, args);
    const ret = Reflect.apply(orig as Fn, this, args);
    seen(ret, args);
    return ret;
  };
  // name, length and what Node hangs on it (dns.lookup's promisify rule), so that host code sees no difference.
  for (const k of Reflect.ownKeys(orig)) {
    if (k === promisify.custom && kind === PROCESSES) continue; // guarded below
    if (k !== 'prototype' && k !== 'arguments' && k !== 'caller') Object.defineProperty(guarded, k, Object.getOwnPropertyDescriptor(orig, k)!);
  }
  assert(guarded.name === (orig as Fn).name && guarded.length === (orig as Fn).length, 'wrap: the guard has the name and length of the original');
  // exec's and execFile's promisified forms call the original inside: guarded too, as a rejection.
  const custom = (orig as { [promisify.custom]?: unknown })[promisify.custom];
  if (kind === PROCESSES && typeof custom === 'function') {
    const promised = function (this: unknown, ...args: unknown[]): unknown {
      if (running()) {
        assert(undo.length > 0, 'promised: a call is refused only while the guards are in');
        return Promise.reject(notSimulated(`${what} (promisified)`, promised, kind));
      }
      return Reflect.apply(custom as Fn, this, args);
    };
    Object.defineProperty(guarded, promisify.custom, { value: promised, configurable: true });
  }
  Object.defineProperty(obj, key, { value: guarded, writable: true, configurable: true, enumerable: desc.enumerable ?? true });
  guards.add(guarded);
  undo.push(() => Object.defineProperty(obj, key, desc));
}

/**
 * Host I/O, obj[key]: called while a simulated process runs, its work is
 * that process's Os.hostWork. A callback form (`promised` false) is called
 * with a callback of ours, whose arguments go to the app's callback on the
 * process's next tick once the kernel hands them back; a promise form's
 * promise is handed to the kernel, and the process gets the kernel's. What
 * the original throws at the call (bad arguments) it still throws there.
 */
function waitFor(obj: Obj, key: string, promised: boolean, refuse?: { what: string; unless: (args: unknown[]) => boolean }): void {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  const orig = obj[key] as Fn;
  if (desc === undefined || typeof orig !== 'function' || desc.configurable !== true) return;
  assert(!guards.has(orig), 'waitFor: an entry point is wrapped once, around its original');
  assert(hostWork !== null, 'waitFor: while the guards go in, with the kernel\'s hostWork');
  const guarded = function (this: unknown, ...args: unknown[]): unknown {
    const work = hostWork;
    if (!running() || work === null || byLoader(guarded)) return Reflect.apply(orig, this, args);
    // fs.open for writing: refused at the call, as the writes are (FS_WRITE).
    if (refuse !== undefined && !refuse.unless(args)) throw notSimulated(refuse.what, guarded, FS_WRITE);
    // An import of this process is under way: its work is the import's (SimOs.importModule).
    const io = loading();
    if (promised) {
      const p = Reflect.apply(orig, this, args) as Promise<unknown>;
      if (io === null) return work(p);
      io.push(p);
      return p;
    }
    const cb = args[args.length - 1];
    // Not a callback: the original's own error (or its own promise-less form).
    if (typeof cb !== 'function') return Reflect.apply(orig, this, args);
    let done: ((r: unknown[]) => void) | null = null;
    const result = new Promise<unknown[]>((resolve) => (done = resolve));
    // fs's calls count as the process's host I/O at work, and its opens and closes keep its descriptors (HostFds).
    const mine = obj === (fs as unknown as Obj) ? fdsOf(owner()) : null;
    if (mine !== null && key === 'close' && typeof args[0] === 'number') mine.fds.delete(args[0]);
    const ret = Reflect.apply(orig, this, [...args.slice(0, -1), (...r: unknown[]) => {
      if (mine !== null) landed(mine, key === 'open' && r[0] == null && typeof r[1] === 'number' ? r[1] : -1);
      done!(r);
    }]);
    // fs calls back later, never at once: counted now, and only once the original took the call.
    if (mine !== null) mine.inflight++;
    if (io !== null) {
      // Done for the import once the callback ran: a tick queued after its tick.
      io.push(result.then((r) => new Promise<void>((resolve) => {
        assert(running(), 'waitFor: the result comes back to the process that asked');
        assert(Array.isArray(r), "waitFor: the host's callback arguments come back whole");
        process.nextTick(cb as Fn, ...r);
        process.nextTick(resolve);
      })));
      return ret;
    }
    // Handed back as the process's (the kernel's promise is made while it runs): its tick is its own.
    void work(result).then((r) => {
      assert(running(), 'waitFor: the result comes back to the process that asked');
      assert(Array.isArray(r), "waitFor: the host's callback arguments come back whole");
      process.nextTick(cb as Fn, ...(r as unknown[]));
    });
    return ret;
  };
  for (const k of Reflect.ownKeys(orig)) {
    if (k !== 'prototype' && k !== 'arguments' && k !== 'caller' && k !== promisify.custom) Object.defineProperty(guarded, k, Object.getOwnPropertyDescriptor(orig, k)!);
  }
  // fs.exists's promisified form: waited for too.
  const custom = (orig as { [promisify.custom]?: unknown })[promisify.custom];
  if (typeof custom === 'function') {
    const promisedForm = function (this: unknown, ...args: unknown[]): unknown {
      const work = hostWork;
      const p = Reflect.apply(custom as Fn, this, args) as Promise<unknown>;
      if (!running() || work === null) return p;
      const io = loading();
      if (io === null) return work(p);
      io.push(p);
      return p;
    };
    Object.defineProperty(guarded, promisify.custom, { value: promisedForm, configurable: true });
  }
  assert(guarded.name === orig.name && guarded.length === orig.length, 'waitFor: the wrapper has the name and length of the original');
  Object.defineProperty(obj, key, { value: guarded, writable: true, configurable: true, enumerable: desc.enumerable ?? true });
  guards.add(guarded);
  undo.push(() => Object.defineProperty(obj, key, desc));
}

/** The stack above `at`, `depth` frames deep, with Error.stackTraceLimit as it was. */
function stackOf(at: Fn, depth: number, who: string): string {
  const limit = Error.stackTraceLimit;
  const o: { stack?: string } = {};
  try {
    Error.stackTraceLimit = depth;
    Error.captureStackTrace(o, at);
  } finally {
    Error.stackTraceLimit = limit;
  }
  assert(typeof o.stack === 'string', `${who}: captureStackTrace gave the object a stack`);
  assert(Error.stackTraceLimit === limit, `${who}: the stack trace limit put back`);
  return o.stack ?? '';
}

/**
 * Whether Node's module loader called `at`: an import (Os.importModule) is
 * already host work, which the kernel waits for; the loader's reads inside it
 * must not wait for the kernel in turn (fs.promises.readFile in getSource:
 * every run hung at its first import).
 */
function byLoader(at: Fn): boolean {
  assert(running(), 'byLoader: asked only of a call a simulated process makes');
  const stack = stackOf(at, 1, 'byLoader');
  assert(stack.length > 0, 'byLoader: a stack to read');
  return /^\s*at (?:.*\()?node:internal\/modules\//m.test(stack);
}

/** A class (Worker): constructing it while a simulated process runs fails; subclasses and instanceof work as with the original. */
function wrapClass(obj: Obj, key: string, what: string, kind: string): void {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  const orig = obj[key] as (new (...args: unknown[]) => unknown) | undefined;
  if (desc === undefined || typeof orig !== 'function') return;
  assert(desc.configurable === true, 'wrapClass: an entry point that can be put back');
  assert(!guards.has(orig as unknown as Fn), 'wrapClass: an entry point is wrapped once, around its original');
  const guarded = function (this: unknown, ...args: unknown[]): unknown {
    if (running()) {
      assert(undo.length > 0, 'guarded: a call is refused only while the guards are in');
      throw notSimulated(what, guarded, kind);
    }
    // Called without new: the original's own TypeError.
    if (new.target === undefined) return Reflect.apply(orig as unknown as Fn, this, args);
    return Reflect.construct(orig, args, new.target === guarded ? orig : new.target);
  };
  for (const k of Reflect.ownKeys(orig)) {
    if (k !== 'arguments' && k !== 'caller' && k !== 'prototype') Object.defineProperty(guarded, k, Object.getOwnPropertyDescriptor(orig, k)!);
  }
  // One prototype: `x instanceof Worker` and `class extends Worker` work whichever of the two they name.
  guarded.prototype = orig.prototype;
  Object.setPrototypeOf(guarded, Object.getPrototypeOf(orig) as object);
  assert(guarded.name === orig.name && guarded.prototype === orig.prototype, 'wrapClass: the guard has the name and prototype of the original');
  Object.defineProperty(obj, key, { value: guarded, writable: true, configurable: true, enumerable: desc.enumerable ?? true });
  guards.add(guarded);
  undo.push(() => Object.defineProperty(obj, key, desc));
}

/** `o`'s descriptors, made on its first fs call. */
function fdsOf(o: object): HostFds {
  let h = hostFds.get(o);
  if (h === undefined) hostFds.set(o, (h = { fds: new Set(), inflight: 0, gone: false }));
  assert(h.inflight >= 0, 'fdsOf: calls at work are counted from 0');
  assert(hostFds.get(o) === h, 'fdsOf: one record a process');
  return h;
}

/** One of `h`'s fs calls called back on the host; `fd` >= 0: an open that gave it that descriptor. */
function landed(h: HostFds, fd: number): void {
  assert(h.inflight > 0, 'landed: a call counted as at work');
  h.inflight--;
  if (fd >= 0) h.fds.add(fd);
  if (h.gone && h.inflight === 0) closeAll(h);
  assert(!h.gone || h.inflight > 0 || h.fds.size === 0, 'landed: a gone process with nothing at work holds no descriptor');
}

function closeAll(h: HostFds): void {
  assert(h.gone && h.inflight === 0, 'closeAll: only a gone process\'s, with nothing at work');
  for (const fd of h.fds) {
    try {
      hostCloseSync(fd);
    } catch (e) {
      // Closed already behind our back: nothing to let go. Anything else is news.
      if ((e as { code?: unknown }).code !== 'EBADF') throw e;
    }
  }
  h.fds.clear();
  assert(h.fds.size === 0, 'closeAll: nothing left open');
}

/**
 * Process `o` is gone (it died, or the kernel that ran it is disposed): the
 * host descriptors it opened and did not close are closed for it, as a
 * kernel closes a dead process's, once its fs calls at work on the host
 * are done (landed). Each worker killed mid-stream (fs.createReadStream
 * piped to its answer) leaked one.
 */
export function letGoHostFds(o: object): void {
  const h = hostFds.get(o);
  if (h === undefined) return;
  assert(h.inflight >= 0, 'letGoHostFds: calls at work are counted from 0');
  h.gone = true;
  if (h.inflight === 0) closeAll(h);
  hostFds.delete(o);
  assert(hostFds.get(o) === undefined, 'letGoHostFds: the process holds no record any more (a late callback closes through its own)');
}

/**
 * fs.open's and fs.openSync's (path, flags, mode, cb): does it only read?
 * Flags it cannot read (an object, a string Node does not know) are let
 * through to Node's own error for them.
 */
function readOnly(args: unknown[]): boolean {
  assert(running(), 'readOnly: an open is looked at only when a simulated process makes it');
  const flags = args[1];
  assert(WRITE_FLAGS !== 0 && (WRITE_FLAGS & fs.constants.O_RDONLY) === 0, 'readOnly: the flags that write, none of them O_RDONLY');
  if (typeof flags === 'string') return !/[wa+]/.test(flags); // 'r', 'rs', 'sr'; 'r+', 'w', 'a', 'wx', 'as+'... write
  if (typeof flags === 'number') return (flags & WRITE_FLAGS) === 0;
  return true; // none given ('r'), the callback in its place, or Node's own error
}

/** http.request's (url, options, cb) or (options, cb): does the request bring its own connection? */
function bringsConnection(args: unknown[], stock: Set<unknown>): boolean {
  assert(stock.size > 0 && !stock.has(undefined), "bringsConnection: the stock Agents' createConnection are known");
  for (let i = 0; i < 2 && i < args.length; i++) {
    const o = args[i] as { createConnection?: unknown; agent?: unknown } | null;
    if (o === null || typeof o !== 'object' || o instanceof URL) continue;
    const a = o.agent as { createConnection?: unknown } | false | null | undefined;
    // With `agent: false` Node makes a stock Agent and does not use createConnection.
    if (typeof o.createConnection === 'function') return a !== false;
    if (a && typeof a === 'object' && typeof a.createConnection === 'function' && !stock.has(a.createConnection)) return true;
  }
  return false;
}

function notSimulated(what: string, at: Fn, kind = NETWORK): Error {
  assert(running(), 'notSimulated: only a simulated process is refused');
  const who = callerOf(at);
  assert(who !== '', 'notSimulated: the message names the caller');
  const err = new Error(
    `drover sim: ${kind}: ${who} called ${what}(); ` +
      'run this code outside the simulator, or give the app a stand-in for it when DROVER_SIM is set',
  ) as Error & { code: string };
  err.code = NOT_SIMULATED;
  Error.captureStackTrace(err, at);
  // The run's report lists what was refused: an app may turn the error into a plain 500, or swallow it.
  const p = owner() as Proc;
  p.os.hooks.notSimulated?.(p.pid, what, who);
  return err;
}

/** The module that called `at`. */
function callerOf(at: Fn): string {
  // The stack's text, not V8's call sites: a test runner or source-map support may own Error.prepareStackTrace.
  const stack = stackOf(at, 100, 'callerOf');
  return blame(stack);
}

/**
 * Of a stack's text, innermost first: the module to name. The first frame
 * outside Node's internals and drover's own tree (drover's code may sit
 * between the app and the call); failing that, the first outside Node's.
 */
export function blame(stack: string): string {
  let first: string | null = null;
  for (const line of stack.split('\n')) {
    // "    at f (/x/y.js:1:2)" or "    at /x/y.js:1:2"; skips "at new Promise (<anonymous>)", "at async Promise.all (index 0)".
    let file = /^\s*at (?:.*?\()?(.+?):\d+:\d+\)?$/.exec(line)?.[1];
    if (file === undefined || file.startsWith('node:')) continue;
    if (file.startsWith('file:')) file = fileURLToPath(file);
    if (!file.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(file)) continue; // eval and the like
    // A process's own instance of a module is named with a query (host-import.ts): not part of the file's name.
    if (!file.startsWith(OWN)) return moduleName(file.replace(/[?&]drover-sim=\d+$/, ''));
    first ??= file;
  }
  // Only a frame of drover's own tree is kept as the fallback.
  assert(first === null || first.startsWith(OWN), "blame: the fallback is a frame of drover's own");
  return first === null ? 'code with no file' : moduleName(first);
}

/** The simulator's stand-ins for Node's own (process, console, timers, the wrapped fs and net): their frames count as Node's. */
const SHIMS = ['app-globals', 'app-clock', 'net-guard'].map((n) => `${OWN}sim${OWN.endsWith('\\') ? '\\' : '/'}${n}.`);

/**
 * Whether `err` is drover's own: the innermost frame of its stack outside
 * Node's internals (and the simulator's stand-ins for them, which throw at
 * the app's call as Node's would) is in drover's tree. A TypeError of
 * drover's worker code is; one of the app's, a package's, or one with no
 * such frame (a thrown string, an error of libuv's) is not.
 */
export function droverOwn(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  let stack: unknown;
  try {
    stack = err.stack;
  } catch {
    return false; // a stack getter of the app's that throws: not drover's
  }
  if (typeof stack !== 'string') return false;
  assert(SHIMS.every((s) => s.startsWith(OWN)), "droverOwn: the stand-ins are in drover's tree");
  const f = innermost(stack);
  assert(f === null || f.file.length > 0, 'droverOwn: a frame names its file');
  return f !== null && f.file.startsWith(OWN);
}

/**
 * The innermost frame of `stack` in a file of its own: past Node's
 * internals, eval and the like, and the simulator's stand-ins for Node.
 */
function innermost(stack: string): { file: string; line: string } | null {
  assert(typeof stack === 'string', 'innermost: a stack to read');
  for (const text of stack.split('\n')) {
    const m = /^\s*at (?:.*?\()?(.+?):(\d+):\d+\)?$/.exec(text);
    let file = m?.[1];
    if (file === undefined || file.startsWith('node:')) continue;
    if (file.startsWith('file:')) {
      try {
        file = fileURLToPath(file);
      } catch {
        continue;
      }
    }
    if (!file.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(file)) continue; // eval and the like
    if (SHIMS.some((s) => file.startsWith(s))) continue;
    assert(m !== null && file.length > 0, 'innermost: a frame with a file and a line');
    return { file, line: m![2]! };
  }
  return null;
}

/**
 * Where the code of `stack` was, as callSite names it (`app.js:12`), and
 * whether that is drover's own: its innermost frame outside Node's internals
 * and the simulator's stand-ins. null: no such frame. For a stack the host
 * took of a job held by a loop (cli/sim-stall.ts).
 */
export function siteOf(stack: string): { readonly site: string; readonly own: boolean } | null {
  const f = innermost(stack);
  if (f === null) return null;
  assert(f.file.length > 0 && /^\d+$/.test(f.line), 'siteOf: a frame with a file and a line');
  const site = `${moduleName(f.file.replace(/[?&]drover-sim=\d+$/, ''))}:${f.line}`;
  assert(site.endsWith(`:${f.line}`), 'siteOf: the site names its line');
  return { site, own: f.file.startsWith(OWN) };
}

/**
 * Where code of the running process called `at` (process.exit): the
 * innermost frame outside Node's internals and the simulator's stand-ins,
 * as `file:line` (moduleName); null when that frame is drover's own (or
 * there is none): drover's own calls are not the app's to answer for.
 */
export function callSite(at: Fn): string | null {
  assert(running(), 'callSite: asked only of a call a simulated process makes');
  const stack = stackOf(at, 100, 'callSite');
  const f = innermost(stack);
  if (f === null) return null;
  // A process's own instance of a module is named with a query (host-import.ts): not part of the file's name.
  return f.file.startsWith(OWN) ? null : `${moduleName(f.file.replace(/\?drover-sim=\d+$/, ''))}:${f.line}`;
}

/**
 * A caller's file, readably: a package's file as `pg (node_modules/pg/lib/client.js)`
 * (the innermost node_modules: the package that made the call), anything else
 * relative to the host's working directory, or absolute when outside it.
 */
export function moduleName(file: string): string {
  // blame hands over absolute paths only (a file: URL made one).
  assert(file.startsWith('/') || /^[A-Za-z]:[\\/]/.test(file), 'moduleName: an absolute path');
  const f = file.replaceAll('\\', '/');
  const i = f.lastIndexOf('/node_modules/');
  if (i >= 0) {
    const rest = f.slice(i + '/node_modules/'.length);
    const parts = rest.split('/');
    const pkg = parts[0]!.startsWith('@') && parts.length > 1 ? `${parts[0]}/${parts[1]}` : parts[0]!;
    assert(pkg !== '', 'moduleName: a file under node_modules is in a package');
    return `${pkg} (node_modules/${rest})`;
  }
  const cwd = process.cwd().replaceAll('\\', '/') + '/';
  const name = f.startsWith(cwd) ? f.slice(cwd.length) : f;
  assert(name !== '', 'moduleName: a file has a name');
  return name;
}
