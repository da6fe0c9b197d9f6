// Loaded into every process of a bench/http target through NODE_OPTIONS
// (--import), which is how a profile reaches the workers a server spawns
// (Node refuses --cpu-prof in NODE_OPTIONS). It samples this process's CPU
// from its start until the wall-clock instant BENCH_PROFILE_UNTIL, then
// writes the profile with the process's title (the analysis, profile.ts,
// tells a worker from its arbiter or primary by it) and the wall-clock time
// of the profile's start, so that the analysis can keep only the samples of
// the measured load's window. A file named `stop` in BENCH_PROFILE_DIR ends
// the profile sooner: profile.ts writes it once the window is over, so that
// nobody waits out a budget sized for a slow boot.
import { existsSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.BENCH_PROFILE_DIR;
const until = Number(process.env.BENCH_PROFILE_UNTIL);
const wall = () => performance.timeOrigin + performance.now();

if (dir && until > wall()) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 250 });
  const startWall = wall();
  session.post('Profiler.start');
  const end = () => {
    clearTimeout(timer);
    clearInterval(poll);
    // A same-thread session answers synchronously.
    session.post('Profiler.stop', (err, r) => {
      if (!err) writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ title: process.title, pid: process.pid, startWall, profile: r.profile }));
    });
    session.disconnect();
  };
  const timer = setTimeout(end, until - wall()).unref();
  const poll = setInterval(() => existsSync(join(dir, 'stop')) && end(), 200).unref();
}
