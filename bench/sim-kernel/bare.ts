// The peer the kernel is measured against: the same workload on the least
// event loop that can run it — a time-ordered heap, actors with their own
// busy-until clock, and one host yield per batch so async code settles, the
// same batching rule the kernel uses. No processes, signals, channels or
// trace: what is left over in the kernel's figure is the kernel's own cost.

type Fn = () => void;

class Heap {
  private t: number[] = [];
  private s: number[] = [];
  private f: Fn[] = [];
  private a: number[] = [];
  get size(): number { return this.t.length; }
  private less(i: number, j: number): boolean {
    return this.t[i]! < this.t[j]! || (this.t[i] === this.t[j] && this.s[i]! < this.s[j]!);
  }
  private swap(i: number, j: number): void {
    [this.t[i], this.t[j]] = [this.t[j]!, this.t[i]!];
    [this.s[i], this.s[j]] = [this.s[j]!, this.s[i]!];
    [this.f[i], this.f[j]] = [this.f[j]!, this.f[i]!];
    [this.a[i], this.a[j]] = [this.a[j]!, this.a[i]!];
  }
  push(time: number, seq: number, actor: number, fn: Fn): void {
    this.t.push(time); this.s.push(seq); this.a.push(actor); this.f.push(fn);
    for (let i = this.t.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p); i = p;
    }
  }
  peekTime(): number { return this.t[0]!; }
  peekActor(): number { return this.a[0]!; }
  pop(): Fn {
    const fn = this.f[0]!;
    const last = this.t.length - 1;
    this.swap(0, last);
    this.t.pop(); this.s.pop(); this.f.pop(); this.a.pop();
    for (let i = 0; ;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.t.length && this.less(l, m)) m = l;
      if (r < this.t.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m); i = m;
    }
    return fn;
  }
}

function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0; b |= 0; c |= 0; d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

export async function runBare(peers: number, rounds: number, seed: number): Promise<{ events: number; simMs: number }> {
  const heap = new Heap();
  const random = sfc32(seed, 0x9e3779b9, 0x243f6a88, 0xb7e15162);
  let now = 0;
  let seq = 0;
  let events = 0;
  const busy = new Array<number>(peers + 1).fill(0);
  const local = (actor: number) => Math.max(now, busy[actor]!);
  const at = (actor: number, time: number, fn: Fn) => heap.push(Math.max(time, busy[actor]!), seq++, actor, fn);
  const HUB = peers;
  const inbox: Array<(m: unknown) => void> = [];
  const send = (from: number, to: number, m: unknown) => at(to, local(from) + Math.floor(random() * 2), () => inbox[to]!(m));

  let done = 0;
  inbox[HUB] = (m) => {
    if (m === 'done') { done++; return; }
    send(HUB, Math.floor(random() * peers), m);
  };
  for (let p = 0; p < peers; p++) {
    let heard = 0;
    inbox[p] = () => { heard++; };
    const sleep = (ms: number) => new Promise<void>((r) => at(p, local(p) + ms, r));
    at(p, 0, () => {
      void (async () => {
        for (let i = 0; i < rounds; i++) {
          await sleep(1 + Math.floor(random() * 10));
          if (random() < 0.2) busy[p] = local(p) + 2;
          send(p, HUB, i);
        }
        send(p, HUB, 'done');
      })();
    });
  }

  const ran = new Set<number>();
  while (heap.size > 0) {
    now = heap.peekTime();
    ran.clear();
    while (heap.size > 0 && heap.peekTime() === now && !ran.has(heap.peekActor())) {
      ran.add(heap.peekActor());
      heap.pop()();
      events++;
    }
    await new Promise<void>((r) => setImmediate(r));
  }
  if (done !== peers) throw new Error(`bare loop ended with ${done}/${peers} peers done`);
  return { events, simMs: now };
}
