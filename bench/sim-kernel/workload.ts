// The reference workload: one hub and 50 peers. Each peer sleeps 1-10 ms,
// sometimes burns 2 ms of CPU, and sends a message to the hub, which relays
// it to a random peer; 200 rounds each. The same logical work runs on the
// simulated kernel (as real drover programs) and on a bare event loop.
import { programs, type Child, type Os } from '../../src/os/types.js';

export const PEERS = 50;
export const ROUNDS = 1000;

async function hub(os: Os, args: readonly string[]): Promise<void> {
  const n = Number(args[0]);
  const rounds = args[1]!;
  const kids: Child[] = [];
  let done = 0;
  let reaped = 0;
  os.onSignal('SIGCHLD', () => {
    try {
      while (os.waitpid(-1) !== null) reaped++;
    } catch {
      // ECHILD: all collected
    }
  });
  for (let i = 0; i < n; i++) {
    const k = os.spawn({ program: 'peer', args: [rounds] });
    k.channel!.onMessage((m) => {
      if (m === 'done') {
        if (++done === n) for (const c of kids) c.channel!.close();
        return;
      }
      kids[Math.floor(os.random() * n)]!.channel!.send(m);
    });
    kids.push(k);
  }
  while (reaped < n) await os.sleep(100);
}

async function peer(os: Os, args: readonly string[]): Promise<void> {
  const rounds = Number(args[0]);
  let heard = 0;
  os.channel!.onMessage(() => heard++);
  for (let i = 0; i < rounds; i++) {
    await os.sleep(1 + Math.floor(os.random() * 10));
    if (os.random() < 0.2) os.burn(2);
    os.channel!.send(i);
  }
  os.channel!.send('done');
}

export const benchPrograms = programs(import.meta.url, { hub, peer });
