// The app chaos runs serve: each version is its own module (the config names
// the module, so a reload that changes the app is visible in every answer).
// Every answer is `ID VERSION PID`: the client checks the ID is its own and
// that the version is one a good config named.
//   /f?id=ID          fast
//   /s?id=ID&ms=N     burns N ms of CPU (virtual)
//   ...&kb=N          the answer is padded with N KiB of 'x', written 64 KiB
//                     at a time, waiting for 'drain' when write() says so
//   /hang             burns for ever: the worker stops answering heartbeats
//   POST ...          the same, once the whole body has come (as an app that parses it)
import { Buffer } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppContext } from '../../runtime/worker/app.js';
import { runningLedger } from '../ledger.js';

const PAD = Buffer.alloc(64 * 1024, 'x');

/** 'drain', or 'close' for a client that went away. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export function makeApp(version: string) {
  return (ctx: AppContext) => (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') return answer(ctx, version, req, res);
    req.on('data', () => {});
    req.on('end', () => answer(ctx, version, req, res));
  };
}

function answer(ctx: AppContext, version: string, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const id = params.get('id') ?? '-';
  runningLedger()?.ran(id);
  if (path === '/hang') ctx.burn(1e9);
  else if (path === '/s') ctx.burn(Number(params.get('ms') ?? 200));
  res.setHeader('content-type', 'text/plain');
  const kb = Number(params.get('kb') ?? 0);
  if (kb <= 0) {
    res.end(`${id} ${version} ${ctx.pid}`);
    return;
  }
  void (async () => {
    res.write(`${id} ${version} ${ctx.pid} `);
    for (let sent = 0; sent < kb * 1024 && !res.destroyed; sent += PAD.length) {
      if (!res.write(PAD)) await drained(res);
    }
    res.end();
  })();
}
