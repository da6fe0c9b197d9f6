// One request over the control socket: connect, send a line, read a line.
// Failures come back as ControlError with a code the caller can map to an
// exit status and a message that says what probably happened.

import type { Os, Stream } from '../../os/types.js';
import { expectCodes } from '../assert.js';
import { socketRefusal } from './guard.js';
import { encodeRequest, escapeControl, LineDecoder, parseReply, quote, type Reply, type Request, type WireRequest } from './protocol.js';

/**
 * ENOENT: no socket at the path. ECONNREFUSED: a socket nobody listens on.
 * EPERM: not ours to use, or not to be trusted (another user's socket, a symlink). ETIMEDOUT: no reply in time. ECONNRESET: the
 * connection ended without a reply. EPROTO: the reply was not drover's.
 */
export type ControlErrorCode = 'ENOENT' | 'ECONNREFUSED' | 'EPERM' | 'ETIMEDOUT' | 'ECONNRESET' | 'EPROTO' | 'EINVAL';

export class ControlError extends Error {
  constructor(readonly code: ControlErrorCode, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/** A reply may be much longer than a request (a tail of 10,000 lines, the status of many companions). */
const MAX_REPLY = 64 * 1024 * 1024;

/** Whether a socket file is at `path` (a refused connect to a plain file looks like a stale socket). */
function isSocket(os: Os, path: string): boolean {
  try {
    return os.fs.stat(path).isSocket();
  } catch (e) {
    expectCodes(e); // gone since, or not ours to look at: say what the connect said
    return true;
  }
}

function connectError(os: Os, e: unknown, path: string): ControlError {
  const code = (e as { code?: unknown } | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'ENOENT':
      return new ControlError('ENOENT', `no control socket at ${path}: is drover running, and with this socket?`);
    case 'ECONNREFUSED':
      if (!isSocket(os, path)) return new ControlError('ECONNREFUSED', `${path} is not a socket: is that the control socket's path?`);
      return new ControlError('ECONNREFUSED', `nothing listens on ${path}: a stale socket, drover is not running`);
    case 'EPERM':
      return new ControlError('EPERM', `not allowed to use ${path} (the socket is mode 0600): run drover ctl as the user drover runs as`);
    case 'ENAMETOOLONG':
      return new ControlError('EINVAL', msg);
    default:
      return new ControlError('ECONNREFUSED', `cannot connect to ${path}: ${msg}`);
  }
}

/**
 * Sends `req` (an `id` in it is echoed) and resolves with the reply, ok or
 * not. Rejects with ControlError when there is no reply to be had.
 */
export function request(os: Os, path: string, req: Request | WireRequest, timeoutMs: number): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    let stream: Stream | null = null;
    let settled = false;
    const finish = (err: ControlError | null, reply?: Reply): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      stream?.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    // Nothing at the path: ENOENT now, not a connect. A socket another user
    // makes there in the instant between a check and a connect (anyone may,
    // in a sticky /tmp) would answer in drover's name.
    try {
      os.fs.lstat(path);
    } catch (e) {
      if (expectCodes(e) === 'ENOENT') {
        reject(connectError(os, e, path));
        return;
      }
    }
    // Before a byte is sent: the socket must be ctl's own user's (or root's), not a stand-in of another user.
    const refusal = socketRefusal(os, path);
    if (refusal !== null) {
      reject(new ControlError('EPERM', refusal));
      return;
    }
    const timer = os.timer(timeoutMs, () =>
      finish(new ControlError('ETIMEDOUT', `no reply from ${path} within ${timeoutMs / 1000} s: drover is busy or hung (a start or stop waits for the companion; raise --timeout)`)));
    os.connect({ path }).then(
      (s) => {
        if (settled) {
          s.destroy();
          return;
        }
        stream = s;
        const decoder = new LineDecoder(MAX_REPLY);
        const lost = (why: string) => finish(new ControlError('ECONNRESET', `${path} closed the connection without a reply (${why}): drover may have stopped`));
        s.on('data', (chunk: Uint8Array) => {
          const f = decoder.push(chunk)[0];
          if (f === undefined) return;
          if ('tooLong' in f) return finish(new ControlError('EPROTO', `the reply from ${path} is over ${MAX_REPLY} bytes`));
          const reply = parseReply(f.line);
          if (reply === null) return finish(new ControlError('EPROTO', `${path} answered something that is not a drover reply: ${escapeControl(quote(f.line))}; is it drover's control socket?`));
          finish(null, reply);
        });
        s.on('end', () => lost('end of stream'));
        s.on('close', () => lost('closed'));
        s.on('error', (e) => lost(e.message));
        // Our side stays open until the reply: the server drops replies to a client that half-closed.
        s.write(encodeRequest(req));
      },
      (e) => finish(connectError(os, e, path)),
    );
  });
}
