// drover's config for examples/express-app.js, with the request mix that
// `drover sim --config examples/express.config.js` sends it.
export default {
  app: 'examples/express-app.js',
  workers: 2,
  lanes: true,
  slow_workers: 1,
  slow_threshold: 0.1,
  companions: [{ name: 'queue-worker', module: 'examples/companions/queue-worker.js', stop_timeout: 5 }],
  sim: {
    rate: 30,
    duration: 30,
    requests: [
      { path: '/', weight: 4 },
      { path: '/users/7', weight: 4 },
      { path: '/report', weight: 1 },
      { method: 'POST', path: '/users', body: { name: 'ada' }, weight: 1 },
    ],
  },
};
