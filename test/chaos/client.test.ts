// The chaos load's own HTTP client: answers parsed from bytes however they
// are split, a stray answer reported where it arrives, a connection that
// goes mid-answer a reset.
import { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Conn, KEPT, type Outcome } from '../../src/chaos/client.js';
import type { Stream } from '../../src/os/types.js';

/** The server's end, held by the test: what the client wrote, and a way to answer. */
function pair() {
  const written: string[] = [];
  const s = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk.toString());
      cb();
    },
  });
  return { stream: s as unknown as Stream, written, answer: (text: string) => s.push(Buffer.from(text, 'latin1')), close: () => s.destroy() };
}

const tick = () => new Promise((r) => setImmediate(r));

/** An outcome with its body decoded as UTF-8, to compare with text. */
type Seen = { status: number; body: string } | { reset: string };
const seen = (o: Outcome): Seen => {
  if ('reset' in o) return o;
  // The tests' answers are shorter than what an outcome keeps: their bodies are whole.
  expect(o.length).toBe(o.body.length);
  return { status: o.status, body: o.body.toString('utf8') };
};

function client() {
  const p = pair();
  const strays: string[] = [];
  const conn = new Conn(Promise.resolve(p.stream), (h) => strays.push(h));
  const outcomes: Seen[] = [];
  const get = (path: string, keep = true) => conn.get(path, keep, { end: (o) => outcomes.push(seen(o)) });
  return { ...p, conn, strays, outcomes, get };
}

