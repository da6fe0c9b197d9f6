// node:http clients whose connections are Os streams, so that the same test
// client runs on the real OS and in the simulator.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Addr, Os } from '../../src/os/types.js';

/**
 * createConnection for http.request and Agents: an Os stream, handed over
 * when connected. Never combine it with `agent: false` (Node then builds a
 * default Agent that ignores createConnection and dials the real network).
 */
export function viaOs(os: Os, addr: Addr) {
  return (_opts: unknown, cb: (err: Error | null, s: Duplex) => void): undefined => {
    os.connect(addr).then((s) => cb(null, s), (e: Error) => cb(e, undefined as never));
    return undefined;
  };
}

/** A keep-alive Agent whose connections are Os streams. */
export class OsAgent extends http.Agent {
  constructor(private readonly os: Os, private readonly addr: Addr, opts: http.AgentOptions) {
    super(opts);
  }
  override createConnection(opts: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): undefined {
    return viaOs(this.os, this.addr)(opts, cb!);
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET over an Os stream (or the given Agent's). */
export function get(os: Os, addr: Addr, path: string, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ path, ...(agent ? { agent } : { createConnection: viaOs(os, addr) }) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
