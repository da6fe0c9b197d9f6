// The HTTP app of bench/companions: drover needs one to run, and the
// benchmark never sends it a request (it measures the companion manager).
export default function app(req, res) {
  res.setHeader('content-type', 'text/plain');
  res.end('ok\n');
}
