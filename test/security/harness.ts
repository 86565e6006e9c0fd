/**
 * A full kernel (boot(): gRPC, trusted loader, security syscalls, signed system components) on a free
 * loopback port with its own data dir, optionally on a private swtpm. Used by the issue-5 acceptance tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { loadConfig } from '../../host/src/server/config.js';
import { type Swtpm, startSwtpm } from '../harness/swtpm.js';

export interface SecureKernel {
  kernel: BootedKernel;
  dataDir: string;
  swtpm: Swtpm | undefined;
  stop(): Promise<void>;
}

/**
 * `tpm: 'swtpm'` starts a private swtpm and resolves null when swtpm is not installed (startSwtpm throws
 * instead under CI=true); `tpm: 'none'` boots in the explicit no-TPM mode.
 */
export async function startSecureKernel(opts: {
  tpm: 'swtpm' | 'none';
  dataDir?: string;
}): Promise<SecureKernel | null> {
  let swtpm: Swtpm | undefined;
  if (opts.tpm === 'swtpm') {
    const s = await startSwtpm();
    if (!s) return null;
    swtpm = s;
  }
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'cam-security-test-'));
  const config = loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: swtpm ? swtpm.tcti : 'none' }, {});
  let kernel: BootedKernel;
  try {
    // Guest log lines are not what these tests look at.
    kernel = await boot(config, { log: () => {} });
  } catch (e) {
    await swtpm?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    kernel,
    dataDir,
    swtpm,
    stop() {
      stopping ??= (async () => {
        await kernel.stop();
        await swtpm?.stop();
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/**
 * Whether to run the TPM-backed suites. Absent swtpm skips them with a message, except under CI=true,
 * where they run and fail in startSwtpm().
 */
export function runTpmSuites(): boolean {
  const r = spawnSync('swtpm', ['--version'], { stdio: 'ignore' });
  if (r.error === undefined && r.status === 0) return true;
  if (process.env.CI === 'true') return true;
  console.warn(
    'swtpm is not installed (apt-get install -y swtpm swtpm-tools): skipping the TPM acceptance tests',
  );
  return false;
}
