// Deferred effects. A process that burns CPU runs ahead of the kernel: its
// clock says busyUntil while the kernel's says now. What it does to others in
// that time (bytes and closes on a stream, channel messages, output into a
// pipe, connects, spawns, kills, its own exit) happens at its clock, not the
// kernel's, and only if it is still alive when the kernel's clock gets there.
// So such an effect is not done at once: it joins the process's FIFO of
// effects, stamped with the process's clock, and one kernel event (EV_FLUSH)
// applies the FIFO's due prefix in order when the kernel reaches the stamp.
// A process that dies first (a kill mid-burn) drops its FIFO; what its
// death does to others (EOF or reset on its streams and pipes, channel
// disconnects) happens at the kill.
//
// While a FIFO is not empty, every new effect of the process joins it, even
// one made at kernel time, so that a process's effects keep their order.

import { assert } from '../os/assert.js';

export const FX_STREAM = 0; // a: Endpoint (the sending side), b: the item for its peer (bytes, EOF, RST)
export const FX_CHAN = 1; // a: ChanEnd (the sending side), b: the message, already copied
export const FX_CHAN_CLOSE = 2; // a: ChanEnd (the closing side)
export const FX_CONNECT = 3; // a: Endpoint (client side), b: Addr
export const FX_START = 4; // a: Proc, a child spawned during the burn: it starts now
export const FX_KILL = 5; // a: target pid (negative: group), b: signal index
export const FX_EXIT = 6; // b: exit code; os.exit() or a crash during the burn
export const FX_PIPE = 7; // a: Pipe, b: the text written (stdout/stderr into a pipe)

export class Effect {
  constructor(
    readonly at: number, // the process's clock when it made the effect
    readonly kind: number,
    readonly a: unknown,
    readonly b: unknown,
  ) {
    // Stamped with a process's clock, which is never before the kernel's 0 (NaN fails too).
    assert(at >= 0, 'Effect: stamped at a time');
    assert(Number.isInteger(kind) && kind >= FX_STREAM && kind <= FX_PIPE, 'Effect: a known kind');
    // A kill names a pid or a group (never 0: kill() resolves its own group) and a signal index.
    assert(kind !== FX_KILL || (Number.isInteger(a) && a !== 0 && Number.isInteger(b) && (b as number) >= 0), 'Effect: a kill has a target and a signal');
    assert(kind !== FX_EXIT || Number.isInteger(b), 'Effect: an exit has a code');
  }
}
