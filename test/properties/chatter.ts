// A multi-process program that touches every part of the simulated kernel:
// spawn, channels, signals, sockets, files, burn, kill and reaping, with
// every choice drawn from os.random(). Its trace is what determinism is
// judged on.
import { programs, type Child, type Os } from '../../src/os/types.js';

const pick = (os: Os, n: number) => Math.floor(os.random() * n);

async function chatter(os: Os): Promise<void> {
  const l = await os.listen({ host: '127.0.0.1', port: 0 });
  const kids: Child[] = [];
  let reaped = 0;
  os.onSignal('SIGCHLD', () => {
    try {
      while (os.waitpid(-1) !== null) reaped++;
    } catch {
      // ECHILD: every child collected
    }
  });
  for (let i = 0; i < 6; i++) {
    const k = os.spawn({ program: 'talker', args: [String(i)], listeners: i % 2 === 0 ? [l] : [] });
    k.channel!.onMessage((m) => {
      const to = kids[pick(os, kids.length)]!;
      to.channel!.send(m);
    });
    kids.push(k);
  }
  for (let i = 0; i < 8; i++) {
    await os.sleep(1 + pick(os, 20));
    const s = await os.connect(l.address);
    s.on('data', () => {});
    s.on('error', () => {});
    s.end(`req ${i}`);
    if (os.random() < 0.3) os.kill(kids[pick(os, kids.length)]!.pid, 'SIGUSR2');
  }
  os.kill(kids[pick(os, kids.length)]!.pid, 'SIGKILL');
  await os.sleep(50);
  for (const k of kids) k.channel!.close();
  l.close();
  while (reaped < kids.length) await os.sleep(5);
  os.fs.appendFile('/tmp/chatter.log', `done ${reaped}\n`);
}

async function talker(os: Os, args: readonly string[]): Promise<void> {
  let heard = 0;
  os.onSignal('SIGUSR2', () => os.burn(1 + pick(os, 5)));
  os.channel!.onMessage(() => heard++);
  os.channel!.onDisconnect(() => os.exit(heard % 7));
  os.listeners[0]?.accept((s) => {
    s.on('data', (d) => {
      os.burn(pick(os, 3));
      s.write(d);
    });
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  for (let i = 0; i < 10; i++) {
    await os.sleep(1 + pick(os, 15));
    if (os.random() < 0.2) os.burn(pick(os, 4));
    os.channel!.send({ from: args[0], i });
    os.fs.appendFile('/tmp/chatter.log', `${os.pid} ${i}\n`);
  }
}

export const chatterPrograms = programs(import.meta.url, { chatter, talker });