const OK = (body: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n${extra}content-length: ${body.length}\r\n\r\n${body}`;
const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nr1 \r\n5\r\nv1 42\r\n0\r\nx-trailer: 1\r\n\r\n';

describe('chaos client', () => {
  it('writes one GET per request and reads content-length answers in turn on a kept-alive connection', async () => {
    const c = client();
    c.get('/f?id=r1');
    await tick();
    expect(c.written.join('')).toBe('GET /f?id=r1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: keep-alive\r\n\r\n');
    c.answer(OK('r1 v1 7'));
    await tick();
    expect(c.outcomes).toEqual([{ status: 200, body: 'r1 v1 7' }]);
    expect(c.conn.idle).toBe(true);
    c.get('/f?id=r2');
    c.answer('HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 4\r\n\r\nbusy');
    await tick();
    expect(c.outcomes[1]).toEqual({ status: 503, body: 'busy' });
    expect(c.strays).toEqual([]);
  });

  it('the same answers come out of any split of the bytes: content-length, chunked with trailers, and read-until-close', async () => {
    const answers = [OK('r1 v1 7'), CHUNKED, 'HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\nno slow worker'];
    const cutsOf = (a: string) => fc.uniqueArray(fc.integer({ min: 1, max: a.length - 1 }), { maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(fc.tuple(...answers.map(cutsOf)), async (cuts) => {
        const c = client();
        for (const [i, a] of answers.entries()) {
          expect(c.conn.idle).toBe(true);
          c.get(`/${i}`);
          const bounds = [0, ...[...cuts[i]!].sort((x, y) => x - y), a.length];
          for (let b = 0; b + 1 < bounds.length; b++) {
            c.answer(a.slice(bounds[b], bounds[b + 1]));
            await tick();
          }
        }
        // The last answer has no length: it ends with the connection.
        expect(c.outcomes).toHaveLength(2);
        c.close();
        await tick();
        expect(c.outcomes).toEqual([
          { status: 200, body: 'r1 v1 7' },
          { status: 200, body: 'r1 v1 42' },
          { status: 502, body: 'no slow worker' },
        ]);
        expect(c.strays).toEqual([]);
        expect(c.conn.done).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('of a big body only its length and its first KEPT bytes are kept, however it is framed and split', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 70_000 }), fc.boolean(), fc.array(fc.integer({ min: 1, max: 9_000 }), { maxLength: 12 }), async (size, chunked, steps) => {
        const body = Buffer.alloc(size);
        for (let i = 0; i < size; i++) body[i] = 97 + ((i * 7) % 26);
        const head = `HTTP/1.1 200 OK\r\n${chunked ? 'transfer-encoding: chunked' : `content-length: ${size}`}\r\n\r\n`;
        const framed = chunked
          ? Buffer.concat([Buffer.from(head), ...(size > 0 ? [Buffer.from(`${size.toString(16)}\r\n`), body, Buffer.from('\r\n')] : []), Buffer.from('0\r\n\r\n')])
          : Buffer.concat([Buffer.from(head), body]);
        const p = pair();
        const got: Outcome[] = [];
        const conn = new Conn(Promise.resolve(p.stream), () => {});
        conn.get('/big', true, { end: (o) => got.push(o) });
        await tick();
        let at = 0;
        for (const n of steps) {
          if (at >= framed.length) break;
          p.answer(framed.subarray(at, at + n).toString('latin1'));
          at += n;
        }
        if (at < framed.length) p.answer(framed.subarray(at).toString('latin1'));
        await tick();
        expect(got).toHaveLength(1);
        const o = got[0]!;
        expect('reset' in o).toBe(false);
        if ('reset' in o) return;
        expect(o.length).toBe(size);
        expect(o.body.equals(body.subarray(0, KEPT))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('an answer for no request is reported as a stray, once, even when it comes with the one before it', async () => {
    const c = client();
    c.get('/f?id=r1', false);
    c.answer(OK('r1 v1 7') + OK('again'));
    await tick();
    expect(c.outcomes).toEqual([{ status: 200, body: 'r1 v1 7' }]);
    expect(c.strays).toHaveLength(1);
    expect(c.strays[0]).toMatch(/^an answer for no request: "HTTP\/1\.1 200 OK/);
    c.answer(OK('third'));
    await tick();
    expect(c.strays).toHaveLength(1);
  });

  it('interim 1xx heads are skipped, 204 has no body, Transfer-Encoding beats Content-Length in any order, bodies are UTF-8', async () => {
    const c = client();
    c.get('/1');
    c.answer('HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n' + OK('r1 v1 7'));
    await tick();
    c.get('/2');
    c.answer('HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n');
    await tick();
    c.get('/3');
    c.answer('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    await tick();
    c.get('/4');
    c.answer('HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    await tick();
    c.get('/5');
    const utf8 = 'r5 vé 7';
    c.answer(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(utf8)}\r\n\r\n${Buffer.from(utf8).toString('latin1')}`);
    await tick();
    expect(c.outcomes).toEqual([
      { status: 200, body: 'r1 v1 7' },
      { status: 204, body: '' },
      { status: 200, body: 'ok' },
      { status: 200, body: 'ok' },
      { status: 200, body: utf8 },
    ]);
    expect(c.strays).toEqual([]);
  });

  it('a body read until close is whole only if the server closed cleanly: a reset or our own destroy cuts it short', async () => {
    const clean = client();
    clean.get('/f');
    clean.answer('HTTP/1.1 200 OK\r\n\r\nr1 v1 7');
    await tick();
    clean.close();
    await tick();
    expect(clean.outcomes).toEqual([{ status: 200, body: 'r1 v1 7' }]);

    const reset = pair();
    const out: Seen[] = [];
    const r = new Conn(Promise.resolve(reset.stream), () => {});
    r.get('/f', true, { end: (o) => out.push(seen(o)) });
    reset.answer('HTTP/1.1 200 OK\r\n\r\nr1 v');
    await tick();
    reset.stream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await tick();
    expect(out).toEqual([{ reset: 'connection closed' }]);

    const mine = client();
    mine.get('/f');
    mine.answer('HTTP/1.1 200 OK\r\n\r\nr1 v');
    await tick();
    mine.conn.destroy();
    await tick();
    expect(mine.outcomes).toEqual([{ reset: 'connection closed' }]);
  });

  it('broken chunk framing is reported, and the request ends as a reset', async () => {
    for (const [bytes, what] of [
      ['3\r\nr1 \r\nzz\r\n', /chunk size line "zz"/],
      ['3\r\nr1 X\r\n0\r\n\r\n', /chunk of 3 bytes not followed by CRLF/],
    ] as const) {
      const c = client();
      c.get('/f');
      c.answer(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${bytes}`);
      await tick();
      expect(c.strays).toHaveLength(1);
      expect(c.strays[0]).toMatch(what);
      expect(c.outcomes).toEqual([{ reset: 'connection closed' }]);
    }
  });

  it('a connection that goes before the answer is whole ends its request as a reset; Connection: close ends reuse', async () => {
    const c = client();
    c.get('/s?id=r1');
    c.answer('HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\nr1 v1');
    await tick();
    c.close();
    await tick();
    expect(c.outcomes).toEqual([{ reset: 'connection closed' }]);
    expect(c.conn.done).toBe(true);

    const d = client();
    d.get('/f?id=r2');
    d.answer(OK('r2 v1 7', 'connection: close\r\n'));
    await tick();
    expect(d.outcomes).toEqual([{ status: 200, body: 'r2 v1 7' }]);
    expect(d.conn.idle).toBe(false);
    expect(() => d.get('/f?id=r3')).toThrow(/busy or done/);
  });

  it('a refused connect ends the request as a reset naming the error; destroy before connecting does too', async () => {
    const refused = new Conn(Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), () => {});
    const out: Outcome[] = [];
    refused.get('/f', true, { end: (o) => out.push(o) });
    await tick();
    expect(out).toEqual([{ reset: 'connect failed: ECONNREFUSED' }]);

    const p = pair();
    let resolve!: (s: Stream) => void;
    const later = new Conn(new Promise<Stream>((r) => (resolve = r)), () => {});
    later.get('/f', false, { end: (o) => out.push(o) });
    later.destroy();
    resolve(p.stream);
    await tick();
    expect(out[1]).toEqual({ reset: 'destroyed before it connected' });
    expect(p.stream.destroyed).toBe(true);
    expect(p.written).toEqual([]);
  });
});
