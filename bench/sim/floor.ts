// The floor under a simulated request: node:http's server alone, in this
// process, answering GETs on one kept-alive in-memory connection — no
// kernel, no client parser, no sockets, the most favourable case there is.
// Every simulated request runs at least this code, so (its requests per
// wall second) / (simulated requests per simulated second) bounds how much
// faster than real time any simulator running drover's real workers can go.
import * as http from 'node:http';
import { Duplex } from 'node:stream';

/** Requests per wall second, measured over `n` requests after a warm-up. */
export async function httpServerFloor(n: number): Promise<number> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.url} v1 1`);
  });
  let answered: (() => void) | null = null;
  let seen = 0;
  // The server's side of the connection; what it writes is only counted.
  const conn = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      // One answer per request: its head and body come in one write.
      if (chunk.includes('HTTP/1.1 ')) seen++;
      cb();
      const a = answered;
      answered = null;
      a?.();
    },
  });
  server.emit('connection', conn);
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      answered = resolve;
      conn.push(`GET /f?id=r${i} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: keep-alive\r\n\r\n`);
    });
  for (let i = 0; i < 2000; i++) await one(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one(i);
  const s = (performance.now() - t0) / 1000;
  conn.destroy();
  server.close();
  if (seen < n) throw new Error(`httpServerFloor: ${seen} answers for ${n + 2000} requests`);
  return n / s;
}
