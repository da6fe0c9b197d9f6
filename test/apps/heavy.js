// An app that holds 96 MiB as soon as it is loaded (a big table, a model): a
// worker is over a max_worker_rss of 64M before it serves anything.
const ballast = Buffer.alloc(96 * 1024 * 1024, 1);

export default function heavy(req, res) {
  res.end(`${process.pid} ${ballast.length}`);
}
