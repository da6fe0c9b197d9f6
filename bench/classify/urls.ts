// bench/classify's request sets: realistic URLs of a REST API with a
// storefront, generated deterministically from a seed. Every URL comes from
// one of ROUTES, whose `pattern` is what find-my-way registers (and what the
// other classifiers must fold the URL to, for the same decision).

export { prng } from '../lib/random.js';
import { prng } from '../lib/random.js';

type Rnd = () => number;
const int = (r: Rnd, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const hex = (r: Rnd, n: number) => {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(r() * 16)];
  return s;
};
const num = (r: Rnd) => String(int(r, 1, r() < 0.7 ? 99_999 : 9_999_999));
const uuid = (r: Rnd) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-${pick(r, ['8', '9', 'a', 'b'])}${hex(r, 3)}-${hex(r, 12)}`;
const oid = (r: Rnd) => hex(r, 24); // a MongoDB ObjectId
const sha = (r: Rnd) => hex(r, 40);
const WORDS = ['shoes', 'red', 'linen shirt', 'garden', 'lamp', 'oak table', 'kettle', 'socks', 'bike', 'tent', 'mug', 'desk', 'sofa', 'jacket', 'rug'];
const q = (r: Rnd) => encodeURIComponent(pick(r, WORDS)).replace(/%20/g, '+');
// A finite set of static assets, as a build produces them.
const ASSETS = (() => {
  const r = prng(99);
  const out: string[] = [];
  for (const name of ['app', 'vendor', 'runtime', 'checkout', 'account', 'search']) {
    out.push(`/static/js/${name}.${hex(r, 8)}.js`, `/static/js/${name}.${hex(r, 8)}.js.map`, `/static/css/${name}.${hex(r, 8)}.css`);
  }
  for (let i = 0; i < 40; i++) out.push(`/static/img/product-${i}.${pick(r, ['png', 'jpg', 'webp'])}`);
  out.push('/favicon.ico', '/robots.txt', '/static/fonts/inter.woff2');
  return out;
})();

export interface Route {
  method: string;
  /** find-my-way's pattern; `:x` parameters, a trailing `*` wildcard. */
  pattern: string;
  /** Relative frequency in the traffic. */
  weight: number;
  /** Slow in the bench's training (reports, exports, search): the decision every classifier must reach. */
  slow: boolean;
  url(r: Rnd): string;
}

export const ROUTES: readonly Route[] = [
  { method: 'GET', pattern: '/', weight: 3, slow: false, url: (r) => (r() < 0.3 ? `/?utm_source=${pick(r, ['news', 'ad', 'mail'])}&utm_campaign=${int(r, 1, 40)}` : '/') },
  { method: 'GET', pattern: '/health', weight: 2, slow: false, url: () => '/health' },
  { method: 'GET', pattern: '/static/*', weight: 10, slow: false, url: (r) => pick(r, ASSETS.filter((a) => a.startsWith('/static/'))) + (r() < 0.2 ? `?v=${hex(r, 6)}` : '') },
  { method: 'GET', pattern: '/favicon.ico', weight: 1, slow: false, url: () => '/favicon.ico' },
  { method: 'GET', pattern: '/api/v1/users/:id', weight: 8, slow: false, url: (r) => `/api/v1/users/${num(r)}` },
  { method: 'PATCH', pattern: '/api/v1/users/:id', weight: 1, slow: false, url: (r) => `/api/v1/users/${num(r)}` },
  { method: 'GET', pattern: '/api/v1/users/:id/orders', weight: 5, slow: false, url: (r) => `/api/v1/users/${num(r)}/orders?page=${int(r, 1, 20)}&limit=${pick(r, [10, 25, 50])}` },
  { method: 'GET', pattern: '/api/v1/users/:id/orders/:orderId', weight: 4, slow: false, url: (r) => `/api/v1/users/${num(r)}/orders/${uuid(r)}` },
  { method: 'GET', pattern: '/api/v1/orders/:id', weight: 6, slow: false, url: (r) => `/api/v1/orders/${uuid(r)}` },
  { method: 'PUT', pattern: '/api/v1/orders/:id/items/:itemId', weight: 2, slow: false, url: (r) => `/api/v1/orders/${uuid(r)}/items/${num(r)}` },
  { method: 'GET', pattern: '/api/v1/orders/:id/invoice.pdf', weight: 1, slow: true, url: (r) => `/api/v1/orders/${uuid(r)}/invoice.pdf` },
  { method: 'GET', pattern: '/api/v1/products/:id', weight: 8, slow: false, url: (r) => `/api/v1/products/${oid(r)}` },
  { method: 'GET', pattern: '/api/v1/products/:id/reviews', weight: 3, slow: false, url: (r) => `/api/v1/products/${oid(r)}/reviews?sort=${pick(r, ['new', 'top'])}&page=${int(r, 1, 9)}` },
  { method: 'POST', pattern: '/api/v1/products/:id/reviews', weight: 1, slow: false, url: (r) => `/api/v1/products/${oid(r)}/reviews` },
  { method: 'GET', pattern: '/api/v1/search', weight: 4, slow: true, url: (r) => `/api/v1/search?q=${q(r)}&page=${int(r, 1, 5)}${r() < 0.3 ? `&min_price=${int(r, 1, 500)}` : ''}` },
  { method: 'GET', pattern: '/api/v2/teams/:team/projects/:project/issues/:issue', weight: 3, slow: false, url: (r) => `/api/v2/teams/${num(r)}/projects/${num(r)}/issues/${num(r)}` },
  { method: 'GET', pattern: '/api/v2/teams/:team/projects/:project/issues/:issue/comments', weight: 2, slow: false, url: (r) => `/api/v2/teams/${num(r)}/projects/${num(r)}/issues/${num(r)}/comments?after=${num(r)}` },
  { method: 'GET', pattern: '/repos/:id/commits/:sha', weight: 2, slow: false, url: (r) => `/repos/${num(r)}/commits/${sha(r)}` },
  { method: 'POST', pattern: '/api/v1/sessions', weight: 1, slow: false, url: () => '/api/v1/sessions' },
  { method: 'DELETE', pattern: '/api/v1/sessions/:id', weight: 1, slow: false, url: (r) => `/api/v1/sessions/${uuid(r)}` },
  { method: 'GET', pattern: '/reports/:year/:month', weight: 1, slow: true, url: (r) => `/reports/${int(r, 2019, 2026)}/${int(r, 1, 12)}?format=${pick(r, ['csv', 'xlsx'])}` },
  { method: 'POST', pattern: '/api/v1/exports', weight: 1, slow: true, url: () => '/api/v1/exports' },
];

/**
 * The URL as node:http hands it over: a flat one-byte string made from the
 * parser's bytes. The generator's template literals make ropes (V8 cons
 * strings), which every classifier would read more slowly than a server's.
 */
function flat(url: string): string {
  return Buffer.from(url, 'latin1').toString('latin1');
}

export interface RequestSet {
  /** Distinct URLs in the set. */
  distinct: number;
  methods: string[];
  urls: string[];
  /** Index into ROUTES of each request. */
  route: number[];
}

/**
 * `distinct` requests with distinct (method, URL) pairs, routes drawn by
 * weight, in random order. Routes whose URLs can only take a few values
 * (`/health`, `/static/...`) stop contributing once those are all in.
 */
export function requestSet(distinct: number, seed: number): RequestSet {
  const r = prng(seed);
  const total = ROUTES.reduce((s, x) => s + x.weight, 0);
  const seen = new Set<string>();
  const set: RequestSet = { distinct, methods: [], urls: [], route: [] };
  let misses = 0;
  while (set.urls.length < distinct) {
    let w = r() * total;
    let i = 0;
    while (w >= ROUTES[i]!.weight) w -= ROUTES[i++]!.weight;
    const route = ROUTES[i]!;
    const url = route.url(r);
    const id = `${route.method} ${url}`;
    if (seen.has(id)) {
      if (++misses > 100 * distinct) throw new Error('request set: not enough distinct URLs');
      continue;
    }
    seen.add(id);
    set.methods.push(route.method);
    set.urls.push(flat(url));
    set.route.push(i);
  }
  return set;
}
