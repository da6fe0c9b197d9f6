// The control socket's server side. Each connection is a queue: lines are
// decoded as they arrive, handled one at a time in order, and each gets
// exactly one reply line. Nothing a client sends or fails to send, and
// nothing the handler throws, reaches past its own connection.

import { OsError, type Os, type Stream, type Timer } from '../../os/types.js';
import { crashOnAssertion, rethrowAssertion } from '../assert.js';
import { prepareControlPath } from './guard.js';
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
  /** Longest request line in bytes (default MAX_LINE). A longer one is answered with an error and its connection closed. */
  readonly maxLine?: number;
  /** Connections open at once (default MAX_CONNECTIONS); one more is answered with an error and closed. */
  readonly maxConnections?: number;
  /** How long a connection may make no progress (default IDLE_MS), see connection(). */
  readonly idleMs?: number;
}

/**
 * Decoded lines a connection may have waiting before it stops reading: a
 * client that pipelines without reading replies then waits on its own
 * socket buffer instead of growing the arbiter's memory.
 */
const MAX_QUEUED = 32;
/** Control connections open at once: drover ctl needs one per command; more is someone holding them. */
export const MAX_CONNECTIONS = 64;
/** A connection that sends no whole request line, and takes none of its replies, for this long is closed. */
export const IDLE_MS = 30_000;
/**
 * After the last reply to a connection that is being closed (too many
 * connections, a line too long), what it still sends is read and dropped
 * for this long before the socket is destroyed: closing with unread input
 * would reset the connection and could take the reply with it.
 */
const LINGER_MS = 1000;

export async function serveControl(os: Os, path: string, handler: Handler, log: ControlLog, opts: ServeOptions = {}): Promise<ControlServer> {
  const limits: Limits = { line: opts.maxLine ?? MAX_LINE, idleMs: opts.idleMs ?? IDLE_MS };
  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  // Where the socket goes is checked first: drover's private runtime
  // directory for the default path (made 0700 if missing), or, for a path the
  // user set, a directory no other user can write into (or a sticky one),
  // and nothing at the path that belongs to someone else. Throws ControlPathError.
  prepareControlPath(os, path);
  let listener;
  try {
    listener = await os.listen({ path }, { mode: 0o600 });
  } catch (e) {
    // The Os's message speaks of --bind; this socket is set by control_socket.
    if (e instanceof OsError && e.code === 'EADDRINUSE') {
      // Made between the check and the listen: by another user, it is theirs, and refused as above.
      prepareControlPath(os, path);
      throw new OsError('EADDRINUSE', `control socket ${path} is in use by a running drover (drover ctl --socket ${path} status talks to it); ` +
        'stop that one, or give this one another control_socket');
    }
    throw e;
  }
  const open = new Set<Stream>();
  let closed = false;
  let refusing = false; // at the cap, said so in the log once
  listener.accept((s) => {
    if (closed) {
      s.destroy();
      return;
    }
    if (open.size >= maxConnections) {
      if (!refusing) log.warning(`control: ${open.size} connections open, the most allowed; refusing more until some close`);
      refusing = true;
      closeWith(os, s, encodeReply({ ok: false, error: `too many control connections (${maxConnections} open): try again when one has closed` }));
      return;
    }
    open.add(s);
    s.once('close', () => {
      open.delete(s);
      if (open.size < maxConnections) refusing = false;
    });
    connection(os, s, handler, log, limits);
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

interface Limits {
  readonly line: number;
  readonly idleMs: number;
}

/** Writes `last` (if any) and ends the stream; what the peer still sends is dropped for LINGER_MS, then the stream is destroyed. */
function closeWith(os: Os, s: Stream, last: string | null): void {
  s.on('error', () => {});
  s.on('data', () => {}); // read and dropped: unread input would reset the connection
  const t = os.timer(LINGER_MS, () => s.destroy());
  s.once('close', () => t.cancel());
  if (last === null) s.end();
  else s.end(last);
  s.resume();
}

/**
 * One connection. Bounds: a line over limits.line is answered with an
 * error (as soon as the limit is passed, not at its newline) and the
 * connection closed after that reply; and a connection that makes no
 * progress for limits.idleMs is closed. Progress is a whole request line
 * received or a reply taken by the peer; a request being handled is never
 * idle, so a `stop` that waits 20 s for a companion keeps its connection.
 * Partial lines do not count: a line trickled a byte at a time ends with the
 * clock.
 */
function connection(os: Os, s: Stream, handler: Handler, log: ControlLog, limits: Limits): void {
  const decoder = new LineDecoder(limits.line);
  const queue: Frame[] = [];
  let busy = false;
  // The peer can no longer read replies: it half-closed (the Os's streams do
  // not allow half-open, so ours is ended for us), reset, or went away.
  let gone = false;
  // A line over the limit is queued: nothing after it is read, and the connection ends after its reply.
  let refused = false;
  const done = (): void => {
    if (!gone && decoder.pending > 0 && !refused) log.debug(`control: a client left in the middle of a line (${decoder.pending} bytes dropped)`);
    gone = true;
    stopClock();
  };

  let clock: Timer | null = null;
  const stopClock = (): void => {
    clock?.cancel();
    clock = null;
  };
  const startClock = (): void => {
    stopClock();
    if (gone || refused) return;
    clock = os.timer(limits.idleMs, () => {
      clock = null;
      log.debug(`control: closed a connection idle for ${limits.idleMs / 1000} s`);
      gone = true;
      s.destroy();
    });
  };
  startClock();

  s.on('data', (chunk: Uint8Array) => {
    if (refused) return;
    let got = false;
    for (const f of decoder.push(chunk)) {
      queue.push(f);
      got = true;
      if ('tooLong' in f) {
        refused = true;
        break;
      }
    }
    // Over the limit with no newline yet: refused now, not after the client has sent all it likes.
    if (!refused && decoder.overLimit) {
      queue.push({ tooLong: decoder.pending });
      refused = true;
    }
    if (refused) {
      stopClock();
      s.pause();
    } else if (got) startClock();
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
        if (queue.length < MAX_QUEUED / 2 && s.isPaused() && !gone && !refused) s.resume();
        // A complete line is a command given: it runs even if its sender has
        // gone by the time its turn comes (a `stop` piped in and hung up on).
        stopClock();
        const line = await answer(frame, handler, log, limits.line);
        if (gone || s.destroyed || s.writableEnded) continue;
        if ('tooLong' in frame) {
          // The last reply on this connection (nothing after the long line was queued).
          gone = true;
          closeWith(os, s, line);
          return;
        }
        startClock();
        if (!s.write(line)) await drained(s);
        startClock();
      }
    } catch (e) {
      // Only a bug gets here; it costs the connection, not the server (a broken invariant costs the process).
      if (crashOnAssertion(os, e)) return;
      log.error(`control: connection dropped after an internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      stopClock();
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
    rethrowAssertion(e); // the handler's state is not to be trusted: no reply makes it look fine
    const why = e instanceof Error ? e.message : quote(e);
    log.error(`control: ${d.req.cmd} failed: ${e instanceof Error ? e.stack ?? e.message : quote(e)}`);
    return encodeReply({ ok: false, error: `${d.req.cmd} failed inside drover: ${why}; drover's error log has the details` }, d.id);
  }
}
