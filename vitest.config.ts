import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-OS tests start node processes; two cores are shared by everything.
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
