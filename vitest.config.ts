import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'host/src/**/*.test.ts',
      'sdk/src/**/*.test.ts',
      'marketplace/src/**/*.test.ts',
      'wit/**/*.test.ts',
      'test/**/*.test.ts',
      'drivers/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
