// What the arbiter and its workers say to each other over the channel.
import type { Level } from './log.js';

/** Everything a worker needs, fixed at spawn: a HUP starts new workers with a new spec. */
export interface WorkerSpec {
  readonly app: string; // absolute path of the app module
  readonly generation: number;
  readonly keepAlive: number; // ms
  readonly gracefulTimeout: number; // ms
  readonly heartbeat: number; // ms between heartbeats
  readonly maxRequests: number; // 0 = never recycle; jitter already applied
  readonly accessLog: string | null;
  readonly errorLog: string;
  readonly logLevel: Level;
}

/** gunicorn's exit codes for a worker that could not start. */
export const EXIT_APP_LOAD = 4;
export const EXIT_BOOT = 3;

export type ToArbiter =
  | { t: 'booted' }
  | { t: 'hb'; inflight: number; served: number; busy: number } // busy: os.loopBusy()
  | { t: 'boot-error'; code: number; message: string }
  | { t: 'retiring'; served: number };

export type ToWorker = { t: 'drain' };
