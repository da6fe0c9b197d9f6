// An Express app under drover: the app itself is the request listener.
//   npx drover examples/express-app.js --workers 2
//   npx drover --config examples/express.config.js     (lanes, a companion)
//   npx drover sim --config examples/express.config.js --seeds 20
// It keeps time the way apps do, with Node's own timers and clock: under
// drover sim those run on each worker's virtual clock, so a run replays
// from its seed.
import express from 'express';

const app = express();
app.use(express.json({ limit: '16kb' }));

// A cache refreshed in the background, as apps keep config or feature flags.
let cache = { refreshed: Date.now(), hits: 0 };
setInterval(() => (cache = { refreshed: Date.now(), hits: 0 }), 1000).unref();

app.get('/', (req, res) => res.send(`Hello from Express in worker ${process.pid}\n`));
app.get('/users/:id', (req, res) => {
  cache.hits++;
  res.json({ id: req.params.id, worker: process.pid, cacheAgeMs: Date.now() - cache.refreshed });
});
app.post('/users', (req, res) => res.status(201).json({ created: req.body?.name ?? null }));
// Slow: waits on a timer, as a call to another service would. The lanes learn it is slow.
app.get('/report', (req, res) => {
  const t0 = performance.now();
  setTimeout(() => res.json({ report: 'ok', tookMs: Math.round(performance.now() - t0) }), 300);
});

export default app;
