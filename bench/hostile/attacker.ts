// The attacker process of bench/hostile: runs attack.ts's clients against one
// server, apart from the benchmark's own event loop (the fast load). Started
// by procs.ts's startAttacker with an IPC channel; exits when the channel
// goes (the benchmark ended, or died).
//
//   parent -> child: { t: 'start', spec }      open every connection, keep them open
//                    { t: 'stats', mark }       answer with the counts; `mark`:
//                                               start a new window for the loop figures
//                    { t: 'stop' }              reset every connection; answer once closed
//   child -> parent: { t: 'ready' } once, then one answer per request, of the same t
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Attack, type AttackSpec, type AttackStats } from './attack.js';

export type ToAttacker = { t: 'start'; spec: AttackSpec } | { t: 'stats'; mark: boolean } | { t: 'stop' };

export interface LoopFigures {
  /** event loop utilization over the window, 0..1 (1: never idle: saturated) */
  readonly elu: number;
  /** event loop delay over the window, ms (how late its timers ran) */
  readonly delayP99Ms: number;
  readonly delayMaxMs: number;
  /** the window, ms */
  readonly windowMs: number;
}

export type FromAttacker =
  | { t: 'ready' }
  | { t: 'start' }
  | { t: 'stats'; stats: AttackStats; loop: LoopFigures }
  | { t: 'stop' };

const send = (m: FromAttacker) => process.send!(m);
process.on('disconnect', () => process.exit(0));

let attack: Attack | null = null;
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
let elu0 = performance.eventLoopUtilization();
let t0 = performance.now();

process.on('message', (m: ToAttacker) => {
  switch (m.t) {
    case 'start':
      attack = new Attack(m.spec);
      attack.start();
      send({ t: 'start' });
      break;
    case 'stats': {
      const elu = performance.eventLoopUtilization(elu0);
      const loop: LoopFigures = {
        elu: elu.utilization,
        delayP99Ms: delay.percentile(99) / 1e6,
        delayMaxMs: delay.max / 1e6,
        windowMs: performance.now() - t0,
      };
      if (m.mark) {
        elu0 = performance.eventLoopUtilization();
        t0 = performance.now();
        delay.reset();
      }
      send({ t: 'stats', stats: attack!.stats(), loop });
      break;
    }
    case 'stop':
      void attack!.stop().then(() => send({ t: 'stop' }));
      break;
  }
});
send({ t: 'ready' });
