// The arbiter's notices (src/runtime/notify.ts) for a program that started
// drover through its API (src/api/start.ts): each one travels as
// `{ t: 'drover', fields, detail }` over the IPC channel that program opened.
// Only when it also set DROVER_API=1: any fork() parent has an IPC channel,
// and messages it did not ask for are not ours to send. The channel is not
// the Os's `channel` (createNodeOs leaves that null: the arbiter has no
// drover parent), so nothing else reads or writes it.

import type { Notifier, NotifyFields, ServingDetail } from '../../runtime/notify.js';

export const ENV_API = 'DROVER_API';

/** What the API's parent receives. */
export interface ApiMessage {
  readonly t: 'drover';
  readonly fields: NotifyFields;
  readonly detail?: ServingDetail;
}

/**
 * The notifier for an API parent, or null when there is none. Call it
 * before anything reads the environment: it deletes DROVER_API, which is
 * for this process alone (workers and companions must not inherit it, and
 * the config's DROVER_* check would call it unknown).
 *
 * The server lives as long as that parent: when the channel closes (the
 * parent exited or disconnected), the arbiter is sent TERM, a graceful stop,
 * so a program that dies without stop() leaves no server behind.
 */
export function parentNotifier(): Notifier | null {
  const asked = process.env[ENV_API] === '1';
  delete process.env[ENV_API];
  const send = process.send?.bind(process);
  if (!asked || send === undefined || !process.connected) return null;
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  // A 'disconnect' listener refs the channel; the arbiter's own life decides when this process ends.
  process.channel?.unref();
  return {
    watchdogMs: null,
    send(fields: NotifyFields, detail?: ServingDetail): void {
      if (!process.connected) return;
      const msg: ApiMessage = detail === undefined ? { t: 'drover', fields } : { t: 'drover', fields, detail };
      try {
        // A failed write means the parent is gone: 'disconnect' follows and stops us.
        send(msg, undefined, {}, () => {});
      } catch {
        // the channel closed between the check and the write
      }
    },
  };
}
