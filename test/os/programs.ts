// Programs the Node adapter's own tests start as real processes.
import { readdirSync, readlinkSync } from 'node:fs';
import * as net from 'node:net';
import { programs, type Listener, type Os, type Signal } from '../../src/os/types.js';
import { inbox } from '../support/os.js';

function stayAlive(os: Os): void {
  os.timer(1e9, () => {});
}

function send(os: Os, m: unknown): void {
  os.channel!.send(m);
}

export const registry = programs(import.meta.url, {
  /** Exits with args[0] after args[1] ms. */
  'exit-with': async (os, args) => {
    await os.sleep(Number(args[1] ?? 0));
    os.exit(Number(args[0]));
  },

  /** Runs until killed, having said so. */
  idle: (os) => {
    send(os, { pid: os.pid, ppid: os.ppid() });
    stayAlive(os);
  },

  /** Accepts on listeners[0], answering each connection with its pid. */
  'accept-reply': (os) => {
    os.listeners[0]!.accept((s) => s.end(String(os.pid)));
    send(os, { ready: os.pid, address: os.listeners[0]!.address });
  },

  /**
   * Accepts on listeners[0], answering with its pid. Words from the parent:
   * pause, resume, fill (open descriptors until none is left), unfill,
   * strays (what reached the channel that was not a word). Each is acked;
   * onError's codes are sent as they come. With args[0] a file, when the
   * parent goes it resumes and writes what came of it there.
   */
  pausable: (os, args) => {
    const l = os.listeners[0]!;
    const strays: unknown[] = [];
    const filled: number[] = [];
    l.accept((s) => s.end(String(os.pid)), (e) => {
      if (os.channel!.connected) send(os, { error: e.code });
      else if (args[0]) {
        os.fs.appendFile(args[0], `${e.code}\n`);
        os.exit(0);
      }
    });
    os.channel!.onMessage((m) => {
      if (m === 'pause') l.pause();
      else if (m === 'resume') l.resume();
      else if (m === 'resume-later') os.timer(300, () => l.resume());
      else if (m === 'fill') {
        try {
          for (;;) filled.push(os.fs.open('/dev/null', 'r'));
        } catch (e) {
          send(os, { did: m, filled: filled.length, code: (e as { code?: string }).code });
          return;
        }
      } else if (m === 'unfill') for (const fd of filled.splice(0)) os.fs.close(fd);
      else if (m === 'strays') {
        send(os, { did: m, strays });
        return;
      } else strays.push(m);
      send(os, { did: m });
    });
    if (args[0]) {
      os.channel!.onDisconnect(() => {
        l.resume();
        os.timer(5000, () => {
          os.fs.appendFile(args[0]!, 'no error\n');
          os.exit(0);
        });
      });
    }
    send(os, { ready: os.pid });
  },

  /**
   * Listens, hands the socket to a pausable child (args[0]: its file),
   * pauses it, reports, and waits to be killed. With args[1] 'asking' it
   * has the child resume a moment later and holds its own loop meanwhile,
   * so that the child's request for a copy is never answered.
   */
  'pause-middle': async (os, args) => {
    const l = await os.listen({ host: '127.0.0.1', port: 0 });
    const c = os.spawn({ program: 'pausable', args: [args[0]!], listeners: [l] });
    const next = inbox(os, c.channel!);
    await next();
    c.channel!.send('pause');
    await next();
    if (args[1] === 'asking') {
      c.channel!.send('resume-later');
      await next();
    }
    send(os, { child: c.pid });
    if (args[1] === 'asking') {
      await os.sleep(20);
      os.burn(60_000); // killed during it, the child's request unanswered
    }
    stayAlive(os);
  },

  /** Holds listeners[0] without accepting, then closes it on request. */
  'hold-listener': (os) => {
    send(os, 'ready');
    os.channel!.onMessage(() => {
      os.listeners[0]!.close();
      send(os, 'closed');
      os.channel!.close();
    });
  },

  /** Starts args as a command with the given parent-death signal ('none' for none). */
  'start-command': (os, args) => {
    const [sig, ...command] = args as [string, ...string[]];
    const c = os.spawn({ command, ...(sig === 'none' ? {} : { parentDeathSignal: sig as Signal }) });
    send(os, { grandchild: c.pid });
    stayAlive(os);
  },

  /** Starts a command with a parent-death KILL, notes its pid in args[0], and dies at once: the race setpriv alone loses. */
  'start-command-and-die': (os, args) => {
    const c = os.spawn({ command: ['sleep', '60'], parentDeathSignal: 'SIGKILL' }); // (drover's sh guard also covers a death before setpriv's prctl)
    os.fs.writeFile(args[0]!, String(c.pid));
    os.kill(os.pid, 'SIGKILL'); // at once: usually before setpriv has even run
  },

  /** Reports the fds a command it starts can see (listeners must not leak). */
  'command-fds': async (os) => {
    const c = os.spawn({ command: ['sleep', '5'] });
    await os.sleep(100);
    const fds = readdirSync(`/proc/${c.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${c.pid}/fd/${fd}`);
      } catch {
        return 'gone';
      }
    });
    os.kill(c.pid, 'SIGKILL');
    send(os, { fds, listener: readlinkSync('/proc/self/fd/3'), channel: readlinkSync('/proc/self/fd/4') });
  },

  /** Echoes every message back; never installs a handler when args[0] is 'deaf'. */
  echo: async (os, args) => {
    if (args[0] === 'deaf') return;
    // Installed late on purpose: what the parent sent meanwhile must not be lost.
    await os.sleep(Number(args[1] ?? 0));
    os.channel!.onMessage((m) => {
      if (m === 'bye') os.channel!.close();
      else os.channel!.send(m);
    });
  },

  /** What a drover child sees of its environment. */
  'report-env': (os) => {
    send(os, { env: os.env, args: os.args, channel: os.channel !== null, listeners: os.listeners.length });
  },

  /** Arms a parent-death signal and records it in a file. */
  'death-watch': async (os, args) => {
    const [file, sig] = args as [string, Signal];
    os.onSignal(sig, () => {
      os.fs.appendFile(file, `${sig} ppid=${os.ppid()}\n`);
      os.exit(0);
    });
    os.setParentDeathSignal(sig);
    if (os.channel) send(os, { ready: os.pid });
    stayAlive(os);
  },

  /** Spawns death-watch (with or without a channel), reports its pid, then closes that channel if asked. */
  'death-parent': async (os, args) => {
    const [file, channel, closeIt] = args as [string, string, string];
    const c = os.spawn({ program: 'death-watch', args: [file, 'SIGTERM'], channel: channel === 'channel' });
    if (c.channel) {
      await new Promise<void>((resolve) => c.channel!.onMessage(() => resolve()));
      if (closeIt === 'close') c.channel.close();
    } else {
      await os.sleep(600);
    }
    send(os, { child: c.pid });
    stayAlive(os);
  },

  /** USR1 with no handler, then with a handler, then reset. */
  usr1: (os) => {
    let got = 0;
    os.channel!.onMessage((m) => {
      if (m === 'handle') os.onSignal('SIGUSR1', () => got++);
      if (m === 'reset') os.onSignal('SIGUSR1', null);
      if (m === 'count') send(os, { got });
      else send(os, 'ok');
    });
    send(os, 'ready');
  },

  /** Listens on a Unix path and dies before it can close it. */
  'listen-and-die': async (os, args) => {
    await os.listen({ path: args[0]! });
    os.kill(os.pid, 'SIGKILL');
  },

  /**
   * Makes a Unix socket at args[0] where no helper process can start (node's
   * path broken), and reports `listening` or the error. Then, by word from
   * the parent (or at once, without a channel): accept (answering with its
   * pid), pause, resume; each is acked.
   */
  'listen-own': async (os, args) => {
    process.execPath = '/nonexistent/node';
    let l: Listener;
    try {
      l = await os.listen({ path: args[0]! });
    } catch (e) {
      if (os.channel) send(os, { error: (e as Error).message });
      else os.fs.writeFile(args[1]!, (e as Error).message);
      return;
    }
    if (!os.channel) return os.fs.writeFile(args[1]!, 'listening');
    os.channel.onMessage((m) => {
      if (m === 'accept') l.accept((s) => s.end(String(os.pid)), (e) => send(os, { error: e.message }));
      else if (m === 'pause') l.pause();
      else if (m === 'resume') l.resume();
      send(os, { did: m });
    });
    send(os, 'listening');
  },

  /**
   * Plays a child that abuses its parent's echo of sockets (handoff.ts):
   * binds a TCP socket, asks for args[0] copies of it back, and reports what
   * came within half a second: copies (closed at once) and errors.
   */
  'echo-abuse': async (os, args) => {
    const h = (net as unknown as { _createServerHandle(a: string, p: number, t: number): { close(): void } })._createServerHandle('127.0.0.1', 0, 4);
    let copies = 0;
    const errors: string[] = [];
    process.on('internalMessage', (m: { cmd?: string; id?: number; ok?: boolean; error?: string }, handle?: { close(): void }) => {
      if (m?.cmd !== 'NODE_DROVER_LISTENER_GIVE' || m.id !== 7) return;
      if (handle) {
        copies++;
        handle.close();
      }
      if (!m.ok) errors.push(m.error ?? '');
    });
    process.send!({ cmd: 'NODE_DROVER_LISTENER_ECHO', id: 7, n: Number(args[0]) }, h as never);
    await os.sleep(500);
    h.close();
    send(os, { copies, errors });
  },

  throws: () => {
    throw new Error('thrown on purpose');
  },

  /** Never settles and holds nothing: the process must end with 0, not Node's 13. */
  'never-settles': () => new Promise<void>(() => {}),
});
