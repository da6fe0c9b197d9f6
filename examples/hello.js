// The smallest drover app: a plain node:http request listener.
//   npx drover examples/hello.js
export default function hello(req, res) {
  res.setHeader('content-type', 'text/plain');
  res.end(`Hello from worker ${process.pid}\n`);
}
