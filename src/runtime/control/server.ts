// The control socket's server side. Each connection is a queue: lines are
// decoded as they arrive, handled one at a time in order, and each gets
// exactly one reply line. Nothing a client sends or fails to send, and
// nothing the handler throws, reaches past its own connection.

import { dirname } from 'node:path';
import { OsError, type Os, type Stream } from '../../os/types.js';
import { checkReply, decodeFrame, encodeReply, LineDecoder, MAX_LINE, quote, type Frame, type Reply, type Request } from './protocol.js';

export type Handler = (req: Request) => Promise<Reply>;

/** The part of a Logger the server uses. */
export interface ControlLog {
  debug(message: string): void;
  warning(message: string): void;
  error(message: string): void;
}

export interface ControlServer {
  readonly path: string;
  /** Stop accepting, unlink the socket, drop open connections. Handlers already running finish; their replies go nowhere. */
  close(): void;
}

export interface ServeOptions {
  /** Longest request line in bytes (default MAX_LINE). */
  readonly maxLine?: number;
}

/**
 * Decoded lines a connection may have waiting before it stops reading: a
 * client that pipelines without reading replies then waits on its own
 * socket buffer instead of growing the arbiter's memory.
 */
const MAX_QUEUED = 32;

export async function serveControl(os: Os, path: string, handler: Handler, log: ControlLog, opts: ServeOptions = {}): Promise<ControlServer> {
  const limit = opts.maxLine ?? MAX_LINE;
  // The default path lives in a runtime dir that may not exist yet. Created
  // 0700: the socket's own 0600 is the guard, this keeps its name private too.
  const dir = dirname(path);
  if (!os.fs.exists(dir)) os.fs.mkdir(dir, { recursive: true, mode: 0o700 });
  let listener;
  try {
    listener = await os.listen({ path }, { mode: 0o600 });
  } catch (e) {
    // The Os's message speaks of --bind; this socket is set by control_socket.
    if (e instanceof OsError && e.code === 'EADDRINUSE') {
      throw new OsError('EADDRINUSE', `control socket ${path} is in use by a running drover (drover ctl --socket ${path} status talks to it); ` +
        'stop that one, or give this one another control_socket');
    }
    throw e;
  }
  const open = new Set<Stream>();
  let closed = false;
  listener.accept((s) => {
    if (closed) {
      s.destroy();
      return;
    }
    open.add(s);
    s.once('close', () => open.delete(s));
    connection(s, handler, log, limit);
  });
  return {
    path,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}

function connection(s: Stream, handler: Handler, log: ControlLog, limit: number): void {
  const decoder = new LineDecoder(limit);
  const queue: Frame[] = [];
  let busy = false;
  // The peer can no longer read replies: it half-closed (the Os's streams do
  // not allow half-open, so ours is ended for us), reset, or went away.
  let gone = false;
  const done = (): void => {
    if (!gone && decoder.pending > 0) log.debug(`control: a client left in the middle of a line (${decoder.pending} bytes dropped)`);
    gone = true;
  };

  s.on('data', (chunk: Uint8Array) => {
    for (const f of decoder.push(chunk)) queue.push(f);
    if (queue.length >= MAX_QUEUED) s.pause();
    if (!busy) void pump();
  });
  s.on('end', done);
  s.on('close', done);
  // ECONNRESET and EPIPE are what clients that hang up look like; never fatal.
  s.on('error', (e) => {
    log.debug(`control: connection error: ${e.message}`);
    done();
  });

  const pump = async (): Promise<void> => {
    busy = true;
    try {
      while (queue.length > 0) {
        const frame = queue.shift()!;
        if (queue.length < MAX_QUEUED / 2 && s.isPaused() && !gone) s.resume();
        // A complete line is a command given: it runs even if its sender has
        // gone by the time its turn comes (a `stop` piped in and hung up on).
        const line = await answer(frame, handler, log, limit);
        if (gone || s.destroyed || s.writableEnded) continue;
        if (!s.write(line)) await drained(s);
      }
    } catch (e) {
      // Only a bug in this file gets here; it costs the connection, not the server.
      log.error(`control: connection dropped after an internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      s.destroy();
    } finally {
      busy = false;
    }
  };
}

function drained(s: Stream): Promise<void> {
  return new Promise((resolve) => {
    const finish = (): void => {
      s.off('drain', finish);
      s.off('close', finish);
      resolve();
    };
    s.on('drain', finish);
    s.on('close', finish);
  });
}

/** The reply line for one frame. Never throws. */
async function answer(frame: Frame, handler: Handler, log: ControlLog, limit: number): Promise<string> {
  const d = decodeFrame(frame, limit);
  if (!d.ok) {
    log.debug(`control: refused a request: ${d.error}`);
    return encodeReply({ ok: false, error: d.error }, d.id);
  }
  let reply: Reply | null;
  try {
    reply = checkReply(await handler(d.req));
    if (reply === null) throw new Error('the handler returned no {ok, ...} reply');
    return encodeReply(reply, d.id);
  } catch (e) {
    const why = e instanceof Error ? e.message : quote(e);
    log.error(`control: ${d.req.cmd} failed: ${e instanceof Error ? e.stack ?? e.message : quote(e)}`);
    return encodeReply({ ok: false, error: `${d.req.cmd} failed inside drover: ${why}; drover's error log has the details` }, d.id);
  }
}
