/**
 * The trusted loader end to end: real signed packages (ML-DSA-65 + Ed25519 via liboqs), real components,
 * and — when swtpm is installed — a real TPM: every load extends PCR 23, the PCR equals the replay of the
 * event log, and a quote over it verifies.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Swtpm, startSwtpm } from '../../../test/harness/swtpm.js';
import { sanitize } from '../errors.js';
import { buildFixture } from '../testing/fixtures.js';
import { MeasurementLog, openTpm, replay, type Tpm, verifyQuote } from '../tpm/index.js';
import { publicKeyOf } from '../trust/keys.js';
import type { ManifestBody } from '../trust/manifest.js';
import { signAndAttach } from '../trust/sign.js';
import { testKeyPair, testManifestBody } from '../trust/testing.js';
import { TrustStore } from '../trust/trust-store.js';
import { Kernel } from './kernel.js';
import { TrustedLoader } from './loader.js';

const CHAOS = 'test:fixtures/chaos@0.1.0';
const POLICY = { allowedImports: ['wasi:cli/*', 'test:fixtures/*', 'cam:kernel/*'] };

const publisher = testKeyPair('loader-publisher');
const stranger = testKeyPair('loader-stranger');
let dir: string;
let store: TrustStore;
let chaos: Uint8Array;

function body(
  bytes: Uint8Array,
  overrides: Partial<ManifestBody> = {},
  keyId = publisher.keyId,
): ManifestBody {
  return testManifestBody(keyId, bytes, {
    name: 'chaos',
    version: '1.0.0',
    world: 'test:fixtures/chaos-world',
    capabilities: { imports: ['wasi:cli/exit@0.2.3'], memoryMaxPages: 32, deadlineMs: 500 },
    dependencies: [],
    ...overrides,
  });
}

async function signed(
  bytes: Uint8Array,
  overrides: Partial<ManifestBody> = {},
  pair = publisher,
): Promise<string> {
  return JSON.stringify(await signAndAttach(body(bytes, overrides, pair.keyId), pair));
}

function newKernel(): Kernel {
  return new Kernel({ dataDir: mkdtempSync(join(dir, 'k-')) });
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; status: string; message: string }> {
  const e = await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: unknown) => err,
  );
  const k = sanitize(e);
  return { code: k.code, status: k.status, message: k.message };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cam-loader-test-'));
  store = await TrustStore.open(join(dir, 'trust'));
  await store.add(publicKeyOf(publisher), { label: 'test publisher' });
  chaos = await buildFixture('chaos');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('trusted loader (no TPM)', () => {
  it('loads a signed component and labels it verified', async () => {
    const kernel = newKernel();
    const loader = new TrustedLoader({ kernel, trustStore: store, policy: POLICY });
    const info = await loader.load(chaos, await signed(chaos));
    expect(info.labels.trust).toContain('verified');
    expect(info.labels.measured).toBe('no TPM');
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
    await kernel.stop();
  });

  it('refuses unsigned, unknown-publisher, tampered, over-privileged and downgraded packages; nothing is loaded', async () => {
    const kernel = newKernel();
    const loader = new TrustedLoader({ kernel, trustStore: store, policy: POLICY });
    const unsigned = JSON.stringify(body(chaos));
    expect((await refusal(loader.load(chaos, unsigned))).code).toBe('KERNEL_ERR_TRUST_UNSIGNED');
    expect((await refusal(loader.load(chaos, await signed(chaos, {}, stranger)))).code).toBe(
      'KERNEL_ERR_TRUST_UNKNOWN_PUBLISHER',
    );
    const tampered = Uint8Array.from(chaos);
    tampered[tampered.length - 5]! ^= 1;
    expect((await refusal(loader.load(tampered, await signed(chaos)))).code).toBe(
      'KERNEL_ERR_TRUST_DIGEST_MISMATCH',
    );
    const forged = JSON.parse(await signed(chaos)) as { version: string };
    forged.version = '9.9.9';
    expect((await refusal(loader.load(chaos, JSON.stringify(forged)))).code).toBe(
      'KERNEL_ERR_TRUST_BAD_SIGNATURE',
    );
    const greedy = await signed(chaos, {
      capabilities: { imports: ['wasi:sockets/tcp@0.2.3'], memoryMaxPages: 32 },
    });
    const r = await refusal(loader.load(chaos, greedy));
    expect(r.code).toBe('KERNEL_ERR_TRUST_CAPABILITY_NOT_ALLOWED');
    expect(r.message).toContain('wasi:sockets/tcp');
    expect(kernel.list()).toEqual([]);
    await loader.load(chaos, await signed(chaos, { version: '2.0.0' }));
    const down = await refusal(loader.swap('chaos', chaos, await signed(chaos, { version: '1.0.0' })));
    expect(down.code).toBe('KERNEL_ERR_TRUST_DOWNGRADE');
    expect(kernel.info('chaos').version).toBe('2.0.0');
    await kernel.stop();
  });

  it('refuses a revoked key at the next load, without a restart', async () => {
    const revoked = testKeyPair('loader-revoked');
    await store.add(publicKeyOf(revoked), { label: 'to be revoked' });
    const kernel = newKernel();
    const loader = new TrustedLoader({ kernel, trustStore: store, policy: POLICY });
    const manifest = await signed(chaos, {}, revoked);
    const other = await TrustStore.open(join(dir, 'trust')); // e.g. `cam-os trust revoke` in another process
    await other.revoke(revoked.keyId, 'key leaked');
    expect((await refusal(loader.load(chaos, manifest))).code).toBe('KERNEL_ERR_TRUST_REVOKED_KEY');
    await kernel.stop();
  });

  it('dev mode admits an unsigned manifest, labelled UNVERIFIED, but never a digest mismatch', async () => {
    const kernel = newKernel();
    const loader = new TrustedLoader({ kernel, trustStore: store, policy: POLICY, devMode: true });
    const info = await loader.load(chaos, JSON.stringify(body(chaos)));
    expect(info.labels.trust).toBe('UNVERIFIED (dev mode)');
    const other = await buildFixture('calc');
    const r = await refusal(loader.load(other, JSON.stringify(body(chaos, { name: 'calc' }))));
    expect(r.code).toBe('KERNEL_ERR_TRUST_DIGEST_MISMATCH');
    await kernel.stop();
  });
});

describe('trusted loader with a TPM (swtpm)', () => {
  let swtpm: Swtpm | null;
  let tpm: Tpm | undefined;

  beforeAll(async () => {
    swtpm = await startSwtpm();
    if (swtpm) tpm = await openTpm(swtpm.tcti);
  });
  afterAll(async () => {
    await tpm?.close();
    await swtpm?.stop();
  });

  it('measures every load into PCR 23; the PCR replays from the log and a quote over it verifies', async (ctx) => {
    if (!tpm) return ctx.skip('swtpm is not installed');
    const log = await MeasurementLog.open(tpm, { path: join(dir, 'measurements.log'), resetPcr: true });
    const kernel = newKernel();
    const loader = new TrustedLoader({ kernel, trustStore: store, policy: POLICY, measurement: log });
    const calc = await buildFixture('calc');
    await loader.load(chaos, await signed(chaos));
    const calcManifest = await signed(calc, {
      name: 'calc',
      world: 'test:fixtures/calc-world',
      capabilities: { imports: ['test:fixtures/log@0.1.0'], memoryMaxPages: 32 },
    });
    kernel.provide({ name: 'test:fixtures/log@0.1.0', functions: { log: () => {} } });
    const info = await loader.load(calc, calcManifest);
    expect(info.labels.measured).toBe('PCR 23 event 1');
    // A refused package is not measured.
    await refusal(loader.load(chaos, JSON.stringify(body(chaos))));
    expect(log.events.map((e) => e.name)).toEqual(['chaos', 'calc']);
    const pcr = await tpm.pcrRead('sha256', 23);
    expect(pcr.equals(replay(log.events))).toBe(true);
    const ak = await tpm.createSigningKey({ restricted: true });
    const nonce = randomBytes(20);
    const quote = await tpm.quote(ak.handle, [23], nonce);
    const v = verifyQuote({ quote, publicKey: ak.publicKey, nonce, log: { pcr: 23, events: log.events } });
    expect(v).toMatchObject({ ok: true });
    await kernel.stop();
  });
});
