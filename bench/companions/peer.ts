// The peers of bench/companions (1): bare node:net servers on a Unix socket
// speaking the same newline-delimited framing as drover's control socket.
//
//   node --import tsx bench/companions/peer.ts canned SOCKET REPLY_FILE
//   node --import tsx bench/companions/peer.ts json SOCKET REPLY_FILE
//
// REPLY_FILE holds one `status` reply line that drover's manager gave in the
// same run (50 companions). `canned` answers every request line with those
// exact bytes: no parsing, no work, the floor of a Node Unix-socket round
// trip for that message size. `json` parses each request, builds the same
// reply object afresh and stringifies it: the floor plus the serialization
// any JSON control server must do. Prints `ready` once it listens.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const [mode, path, replyFile] = process.argv.slice(2);
if ((mode !== 'canned' && mode !== 'json') || path === undefined || replyFile === undefined) {
  console.error('usage: peer.ts canned|json SOCKET REPLY_FILE');
  process.exit(2);
}
const text = readFileSync(replyFile, 'utf8').trimEnd();
const canned = Buffer.from(text + '\n');
const template = JSON.parse(text) as { ok: true; companions: Record<string, unknown>[] };

const answer = (line: string): string | Buffer => {
  if (mode === 'canned') return canned;
  const req = JSON.parse(line) as { cmd?: unknown };
  if (req.cmd !== 'status') return JSON.stringify({ ok: false, error: 'status only' }) + '\n';
  return JSON.stringify({ ok: true, companions: template.companions.map((c) => ({ ...c })) }) + '\n';
};

const server = createServer((s) => {
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      s.write(answer(line));
    }
  });
  s.on('error', () => {});
});
server.listen(path, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
