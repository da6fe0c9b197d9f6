// Figures and tables for the benchmarks' reports (bench/http,
// bench/companions): both print the same kind of Markdown tables, which
// bench/results/*.md keep, so they format them one way.

/** The median; of an even count, the mean of the two middle values. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A Markdown table, padded so that it reads as well in a terminal. `align`: one 'l' or 'r' a column. */
export function table(head: readonly string[], align: string, rows: readonly (readonly string[])[]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const cell = (s: string, i: number) => (align[i] === 'r' ? s.padStart(w[i]!) : s.padEnd(w[i]!));
  return [
    `| ${head.map(cell).join(' | ')} |`,
    `|${w.map((n, i) => (align[i] === 'r' ? '-'.repeat(n + 1) + ':' : '-'.repeat(n + 2))).join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
}

/** A whole number with thousands separators, the same on every locale. */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * What a benchmark `bench/NAME` writes besides its report: progress lines on
 * stderr, so that stdout holds the report alone, and errors in its options,
 * which end it with exit code 2.
 */
export function cli(name: string): { progress(msg: string): void; fail(msg: string): never; positive(option: string, v: string): number } {
  const fail = (msg: string): never => {
    console.error(`bench/${name}: ${msg}`);
    process.exit(2);
  };
  return {
    progress: (msg) => process.stderr.write(`[bench:${name}] ${msg}\n`),
    fail,
    positive(option, v) {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) fail(`--${option}: a positive integer, not ${v}`);
      return n;
    },
  };
}
