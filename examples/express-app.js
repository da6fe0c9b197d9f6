// An Express app under drover: the app itself is the request listener.
//   npx drover examples/express-app.js --workers 2
import express from 'express';

const app = express();
app.get('/', (req, res) => res.send(`Hello from Express in worker ${process.pid}\n`));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, worker: process.pid }));

export default app;
