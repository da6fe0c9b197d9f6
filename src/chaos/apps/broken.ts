// A chaos app that cannot load: a reload naming it must fail and change nothing.
throw new Error('this app is broken on purpose (chaos: hup-broken-app)');
