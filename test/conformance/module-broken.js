// A module that cannot load: for the simulator's mounts (an import error names the simulated path).
throw new Error('broken on purpose');
