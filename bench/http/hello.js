// The hello-world app of bench/http, served unchanged by all three targets:
// drover loads it as its app module, and bench/http/server.ts (node:cluster
// and the single node:http process) imports its default export. The same
// handler as examples/hello.js: it names the process that answered, which
// the load generator uses to count connections per worker.
export default function hello(req, res) {
  res.setHeader('content-type', 'text/plain');
  res.end(`Hello from worker ${process.pid}\n`);
}
