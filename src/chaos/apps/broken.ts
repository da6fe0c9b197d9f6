// A chaos app that cannot load: a reload naming it must fail and change nothing.
// Its error has no frames: they would name this file as the host runs it (broken.ts from the
// sources, broken.js built, with other lines and columns), and a seed's trace counts the bytes
// of what drover logs about it.
const e = new Error('this app is broken on purpose (chaos: hup-broken-app)');
e.stack = `Error: ${e.message}`;
throw e;
