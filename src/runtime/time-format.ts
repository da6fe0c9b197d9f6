// Log timestamps from epoch milliseconds, without Date: src/runtime reads
// the clock only through Os, and formats it here. UTC only, like a server's
// logs should be. Civil-from-days is Howard Hinnant's algorithm.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Thu', 'Fri', 'Sat', 'Sun', 'Mon', 'Tue', 'Wed']; // 1970-01-01 was a Thursday

interface Civil { y: number; m: number; d: number; hh: number; mm: number; ss: number; ms: number; wd: number }

function civil(epochMs: number): Civil {
  const ms = ((epochMs % 1000) + 1000) % 1000;
  const secs = Math.floor(epochMs / 1000);
  const days = Math.floor(secs / 86400);
  const sod = secs - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return { y, m, d, hh: Math.floor(sod / 3600), mm: Math.floor((sod % 3600) / 60), ss: sod % 60, ms, wd: ((days % 7) + 7) % 7 };
}

const p2 = (n: number) => (n < 10 ? '0' + n : String(n));
const p3 = (n: number) => (n < 10 ? '00' + n : n < 100 ? '0' + n : String(n));

/** `2026-11-26 07:13:00 +0000`: the error log's timestamp (gunicorn's). */
export function logTime(epochMs: number): string {
  const c = civil(epochMs);
  return `${c.y}-${p2(c.m)}-${p2(c.d)} ${p2(c.hh)}:${p2(c.mm)}:${p2(c.ss)} +0000`;
}

/** `2026-11-26T07:13:00.123Z`: ISO-8601 UTC with milliseconds, as Date#toISOString (years 0 to 9999): the JSON logs' `ts`. */
export function isoTime(epochMs: number): string {
  const c = civil(epochMs);
  // A fractional clock (the simulator's virtual time can be one) truncates, as Date does.
  return `${c.y}-${p2(c.m)}-${p2(c.d)}T${p2(c.hh)}:${p2(c.mm)}:${p2(c.ss)}.${p3(Math.floor(c.ms))}Z`;
}

/** `26/Nov/2026:07:13:00 +0000`: the access log's timestamp (Common Log Format). */
export function clfTime(epochMs: number): string {
  const c = civil(epochMs);
  return `${p2(c.d)}/${MONTHS[c.m - 1]}/${c.y}:${p2(c.hh)}:${p2(c.mm)}:${p2(c.ss)} +0000`;
}

/** `Thu, 26 Nov 2026 07:13:00 GMT`: an HTTP date (RFC 9110 IMF-fixdate). */
export function httpDate(epochMs: number): string {
  const c = civil(epochMs);
  return `${DAYS[c.wd]}, ${p2(c.d)} ${MONTHS[c.m - 1]} ${c.y} ${p2(c.hh)}:${p2(c.mm)}:${p2(c.ss)} GMT`;
}
