// The two implementations of the OS interface, behind one harness: a world
// runs a root program to its end and returns its exit status and output.
// Every conformance case runs once in each world.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeOs } from '../../src/os/node/index.js';
import type { Exited, Os, ProgramRegistry } from '../../src/os/types.js';
import { Kernel } from '../../src/sim/index.js';
import { afterAll, beforeAll, describe } from 'vitest';
import { registry } from './programs.js';

export interface RunResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout's JSON lines. */
  readonly records: any[];
  /** Processes still running after the root exited and the world settled. */
  readonly leftovers: string[];
}

export interface World {
  readonly name: 'node' | 'sim';
  /** A fresh empty directory in this world's file system. */
  tmp(): string;
  run(program: string, args?: readonly string[], opts?: { timeout?: number }): Promise<RunResult>;
  dispose(): void;
}

function parse(stdout: string): any[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

// ---------------------------------------------------------------- real OS

/** Live members of a process group, from /proc (zombies are dead). */
function groupMembers(pgid: number): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') found.push(`${name} ${stat.slice(stat.indexOf('('), stat.lastIndexOf(')') + 1)}`);
    } catch {
      // gone
    }
  }
  return found;
}

export function nodeWorld(extra: readonly ProgramRegistry[] = []): World {
  const os: Os = createNodeOs({ programs: [registry, ...extra] });
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'drover-c-'));
    dirs.push(d);
    return d;
  };
  return {
    name: 'node',
    tmp,
    async run(program, args = [], { timeout = 20_000 } = {}) {
      const dir = tmp();
      const out = join(dir, 'stdout');
      const err = join(dir, 'stderr');
      const { pid } = os.spawn({ program, args, channel: false, newGroup: true, stdout: { file: out }, stderr: { file: err } });
      let exited: Exited | null = null;
      const deadline = os.now() + timeout;
      while ((exited = os.waitpid(pid)) === null && os.now() < deadline) await os.sleep(10);
      // Give descendants that outlive the root a moment to finish, then look for strays.
      if (exited) await os.sleep(50);
      const leftovers = groupMembers(pid);
      try {
        os.kill(-pid, 'SIGKILL');
      } catch {
        // the group is empty
      }
      const stdout = readFileSync(out, 'utf8');
      const stderr = readFileSync(err, 'utf8');
      if (!exited) throw new Error(`${program} did not exit within ${timeout} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      return { code: exited.code, signal: exited.signal, stdout, stderr, records: parse(stdout), leftovers };
    },
    dispose() {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

// -------------------------------------------------------------- simulated

export function simWorld(seed = 1, extra: readonly ProgramRegistry[] = []): World {
  let n = 0;
  const dirs: string[] = [];
  return {
    name: 'sim',
    tmp() {
      // Directories are made in the next run's kernel: each run gets a fresh machine.
      const d = `/tmp/drover-c-${++n}`;
      dirs.push(d);
      return d;
    },
    async run(program, args = [], { timeout = 20_000 } = {}) {
      const k = new Kernel({ seed: seed + n, programs: [registry, ...extra] });
      for (const d of dirs.splice(0)) k.fs.mkdir(d, { recursive: true });
      const pid = k.spawn({ program, args, channel: false, newGroup: true });
      await k.run({ stopWhen: () => k.exitStatus(pid) !== undefined, until: timeout });
      const exited = k.exitStatus(pid);
      await k.run({ until: k.now() + 50 });
      const leftovers = k.processes().filter((p) => p.pid !== 1 && p.state !== 'zombie').map((p) => `${p.pid} ${p.program}`);
      const { stdout, stderr } = k.output;
      if (!exited) throw new Error(`${program} did not exit within ${timeout} ms of simulated time\nstdout:\n${stdout}\nstderr:\n${stderr}\ntrace:\n${k.trace().slice(-40).join('\n')}`);
      return { code: exited.code, signal: exited.signal, stdout, stderr, records: parse(stdout), leftovers };
    },
    dispose() {},
  };
}

const WORLDS = { node: nodeWorld, sim: (extra: readonly ProgramRegistry[]) => simWorld(1, extra) };

/**
 * Declares the same cases once per world. `world()` is valid inside tests;
 * each case name is prefixed with the world, so the report shows both runs.
 * `registries` adds programs beside the suite's own (programs.ts).
 */
export function conformance(title: string, cases: (world: () => World) => void, registries: readonly ProgramRegistry[] = []): void {
  for (const [name, make] of Object.entries(WORLDS)) {
    describe(`${title} [${name}]`, () => {
      let w: World | undefined;
      beforeAll(() => {
        w = make(registries);
      });
      afterAll(() => w?.dispose());
      cases(() => w!);
    });
  }
}
