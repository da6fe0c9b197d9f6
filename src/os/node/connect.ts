import * as net from 'node:net';
import { formatAddr, isUnix, OsError, UNIX_PATH_MAX, type Addr, type Stream } from '../types.js';
import { codeOf, osError } from './errors.js';

/** Resolves once connected; the caller owns the socket's 'error' from then on. */
export function connect(addr: Addr): Promise<Stream> {
  if (isUnix(addr) && Buffer.byteLength(addr.path) > UNIX_PATH_MAX) {
    return Promise.reject(new OsError('ENAMETOOLONG', `Unix socket path ${addr.path} is over ${UNIX_PATH_MAX} bytes`));
  }
  return new Promise((resolve, reject) => {
    const s = isUnix(addr) ? net.connect({ path: addr.path }) : net.connect({ port: addr.port, host: addr.host, noDelay: true });
    const onError = (e: Error): void => reject(osError(codeOf(e), `cannot connect to ${formatAddr(addr)}: ${e.message}`));
    s.once('error', onError);
    s.once('connect', () => {
      s.removeListener('error', onError);
      resolve(s);
    });
  });
}
