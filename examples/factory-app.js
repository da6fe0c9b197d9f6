// An app that needs setup before it serves: export an async factory that
// returns the request listener. A factory that throws stops drover at boot
// with its error, instead of a respawn loop.
export default async function createApp() {
  const greeting = await Promise.resolve('Hello from a factory');
  return (req, res) => res.end(`${greeting} (worker ${process.pid})\n`);
}
