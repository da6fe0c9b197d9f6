// Run as a command by test/os/sockets.test.ts the way systemd starts a
// socket-activated service: LISTEN_PID/LISTEN_FDS name fd 3. It has no drover
// parent, so its listener's copies come through the helper, and the copies
// its child asks for come from the inherited descriptor, wrapped unpolled.
// Prints one JSON line.
import { createNodeOs } from '../../src/os/node/index.js';
import type { Addr, Os, Stream } from '../../src/os/types.js';
import { inbox, readAll, reap } from '../support/os.js';
import { registry } from './programs.js';

const os: Os = createNodeOs({ programs: [registry] });
const l = os.listeners[0]!;
const out: Record<string, unknown> = { listeners: os.listeners.length };

function waiting(addr: Addr): Promise<{ answered: () => boolean; reply: Promise<string> }> {
  return os.connect(addr).then((s: Stream) => {
    let done = false;
    const reply = readAll(s).then((r) => ((done = true), r));
    return { answered: () => done, reply };
  });
}

const c = os.spawn({ program: 'pausable', listeners: [l] });
const next = inbox(os, c.channel!);
await next();
const say = async (w: string) => {
  c.channel!.send(w);
  return next();
};

// The child pauses and resumes: its copy comes from this process.
await say('pause');
let w = await waiting(l.address);
await os.sleep(200);
out.childPausedWaited = !w.answered();
await say('resume');
out.childResumed = (await w.reply) === String(c.pid);

// This process accepts too, pauses and resumes.
const errors: string[] = [];
l.accept((s) => s.end('systemd'), (e) => errors.push(e.message));
await say('pause');
out.ownServed = await readAll(await os.connect(l.address));
l.pause();
w = await waiting(l.address);
await os.sleep(200);
out.ownPausedWaited = !w.answered();
l.resume();
out.ownResumed = await w.reply;
out.errors = errors;

os.kill(c.pid, 'SIGKILL');
await reap(os, c.pid);
l.close();
os.stdout.write(JSON.stringify(out) + '\n');
os.exit(0);
