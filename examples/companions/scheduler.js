// A companion given as a command: any program works; this one is Node.
setInterval(() => console.log(`scheduler tick at ${new Date().toISOString()}`), 5000);
process.on('SIGTERM', () => process.exit(0));
