// Runs the built CLI (sdk/dist/cli/main.js) as a child process, the way an operator does.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../grpc/harness.js';

export const CLI = join(ROOT, 'sdk', 'dist', 'cli', 'main.js');

export function camOs(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({
          code,
          stdout,
          stderr: `${stderr}${err && typeof err.code !== 'number' ? err.message : ''}`,
        });
      },
    );
  });
}
