// The app chaos runs serve: each version is its own module (the config names
// the module, so a reload that changes the app is visible in every answer).
// Every answer is `ID VERSION PID`: the client checks the ID is its own and
// that the version is one a good config named.
//   /f?id=ID          fast
//   /s?id=ID&ms=N     burns N ms of CPU (virtual)
//   /hang             burns for ever: the worker stops answering heartbeats
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppContext } from '../../runtime/worker/app.js';
import { ledger } from '../ledger.js';

export function makeApp(version: string) {
  return (ctx: AppContext) => (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const id = params.get('id') ?? '-';
    ledger.ran(id);
    if (path === '/hang') ctx.burn(1e9);
    else if (path === '/s') ctx.burn(Number(params.get('ms') ?? 200));
    res.setHeader('content-type', 'text/plain');
    res.end(`${id} ${version} ${ctx.pid}`);
  };
}
