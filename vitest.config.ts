import { defineConfig } from 'vitest/config';

// Tests of the real OS: they start processes, send signals, wait on sockets
// and clocks, and some of their waits assume the machine is theirs (two such
// files side by side kept missing a deadline on 2 cores). They run one file
// at a time, after the rest.
const REAL = [
  'test/**/*.real.test.ts',
  'test/conformance/**/*.test.ts',
  'test/os/**/*.test.ts',
  'test/deploy/**/*.test.ts',
  'test/package/**/*.test.ts',
  'test/chaos/sim-cli.test.ts',
  'test/config/load.test.ts',
  'test/runtime/metrics.test.ts',
];

export default defineConfig({
  test: {
    // The rest (the simulated kernel, pure code) computes on virtual time
    // and runs two files at a time. A later groupOrder starts when the
    // earlier is done; two groups may not share one count of workers.
    projects: [
      { extends: true, test: { name: 'sim', include: ['test/**/*.test.ts'], exclude: REAL, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'real', include: REAL, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
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
