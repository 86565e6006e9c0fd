/**
 * End to end on a kernel started the way `cam-os up` starts it (boot()): the auth layer's throttling
 * decisions land in the kernel's audit log, and `cam-os ask` answers why an agent was throttled from the
 * log the kernel wrote.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { loadConfig } from '../../host/src/server/config.js';
import { SpecClient } from '../grpc/spec-client.js';
import { camOs } from '../security/cli.js';

const RESOURCE_EXHAUSTED = 8;
const dataDir = mkdtempSync(join(tmpdir(), 'cam-policy-boot-'));
let k: BootedKernel | undefined;

afterAll(async () => {
  await k?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('audit trail of a booted kernel', () => {
  it('records throttling in the audit log, and `cam-os ask` explains it', async () => {
    mkdirSync(join(dataDir, 'auth'), { recursive: true });
    writeFileSync(
      join(dataDir, 'auth', 'auth.json'),
      JSON.stringify({ rateLimit: { perSecond: 1, burst: 3 } }),
    );
    k = await boot(loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none', http: 'off' }), {
      systemComponents: false,
      log: () => {},
    });
    const c = new SpecClient(k.address);
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const o = await c.call('EmitMetric', { name: 'm', value: i, caller_id: 'agent-b' });
      codes.push(o.ok ? 0 : o.code);
    }
    c.close();
    expect(codes.filter((x) => x === RESOURCE_EXHAUSTED).length).toBeGreaterThan(0);
    const [t] = k.audit.recent(1, { kind: 'throttle' });
    expect(t).toMatchObject({ actor: 'agent-b', action: 'EmitMetric', outcome: 'rate-limited' });
    expect(t?.cause).toMatch(/rate limit of 1 calls\/s \(burst 3\) exceeded/);
    await k.stop();
    k = undefined;

    const r = await camOs(['ask', 'why was agent-b throttled today?', '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Because rate limit of 1 calls\/s \(burst 3\) exceeded\./);
    expect(r.stdout).toMatch(/'agent-b' was throttled on EmitMetric/);
    const v = await camOs(['audit', 'verify', '--data-dir', dataDir]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toMatch(/^audit log OK: \d+ entries, \d+ signed checkpoints/);
  });
});
