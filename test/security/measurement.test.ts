/**
 * Issue 5 acceptance: measured loading on a full kernel with a real TPM (swtpm). The system components and
 * N more signed components load measured; the measurement log replays to PCR 23; `cam-os attest` (the CLI,
 * as a child process) verifies the kernel's quote, and refuses an attestation whose event log was tampered.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_COMPONENTS } from '../../host/src/server/boot.js';
import { buildFixture } from '../../host/src/testing/fixtures.js';
import { readEventLog, replay, verifyQuote } from '../../host/src/tpm/index.js';
import { publicKeyOf } from '../../host/src/trust/keys.js';
import { signAndAttach } from '../../host/src/trust/sign.js';
import { sha256Digest, testKeyPair, testManifestBody } from '../../host/src/trust/testing.js';
import { TrustStore } from '../../host/src/trust/trust-store.js';
import { AdminClient } from '../../sdk/src/admin-client.js';
import { camOs } from './cli.js';
import { runTpmSuites, type SecureKernel, startSecureKernel } from './harness.js';

const EXTRA = 5;
const publisher = testKeyPair('security-measurement-publisher');

/** A custom section appended at the component's top level: a valid component with its own digest. */
function withCustomSection(bytes: Uint8Array, tag: string): Uint8Array {
  const name = Buffer.from('cam-os-test');
  const payload = Buffer.from(tag);
  const body = Buffer.concat([Buffer.from([name.length]), name, payload]);
  if (body.length > 127) throw new Error('tag too long for a one-byte LEB128 size');
  return Buffer.concat([bytes, Buffer.from([0x00, body.length]), body]);
}

interface AttestFile {
  pcr: number;
  attest: string;
  signature: string;
  publicKeyPem: string;
  eventLog: string;
  nonce: string;
}

describe.skipIf(!runTpmSuites())('measured loading and attestation with a real TPM (swtpm)', () => {
  let sk: SecureKernel;
  let admin: AdminClient;
  let env: Record<string, string>;
  const loaded: Array<{ name: string; manifestDigest: string }> = [];

  beforeAll(async () => {
    const started = await startSecureKernel({ tpm: 'swtpm' });
    if (!started) throw new Error('swtpm vanished between the check and the start');
    sk = started;
    env = { CAM_OS_DATA_DIR: sk.dataDir, CAM_OS_ADDRESS: '' };
    const store = await TrustStore.open(join(sk.dataDir, 'trust'));
    await store.add(publicKeyOf(publisher), { label: 'measurement test publisher' });
    admin = new AdminClient(sk.kernel.address);
    const chaos = await buildFixture('chaos');
    for (let i = 0; i < EXTRA; i++) {
      const bytes = withCustomSection(chaos, `copy ${i}`);
      const name = `chaos-${'abcdefghij'[i]}`;
      const manifest = await signAndAttach(
        testManifestBody(publisher.keyId, bytes, {
          name,
          version: `1.${i}.0`,
          world: 'test:fixtures/chaos-world',
          capabilities: { imports: ['wasi:cli/exit@0.2.3'], memoryMaxPages: 32, deadlineMs: 500 },
          dependencies: [],
        }),
        publisher,
      );
      const json = JSON.stringify(manifest);
      const info = await admin.load(bytes, json);
      expect(info.name).toBe(name);
      expect(info.digest).toBe(sha256Digest(bytes));
      loaded.push({ name, manifestDigest: createHash('sha256').update(json).digest('hex') });
    }
  }, 180_000);

  afterAll(async () => {
    admin?.close();
    await sk?.stop();
  });

  it('measured every system component and every loaded component, in load order', async () => {
    expect(sk.kernel.warnings.filter((w) => /system component/.test(w))).toEqual([]);
    const events = await readEventLog(join(sk.dataDir, 'measurements.log'));
    expect(events.map((e) => e.name)).toEqual([...SYSTEM_COMPONENTS, ...loaded.map((l) => l.name)]);
    for (const [i, l] of loaded.entries()) {
      // What is extended is the signed manifest's digest; it names the component's digest in turn.
      expect(events[SYSTEM_COMPONENTS.length + i]!.digest).toBe(l.manifestDigest);
    }
    expect(new Set(events.map((e) => e.digest)).size).toBe(events.length);
    for (const c of await admin.list()) expect(c.labels.measured, c.name).toMatch(/PCR 23/);
  });

  it('the measurement log replays to the TPM’s PCR 23, and the quote over it verifies', async () => {
    const events = await readEventLog(join(sk.dataDir, 'measurements.log'));
    const nonce = Buffer.from('measurement-acceptance-nonce-0001');
    const a = await admin.attest(nonce);
    expect(a.pcr).toBe(23);
    expect(Buffer.from(a.pcr_value).toString('hex')).toBe(replay(events).toString('hex'));
    expect(replay(events).equals(Buffer.alloc(32))).toBe(false);
    const v = verifyQuote({
      quote: { attest: a.attest, signature: a.signature },
      publicKey: a.public_key_pem,
      nonce,
      log: { pcr: 23, events },
    });
    expect(v).toMatchObject({ ok: true });
  });

  it('`cam-os attest --out` exits 0 with VERIFIED; tampered event logs are NOT VERIFIED (exit 1)', async () => {
    const file = join(sk.dataDir, 'attestation.json');
    const r = await camOs(['attest', '--out', file], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^VERIFIED: PCR 23 = [0-9a-f]{64} replayed from ${3 + EXTRA} events`),
    );
    const good = JSON.parse(readFileSync(file, 'utf8')) as AttestFile;

    const ok = await camOs(['attest', '--verify', file], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^VERIFIED/);

    const lines = good.eventLog.trim().split('\n');
    const flip = (hex: string) => `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;
    const changedDigest = lines.map((l, i) => {
      if (i !== 4) return l;
      const e = JSON.parse(l) as { digest: string };
      return JSON.stringify({ ...e, digest: flip(e.digest) });
    });
    // Dropping an event and renumbering the rest keeps the log well-formed: only the PCR can tell.
    const dropped = lines
      .filter((_, i) => i !== 2)
      .map((l, i) => JSON.stringify({ ...(JSON.parse(l) as object), index: i }));
    const droppedLast = lines.slice(0, -1);
    for (const [what, log] of [
      ['a changed digest', changedDigest],
      ['a dropped event (renumbered)', dropped],
      ['the last event dropped', droppedLast],
    ] as const) {
      const bad = join(sk.dataDir, 'tampered.json');
      writeFileSync(bad, JSON.stringify({ ...good, eventLog: `${log.join('\n')}\n` }));
      const t = await camOs(['attest', '--verify', bad], env);
      expect(t.code, `${what}: ${t.stdout}${t.stderr}`).toBe(1);
      expect(t.stdout, what).toMatch(/^NOT VERIFIED/);
      expect(t.stdout, what).toMatch(/reason: /);
    }
  });
});
