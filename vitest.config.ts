import { defineConfig } from 'vitest/config';

const ALONE = 'test/deploy/deploy.test.ts';

export default defineConfig({
  test: {
    // One file runs on its own, after the rest (projects of a later groupOrder
    // start when the earlier are done): drover as PID 1 in a PID namespace,
    // whose orphaned-zombie check misses its zombie when another file loads
    // the machine beside it.
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: [ALONE], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'alone', include: [ALONE], sequence: { groupOrder: 1 } } },
    ],
    // Real-OS tests start node processes; two cores are shared by everything.
    // Two files at a time all the same: most real-OS tests wait on processes
    // more than they compute (the suite takes 400 s so, 600 s one at a time),
    // and every test is written to pass on a loaded machine.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ['test/global-setup.ts'],
    // Code of a simulated process that the kernel already killed can still
    // run on the host (a nextTick Node queued before the kill); its Os calls
    // throw ExitSignal to unwind it. That is the kernel working, not an error.
    onUnhandledError: (error) => (error.name === 'ExitSignal' ? false : undefined),
    // The JSON report feeds .ci/run's one-line summary.
    reporters: ['default', ['json', { outputFile: '.tmp/vitest-report.json' }]],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'html'],
      // Spawned processes (workers, companions, the Node adapter's children)
      // are counted by c8 in `npm run test:coverage`, into coverage/processes.
      reportsDirectory: 'coverage/in-process',
    },
  },
});
