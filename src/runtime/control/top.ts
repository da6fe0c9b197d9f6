// `drover ctl top`'s screen: one frame of plain text from a stats reply and
// a status reply. Pure, so a frame can be checked character by character;
// the loop that polls, redraws and reads keys is in ctl.ts, the terminal it
// draws on comes from the caller (src/cli/ctl.ts on the real OS).

import type { LanesReport, ProcessRow } from '../lanes/report.js';
import { logTime } from '../time-format.js';
import { escapeControl, type CompanionStatus } from './protocol.js';

/** `0:00:07`, `3:25:00`, `2d 4:00:00`: supervisorctl's uptime, shorter days. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  return d > 0 ? `${d}d ${hms}` : hms;
}

/**
 * Where top draws. The real one is the process's stdin and stdout; tests
 * and the simulator pass a stand-in (or none: no terminal, one frame).
 */
export interface Terminal {
  /** stdout is a terminal: top redraws in place until told to quit. Not one (piped): one frame, then exit. */
  readonly isTTY: boolean;
  /** Characters per line, when known: longer lines are cut (wrapped ones would scroll the frame away). */
  readonly columns?: number;
  /**
   * Hands each key pressed to `fn`, stdin in raw mode (when stdin is a
   * terminal; otherwise it does nothing and Ctrl-C comes as SIGINT).
   * Returns what puts the terminal back as it was.
   */
  keys(fn: (key: string) => void): () => void;
}

/** No terminal: the simulator's programs and anything piped. */
export const NO_TERMINAL: Terminal = { isTTY: false, keys: () => () => {} };

/** What the header says of the drover: from its `version` reply. */
export interface TopHead {
  readonly version: string;
  readonly pid: number | null;
}

/** A status reply's companions, or why there are none to show ([] when none are configured). */
export type TopCompanions = { readonly companions: readonly CompanionStatus[] } | { readonly error: string };

/** The longest companion name shown whole; longer ones end in an ellipsis. */
export const TOP_NAME_MAX = 24;

/** `s` in at most `n` characters (code points), the last one an ellipsis when it was cut. */
export function clip(s: string, n: number): string {
  if (s.length <= n) return s;
  const cps = [...s];
  return cps.length <= n ? s : `${cps.slice(0, Math.max(0, n - 1)).join('')}…`;
}

const MiB = 1024 * 1024;

/** Columns: header, minimum width (so a frame does not jitter as numbers grow), right-aligned. */
const PROC_COLUMNS: readonly (readonly [string, number, boolean])[] = [
  ['PID', 7, true], ['ROLE', 4, false], ['GEN', 3, true], ['STATE', 8, false], ['RSS', 9, true],
  ['REQS', 6, true], ['INFLIGHT', 8, true], ['ELU', 4, true], ['UPTIME', 8, true],
];

function procCells(p: ProcessRow): string[] {
  return [
    String(p.pid), escapeControl(p.role), String(p.generation), escapeControl(p.state),
    p.rss === null ? '-' : `${(p.rss / MiB).toFixed(1)} MiB`,
    String(p.served), String(p.inflight),
    p.elu === null ? '-' : `${Math.round(p.elu * 100)}%`,
    formatDuration(p.uptimeMs),
  ];
}

/** Rows of cells under a header, two spaces between columns, no trailing blanks. */
function table(head: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[], min: readonly number[] = []): string[] {
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(min[i] ?? 0, ...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((cell, i) => (right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

function millis(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * One frame of `drover ctl top`: a header (version, arbiter pid, the
 * serving generation, the time `now`, epoch ms), every worker process, the
 * lanes per generation in a line each, and the companions. Every string
 * from a reply has its control characters escaped; lines are cut at
 * `width` characters.
 */
export function formatTop(stats: LanesReport, companions: TopCompanions, now: number, head: TopHead, width = Infinity): string {
  const gens = stats.generations;
  const serving = gens[0]?.generation;
  const starting = gens.filter((g) => serving !== undefined && g.generation > serving).map((g) => g.generation);
  const out: string[] = [
    [
      `drover ${escapeControl(head.version)}`,
      `arbiter ${head.pid ?? '-'}`,
      serving === undefined ? 'no generation serving' : `generation ${serving} serving${starting.length === 0 ? '' : `, ${starting.join(', ')} starting`}`,
      logTime(now),
    ].join('  '),
    '',
  ];

  if (stats.processes.length === 0) out.push('no worker processes');
  else out.push(...table(PROC_COLUMNS.map(([h]) => h), stats.processes.map(procCells), PROC_COLUMNS.map(([, , r]) => r), PROC_COLUMNS.map(([, w]) => w)));

  out.push('', stats.lanes ? `lanes on, slow_threshold ${millis(stats.slowThresholdMs)}; ${plural(stats.slowRoutes.length, 'route')} learned slow` : 'lanes off');
  const labels = gens.map((g, i) => `gen ${g.generation} ${i === 0 ? 'serving' : g.generation > serving! ? 'starting' : 'draining'}`);
  const lw = Math.max(0, ...labels.map((l) => l.length));
  gens.forEach((g, i) => {
    const fast = `fast ${plural(g.fast.workers, 'worker')}, served ${g.fast.servedFast} fast/${g.fast.servedSlow} slow`;
    const s = g.slow;
    const slow = s === null
      ? 'slow lane off'
      : `slow ${plural(s.workers, 'worker')}: ${s.queued} queued, ${s.running} running, shed ${s.shed.full + s.shed.timeout + s.shed.noWorkers}`;
    out.push(`  ${labels[i]!.padEnd(lw)}  ${fast}; ${slow}`);
  });

  out.push('');
  if ('error' in companions) out.push(`companions: ${escapeControl(companions.error)}`);
  else if (companions.companions.length === 0) out.push('no companions');
  else {
    out.push('companions');
    const rows = companions.companions.map((c) => [
      clip(escapeControl(c.name), TOP_NAME_MAX), escapeControl(c.state), c.pid === null ? '-' : String(c.pid),
      c.uptime_ms === undefined ? '-' : formatDuration(c.uptime_ms), escapeControl(c.description),
    ]);
    out.push(...table(['NAME', 'STATE', 'PID', 'UPTIME', 'DESCRIPTION'], rows, [false, false, true, true, false]).map((l) => `  ${l}`));
  }
  return out.map((l) => clip(l, width)).join('\n') + '\n';
}
