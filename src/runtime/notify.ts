// What the arbiter tells whoever started it about its life: systemd's
// sd_notify(3) protocol (READY=1, RELOADING=1, STOPPING=1, STATUS=...,
// WATCHDOG=1), and the same events to a program that started drover through
// its API. The arbiter only says what happened; how it travels (a datagram
// to $NOTIFY_SOCKET, a message to the parent) is the notifier's business.

/** One sd_notify message: `{ READY: '1', STATUS: 'generation 1 serving, 2+1 workers' }`. */
export type NotifyFields = Readonly<Record<string, string>>;

/** What READY=1 is about, for notifiers that pass more than systemd takes. */
export interface ServingDetail {
  readonly generation: number;
  /** Where the server listens: 'http://127.0.0.1:8000', 'unix:/run/app.sock'. */
  readonly addresses: readonly string[];
  /** The admin listener, when admin_bind is set. */
  readonly admin: string | null;
}

export interface Notifier {
  /** How often the arbiter's loop must say WATCHDOG=1 (half of systemd's WATCHDOG_USEC); null: never. */
  readonly watchdogMs: number | null;
  /** Never throws: a notifier that cannot deliver says so once in its own way. */
  send(fields: NotifyFields, detail?: ServingDetail): void;
}
