// One name per setting, spelled three ways, and the "did you mean" that
// catches the misspellings of any of them.

export const ENV_PREFIX = 'DROVER_';

export const flagOf = (name: string): string => `--${name.replace(/_/g, '-')}`;
export const envOf = (name: string): string => ENV_PREFIX + name.toUpperCase();

/**
 * The snake_case a user probably meant: `maxRequests`, `max-requests` and
 * `MAX_REQUESTS` all become `max_requests`, so a file written in another
 * convention gets a suggestion at distance 0.
 */
export function snake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toLowerCase();
}

/** Optimal string alignment distance: Levenshtein plus adjacent swaps ("wokrers"). */
export function distance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The closest candidate, if it is close enough to be a typo: within a third
 * of the word's length (at least 1, at most 3 edits), or a candidate the
 * word begins (`warn` for `warning`). Ties go to the earlier candidate, so
 * the table's order decides and the answer is stable.
 */
export function closest(word: string, candidates: readonly string[]): string | null {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const dd = distance(word, c);
    if (dd < bestD) {
      best = c;
      bestD = dd;
    }
  }
  if (bestD <= limit) return best;
  if (word.length >= 3) return candidates.find((c) => c.startsWith(word)) ?? null;
  return null;
}

/** A raw value as a message shows it: JSON for what JSON can say, a word for the rest. */
export function show(raw: unknown): string {
  if (raw === undefined) return 'undefined';
  if (typeof raw === 'function') return 'a function';
  if (typeof raw === 'bigint') return `${raw}n`;
  if (typeof raw === 'number' && !Number.isFinite(raw)) return String(raw);
  let s: string;
  try {
    s = JSON.stringify(raw) ?? String(raw);
  } catch {
    // A cycle, a throwing toJSON or getter; String() may throw too (an object
    // with no prototype has no toString): then an object that cannot be
    // shown, so that the message still names the setting and the file.
    try {
      s = String(raw);
    } catch {
      s = Array.isArray(raw) ? '[...]' : '{...}';
    }
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** "a string", "an array", ...: said after a typed value of the wrong type. */
export function typeName(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'an array';
  if (raw === undefined) return 'undefined';
  return typeof raw === 'object' ? 'an object' : `a ${typeof raw}`;
}
