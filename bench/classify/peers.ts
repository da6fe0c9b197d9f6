// bench/classify's classifiers: drover's (route key + predictor), and the
// two peers measured in the same run. Each answers "is this request slow?"
// from (method, raw URL) - key, lookup and decision - and each learns from
// the same training observations, so that all three reach the same decisions
// (run.ts checks it before timing).
import FindMyWay from 'find-my-way';
import { Predictor } from '../../src/runtime/lanes/predictor.js';
import { routeKey } from '../../src/runtime/lanes/route-key.js';
import { ROUTES } from './urls.js';

export const THRESHOLD_MS = 1000;
export const ALPHA = 0.3;

export interface Classifier {
  classify(method: string, url: string): boolean;
  observe(method: string, url: string, ms: number): void;
}

/** drover: routeKey (one pass, no allocation) + Predictor (typed-array table). */
export function drover(): Classifier & { predictor: Predictor } {
  const predictor = new Predictor({ slowThresholdMs: THRESHOLD_MS, alpha: ALPHA });
  return {
    predictor,
    classify: (method, url) => predictor.predict(routeKey(method, url)),
    observe: (method, url, ms) => predictor.observe(routeKey(method, url), ms),
  };
}

/** Per-route state kept by the peers: the same EWMA and threshold rules as the predictor. */
export interface Stat {
  avg: number;
  slow: boolean;
  n: number;
}

function update(s: Stat, ms: number): void {
  s.avg = s.n === 0 ? ms : ALPHA * ms + (1 - ALPHA) * s.avg;
  s.n++;
  if (ms > THRESHOLD_MS) s.slow = true;
  else if (s.slow && s.avg < THRESHOLD_MS) s.slow = false;
}

/**
 * find-my-way's find(): the routes' patterns registered, each with a Stat as
 * its store; the decision is the matched route's flag. find-my-way strips
 * the query string itself, and returns the route's params (allocated).
 */
export function findMyWay(): Classifier & { router: ReturnType<typeof FindMyWay> } {
  const router = FindMyWay({ ignoreTrailingSlash: true, ignoreDuplicateSlashes: true });
  const noop = () => {};
  for (const r of ROUTES) router.on(r.method as 'GET', r.pattern, noop, { avg: 0, slow: false, n: 0 } satisfies Stat);
  return {
    router,
    classify(method, url) {
      const found = router.find(method as 'GET', url);
      return found !== null && (found.store as Stat).slow;
    },
    observe(method, url, ms) {
      const found = router.find(method as 'GET', url);
      if (found !== null) update(found.store as Stat, ms);
    },
  };
}

/**
 * The usual hand-written normaliser: cut the query string, fold ids with a
 * regex, `METHOD path` as a Map key to a Stat.
 */
const IDS = /\/(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})(?=\/|$)/gi;

export function normalize(method: string, url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return method + ' ' + path.replace(IDS, '/:id');
}

export function regexMap(): Classifier & { map: Map<string, Stat> } {
  const map = new Map<string, Stat>();
  return {
    map,
    classify(method, url) {
      const s = map.get(normalize(method, url));
      return s !== undefined && s.slow;
    },
    observe(method, url, ms) {
      const key = normalize(method, url);
      let s = map.get(key);
      if (s === undefined) map.set(key, (s = { avg: 0, slow: false, n: 0 }));
      update(s, ms);
    },
  };
}
