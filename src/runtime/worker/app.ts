// The app contract: the module's default export is a Node request listener
// `(req, res)` — what Express, Koa's callback() and Hono's node adapter give —
// or a factory (sync or async) that returns one. A factory is handed an
// AppContext: time and CPU as drover's OS layer sees them, which in the
// simulator are virtual — so a simulated app can wait and burn CPU
// deterministically. Apps on the real OS rarely need it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EXIT_APP_LOAD, EXIT_BOOT } from '../protocol.js';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface AppContext {
  /** The worker's pid (process.pid is the host's in the simulator). */
  readonly pid: number;
  /** Monotonic milliseconds. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Hold this worker's event loop for ms of CPU time, like a CPU-heavy handler. */
  burn(ms: number): void;
}

export class BootError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** `load` is Os.importModule. */
export async function loadApp(path: string, ctx: AppContext, load: (path: string) => Promise<Record<string, unknown>>): Promise<RequestListener> {
  let mod: Record<string, unknown>;
  try {
    mod = await load(path);
  } catch (e) {
    throw new BootError(EXIT_APP_LOAD, `cannot load app ${path}: ${describe(e)}`);
  }
  let exported = mod.default;
  // A CommonJS module that set exports.default arrives wrapped once more.
  if (exported && typeof exported === 'object' && typeof (exported as { default?: unknown }).default === 'function') {
    exported = (exported as { default: unknown }).default;
  }
  if (typeof exported !== 'function') {
    throw new BootError(EXIT_APP_LOAD, `app ${path} has no default export function; export a request listener (req, res) => ... or a factory returning one`);
  }
  const fn = exported as (...a: unknown[]) => unknown;
  if (fn.length >= 2) return fn as RequestListener;
  let made: unknown;
  try {
    made = await fn(ctx);
  } catch (e) {
    throw new BootError(EXIT_BOOT, `app ${path}: its factory failed: ${describe(e)}`);
  }
  if (typeof made !== 'function') {
    throw new BootError(EXIT_BOOT, `app ${path}: its default export was called as a factory (it does not take (req, res)) and returned ${made === null ? 'null' : typeof made}, not a request listener`);
  }
  return made as RequestListener;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.stack ?? e.message;
  return String(e);
}
