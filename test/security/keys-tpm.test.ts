/**
 * `cam-os keys generate` seeds publisher keys from the TPM's RNG when a TPM is configured (--tpm or
 * CAM_OS_TPM), says which RNG it used, and refuses — writing nothing — when the named TPM cannot be opened.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Swtpm } from '../harness/swtpm.js';
import { startSwtpm } from '../harness/swtpm.js';
import { camOs } from './cli.js';
import { runTpmSuites } from './harness.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cam-keys-tpm-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function expectKeyFile(file: string, keyId: string): Promise<void> {
  const secret = JSON.parse(readFileSync(file, 'utf8')) as { format: string };
  expect(secret.format).toBe('cam-os/publisher-secret-key@1');
  const shown = await camOs(['keys', 'show', file]);
  expect(shown.stdout.trim()).toBe(keyId);
}

describe.skipIf(!runTpmSuites())('keys generate with a TPM (swtpm)', () => {
  let swtpm: Swtpm;
  beforeAll(async () => {
    const s = await startSwtpm();
    if (!s) throw new Error('swtpm vanished between the check and the start');
    swtpm = s;
  });
  afterAll(async () => {
    await swtpm?.stop();
  });

  it('--tpm <tcti> seeds the key from the TPM RNG and says so', async () => {
    const file = join(dir, 'flag.json');
    const r = await camOs(['keys', 'generate', '--out', file, '--tpm', swtpm.tcti], { CAM_OS_TPM: 'none' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /^generated key ([0-9a-f]+) in (.+), seeded by the TPM RNG \((.+)\) \(keep it secret\)$/.exec(
      r.stdout.trim(),
    );
    expect(m, r.stdout).not.toBeNull();
    expect(m![2]).toBe(file);
    expect(m![3]).toBe(swtpm.tcti);
    await expectKeyFile(file, m![1]!);
  });

  it('CAM_OS_TPM selects the TPM too; --json reports rng: tpm; two keys differ', async () => {
    const ids: string[] = [];
    for (const name of ['env-a.json', 'env-b.json']) {
      const file = join(dir, name);
      const r = await camOs(['keys', 'generate', '--out', file, '--json'], { CAM_OS_TPM: swtpm.tcti });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { keyId: string; file: string; rng: string; tcti: string };
      expect(out).toMatchObject({ file, rng: 'tpm', tcti: swtpm.tcti });
      await expectKeyFile(file, out.keyId);
      ids.push(out.keyId);
    }
    expect(ids[0]).not.toBe(ids[1]);
  });
});

describe('keys generate without a TPM', () => {
  it('CAM_OS_TPM=none uses the operating system RNG and says so', async () => {
    const file = join(dir, 'os.json');
    const r = await camOs(['keys', 'generate', '--out', file], { CAM_OS_TPM: 'none' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/seeded by the operating system RNG/);
    const id = /generated key ([0-9a-f]+)/.exec(r.stdout)![1]!;
    await expectKeyFile(file, id);
  });

  it('a named TPM that cannot be opened is an error, not a silent fallback, and writes no key', async () => {
    const file = join(dir, 'never.json');
    // Port 1 on loopback: nothing listens there.
    const r = await camOs(['keys', 'generate', '--out', file, '--tpm', 'swtpm:host=127.0.0.1,port=1']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(`${r.stderr}`).toMatch(/TPM|tpm/);
    expect(existsSync(file)).toBe(false);
  });
});
