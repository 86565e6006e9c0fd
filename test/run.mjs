#!/usr/bin/env node
// `npm test`'s runner: vitest with its normal output, then one plain summary line
// ("N passed, N failed, N skipped") that CI systems read, and vitest's exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'cam-test-'));
const out = join(dir, 'vitest.json');
const r = spawnSync(
  process.execPath,
  [
    'node_modules/vitest/vitest.mjs',
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${out}`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit', env: process.env },
);
let summary = 'test run produced no report';
try {
  const j = JSON.parse(readFileSync(out, 'utf8'));
  const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  summary = `${j.numPassedTests} passed, ${j.numFailedTests} failed, ${skipped} skipped`;
} catch {}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${summary}`);
process.exit(r.status ?? 1);
