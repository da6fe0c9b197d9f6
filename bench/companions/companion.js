// A cooperative Node companion for bench/companions: it exits with code 0 on
// TERM, as a queue consumer that finishes nothing in particular would. It
// prints one line once its handler is installed, so a bare-Node measurement
// can wait for that before it sends TERM.
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
process.stdout.write(`companion ${process.pid} ready\n`);
