// Autoscaling between min_workers and max_workers from the workers' own load
// reports: each heartbeat carries how long the worker's event loop was busy,
// so the arbiter knows every worker's utilization. Node runs one event loop
// per process: a worker whose loop is busy 80% of the time is out of room.
//
// Hysteresis, so that it does not flap:
// - up by one when the mean utilization stayed at or above HIGH for UP_AFTER;
// - down by one when, with one worker fewer, the others would still stay
//   below MID — for DOWN_AFTER, a much longer spell (the seed design's "long
//   idle spell");
// - after any change, nothing for COOLDOWN: the new worker must boot and
//   take its share before the load is judged again;
// - a load between the two bands resets both spells.

export const HIGH = 0.8;
export const MID = 0.5;
export const UP_AFTER = 3_000;
export const DOWN_AFTER = 30_000;
export const COOLDOWN = 5_000;

export interface ScaleState {
  hotSince: number | null;
  coldSince: number | null;
  quietUntil: number;
}

export function initialScale(): ScaleState {
  return { hotSince: null, coldSince: null, quietUntil: 0 };
}

export interface ScaleInput {
  readonly now: number;
  readonly target: number;
  readonly min: number;
  readonly max: number;
  /** Mean event-loop utilization of the serving workers, 0..1; null without reports. */
  readonly load: number | null;
}

/** The next target, and the state to carry to the next call. Pure. */
export function scale(s: ScaleState, i: ScaleInput): { target: number; state: ScaleState } {
  const hold = (state: ScaleState) => ({ target: i.target, state });
  if (i.min >= i.max || i.load === null || i.now < s.quietUntil) return hold({ ...s, hotSince: null, coldSince: null });
  const hot = i.load >= HIGH && i.target < i.max;
  const cold = i.target > i.min && (i.target === 1 ? i.load === 0 : (i.load * i.target) / (i.target - 1) < MID);
  const next: ScaleState = {
    hotSince: hot ? (s.hotSince ?? i.now) : null,
    coldSince: cold ? (s.coldSince ?? i.now) : null,
    quietUntil: s.quietUntil,
  };
  if (next.hotSince !== null && i.now - next.hotSince >= UP_AFTER) {
    return { target: i.target + 1, state: { hotSince: null, coldSince: null, quietUntil: i.now + COOLDOWN } };
  }
  if (next.coldSince !== null && i.now - next.coldSince >= DOWN_AFTER) {
    return { target: i.target - 1, state: { hotSince: null, coldSince: null, quietUntil: i.now + COOLDOWN } };
  }
  return hold(next);
}
