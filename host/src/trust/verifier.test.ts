import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcStatus } from '../errors.js';
import { fromBase64Strict, toBase64 } from './encoding.js';
import { TRUST_ERROR_CODES, TRUST_ERRORS, TrustError } from './errors.js';
import { publicKeyOf } from './keys.js';
import { loadMlDsa65 } from './liboqs.js';
import type { SignedManifest } from './manifest.js';
import { signAndAttach } from './sign.js';
import {
  buildSignedPackage,
  fakeComponentBytes,
  type SignedPackage,
  testKeyPair,
  testManifestBody,
} from './testing.js';
import { TrustStore } from './trust-store.js';
import {
  assertVerified,
  grpcStatusOf,
  type VerifyFailure,
  type VerifyPolicy,
  type VerifyResult,
  verifyComponent,
  verifyComponentSync,
} from './verifier.js';

const alice = testKeyPair('verifier/alice');
const bob = testKeyPair('verifier/bob');
const mallory = testKeyPair('verifier/mallory');
const policy: VerifyPolicy = {
  allowedImports: ['cam:kernel/*', 'wasi:clocks/*'],
  maxMemoryPages: 1024,
  maxDeadlineMs: 1000,
  maxConcurrency: 16,
};

let dir: string;
let store: TrustStore;
let pkg: SignedPackage;

beforeAll(async () => {
  await loadMlDsa65();
  dir = await mkdtemp(join(tmpdir(), 'cam-trust-verifier-'));
  store = await TrustStore.open(dir);
  await store.add(publicKeyOf(alice));
  await store.add(publicKeyOf(bob));
  pkg = await buildSignedPackage({ keyPair: alice });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function verify(
  manifest: unknown,
  overrides: { bytes?: Uint8Array; policy?: Partial<VerifyPolicy> } = {},
): VerifyResult {
  return verifyComponentSync({
    componentBytes: overrides.bytes ?? pkg.componentBytes,
    manifest,
    trustStore: store,
    policy: { ...policy, ...overrides.policy },
  });
}

function refusal(result: VerifyResult): VerifyFailure {
  if (result.ok) throw new Error('expected a refusal');
  return result;
}

function flipBase64(b64: string, byte: number): string {
  const bytes = fromBase64Strict(b64)!;
  bytes[byte]! ^= 0x01;
  return toBase64(bytes);
}

describe('verifyComponent accepts', () => {
  it('a correctly signed package (async and sync give the same answer)', async () => {
    const async = await verifyComponent({
      componentBytes: pkg.componentBytes,
      manifest: pkg.manifest,
      trustStore: store,
      policy,
    });
    expect(async).toMatchObject({ ok: true, publisher: { keyId: alice.keyId } });
    expect(verify(pkg.manifest)).toEqual(async);
  });

  it('the manifest as JSON text or bytes, in any key order or indentation', () => {
    expect(verify(JSON.stringify(pkg.manifest, null, 2)).ok).toBe(true);
    const reordered = Object.fromEntries(Object.entries(pkg.manifest).reverse());
    expect(verify(Buffer.from(JSON.stringify(reordered))).ok).toBe(true);
  });

  it('an equal or higher version than the installed one', () => {
    expect(verify(pkg.manifest, { policy: { installedVersion: '1.2.3' } }).ok).toBe(true);
    expect(verify(pkg.manifest, { policy: { installedVersion: '1.2.3-rc.1' } }).ok).toBe(true);
    expect(verify(pkg.manifest, { policy: { installedVersion: '0.9.0' } }).ok).toBe(true);
  });
});

describe('verifyComponent refuses, with a distinct code for each reason', () => {
  it('malformed-manifest: schema violations (listing the fields) and unparsable input', () => {
    const r = refusal(verify({ ...pkg.manifest, name: 'Bad Name', extra: true }));
    expect(r.code).toBe('malformed-manifest');
    expect(r.issues?.map((i) => i.field)).toEqual(['manifest.extra', 'manifest.name']);
    expect(r.message).toMatch(/manifest\.extra: unknown field/);
    expect(refusal(verify('{"schema":')).code).toBe('malformed-manifest');
    expect(refusal(verify(42)).code).toBe('malformed-manifest');
  });

  it('unsigned: a valid manifest without signatures', () => {
    const { signatures: _s, ...body } = pkg.manifest;
    const r = refusal(verify(body));
    expect(r).toMatchObject({
      code: 'unsigned',
      message: expect.stringContaining('echo-driver@1.2.3 has no signatures'),
    });
  });

  it('unknown-publisher: signed by a key the trust store does not hold', async () => {
    const other = await buildSignedPackage({ keyPair: mallory, componentBytes: pkg.componentBytes });
    const r = refusal(verify(other.manifest));
    expect(r.code).toBe('unknown-publisher');
    expect(r.message).toContain(mallory.keyId);
  });

  it('revoked-key: signed by a revoked key (reason and time in the message)', async () => {
    const carol = testKeyPair('verifier/carol');
    await store.add(publicKeyOf(carol));
    const signed = await buildSignedPackage({ keyPair: carol, componentBytes: pkg.componentBytes });
    expect(verify(signed.manifest).ok).toBe(true);
    await store.revoke(carol.keyId, 'laptop stolen', new Date('2026-05-01T00:00:00Z'));
    const r = refusal(verify(signed.manifest));
    expect(r.code).toBe('revoked-key');
    expect(r.message).toMatch(/revoked at 2026-05-01T00:00:00.000Z: laptop stolen/);
  });

  it('bad-signature: says which half failed', () => {
    const sigs = pkg.manifest.signatures;
    const pq = refusal(
      verify({ ...pkg.manifest, signatures: { ...sigs, mlDsa65: flipBase64(sigs.mlDsa65, 100) } }),
    );
    expect(pq).toMatchObject({ code: 'bad-signature', failedHalves: ['ml-dsa-65'] });
    expect(pq.message).toMatch(/the ml-dsa-65 signature .* failed \(ML-DSA-65: signature does not verify\)/);
    const ed = refusal(
      verify({ ...pkg.manifest, signatures: { ...sigs, ed25519: flipBase64(sigs.ed25519, 3) } }),
    );
    expect(ed).toMatchObject({ code: 'bad-signature', failedHalves: ['ed25519'] });
    const both = refusal(verify({ ...pkg.manifest, version: '1.2.4' }));
    expect(both).toMatchObject({ code: 'bad-signature', failedHalves: ['ml-dsa-65', 'ed25519'] });
    expect(both.message).toMatch(/^both signatures/);
    const short = refusal(
      verify({ ...pkg.manifest, signatures: { ...sigs, ed25519: toBase64(new Uint8Array(63)) } }),
    );
    expect(short.message).toMatch(/Ed25519: signature is 63 bytes, expected 64/);
  });

  it('bad-signature: a signature block naming another key than the publisher', async () => {
    const byBob = await signAndAttach(testManifestBody(bob.keyId, pkg.componentBytes), bob);
    const r = refusal(verify({ ...pkg.manifest, signatures: byBob.signatures }));
    expect(r).toMatchObject({ code: 'bad-signature', failedHalves: [] });
    expect(r.message).toContain(`made by key ${bob.keyId}, but the manifest's publisher is ${alice.keyId}`);
  });

  it('digest-mismatch: different bytes, or a different size', () => {
    const tampered = new Uint8Array(pkg.componentBytes);
    tampered[tampered.length - 1]! ^= 0x80;
    const r = refusal(verify(pkg.manifest, { bytes: tampered }));
    expect(r.code).toBe('digest-mismatch');
    expect(r.message).toMatch(/component digest is sha256:[0-9a-f]{64}, the signed manifest says sha256:/);
    const longer = refusal(verify(pkg.manifest, { bytes: fakeComponentBytes(4097) }));
    expect(longer).toMatchObject({
      code: 'digest-mismatch',
      message: expect.stringMatching(/4097 bytes.*says 4096/),
    });
  });

  it('capability-not-allowed: names the capability', async () => {
    const withImports = async (imports: string[], caps: object = {}) =>
      (
        await buildSignedPackage({
          keyPair: alice,
          componentBytes: pkg.componentBytes,
          overrides: { capabilities: { imports, memoryMaxPages: 64, ...caps } },
        })
      ).manifest;
    const sockets = refusal(verify(await withImports(['cam:kernel/kv@0.1.0', 'wasi:sockets/tcp@0.2.0'])));
    expect(sockets).toMatchObject({ code: 'capability-not-allowed', capability: 'wasi:sockets/tcp@0.2.0' });
    expect(sockets.message).toMatch(/import wasi:sockets\/tcp@0.2.0 is not allowed/);

    const memory = refusal(verify(await withImports([], { memoryMaxPages: 2048 })));
    expect(memory).toMatchObject({
      capability: 'memoryMaxPages',
      message: expect.stringMatching(/2048 exceeds .* 1024/),
    });
    const unbounded = refusal(verify(await withImports([], { memoryMaxPages: undefined })));
    expect(unbounded).toMatchObject({
      capability: 'memoryMaxPages',
      message: expect.stringMatching(/absent/),
    });
    expect(refusal(verify(await withImports([], { deadlineMs: 5000 }))).capability).toBe('deadlineMs');
    expect(refusal(verify(await withImports([], { concurrency: 64 }))).capability).toBe('concurrency');
    const world = refusal(verify(pkg.manifest, { policy: { allowedWorlds: ['cam:kernel/service'] } }));
    expect(world).toMatchObject({ code: 'capability-not-allowed', capability: 'world:cam:kernel/driver' });
    // Patterns: exact names, '*' inside a name, '*' for anything; [] allows no imports.
    const m = await withImports(['wasi:clocks/monotonic-clock@0.2.0']);
    expect(verify(m, { policy: { allowedImports: ['wasi:clocks/monotonic-clock@0.2.0'] } }).ok).toBe(true);
    expect(verify(m, { policy: { allowedImports: ['wasi:clocks/*@0.2.*'] } }).ok).toBe(true);
    expect(verify(m, { policy: { allowedImports: ['wasi:clocks/*@0.3.*'] } }).ok).toBe(false);
    expect(verify(m, { policy: { allowedImports: ['*'] } }).ok).toBe(true);
    expect(verify(m, { policy: { allowedImports: [] } }).ok).toBe(false);
    // Pattern text is literal apart from '*' (a '.' is not "any character").
    expect(
      verify(m, { policy: { allowedImports: ['wasi:clocks/monotonic-clock@0.2.0'.replace('.', '?')] } }).ok,
    ).toBe(false);
  });

  it('downgrade: a lower version than the installed one', () => {
    const r = refusal(verify(pkg.manifest, { policy: { installedVersion: '1.10.0' } }));
    expect(r).toMatchObject({
      code: 'downgrade',
      message: 'echo-driver@1.2.3 is older than the installed version 1.10.0',
    });
    expect(refusal(verify(pkg.manifest, { policy: { installedVersion: '1.2.4-alpha' } })).code).toBe(
      'downgrade',
    );
  });

  it('checks signatures before hashing: a forged manifest for other bytes is bad-signature, not digest-mismatch', () => {
    const other = fakeComponentBytes(100);
    const forged = { ...pkg.manifest, component: { digest: pkg.manifest.component.digest, size: 100 } };
    expect(refusal(verify(forged, { bytes: other })).code).toBe('bad-signature');
  });

  it('an invalid policy is a host bug: it throws instead of refusing the component', () => {
    expect(() => verify(pkg.manifest, { policy: { allowedImports: undefined as never } })).toThrow(TypeError);
    expect(() => verify(pkg.manifest, { policy: { installedVersion: 'one' } })).toThrow(/not a SemVer/);
    expect(() => verify(pkg.manifest, { policy: { maxMemoryPages: -1 } })).toThrow(/non-negative integer/);
  });
});

describe('refusal codes map to errors', () => {
  it('every code has one catalogue entry with a unique id and a gRPC status', () => {
    expect(Object.keys(TRUST_ERRORS).sort()).toEqual([...TRUST_ERROR_CODES].sort());
    const ids = TRUST_ERROR_CODES.map((c) => TRUST_ERRORS[c].id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const c of TRUST_ERROR_CODES) {
      expect(TRUST_ERRORS[c].id).toMatch(/^KERNEL_ERR_TRUST_[A-Z_]+$/);
      expect(GrpcStatus[TRUST_ERRORS[c].status]).toBeGreaterThan(0);
    }
  });

  it('assertVerified returns the manifest or throws the TrustError of the refusal', () => {
    expect(assertVerified(verify(pkg.manifest)).name).toBe('echo-driver');
    const failure = refusal(verify(pkg.manifest, { policy: { installedVersion: '2.0.0' } }));
    try {
      assertVerified(failure);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TrustError);
      expect(err).toMatchObject({
        code: 'downgrade',
        id: 'KERNEL_ERR_TRUST_DOWNGRADE',
        status: 'FAILED_PRECONDITION',
      });
      expect((err as TrustError).grpcCode).toBe(9);
      expect((err as Error).message).toMatch(/^KERNEL_ERR_TRUST_DOWNGRADE: echo-driver@1.2.3 is older/);
    }
    expect(grpcStatusOf(failure)).toBe(9);
  });

  it('the manifest returned on success is a frozen copy of what was verified', () => {
    const r = verify(JSON.stringify(pkg.manifest));
    expect(r.ok && (r.manifest as SignedManifest).signatures.keyId).toBe(alice.keyId);
    const input = structuredClone(pkg.manifest) as { version: string };
    const fromObject = verify(input);
    if (!fromObject.ok) throw new Error(fromObject.message);
    expect(fromObject.manifest).not.toBe(input);
    expect(Object.isFrozen(fromObject.manifest.capabilities.imports)).toBe(true);
    input.version = '9.9.9';
    expect(fromObject.manifest.version).toBe('1.2.3');
  });

  it('reads a getter once: a value that changes between reads cannot pass one check and be used as another', () => {
    let reads = 0;
    const tricky = { ...pkg.manifest };
    Object.defineProperty(tricky, 'version', {
      enumerable: true,
      get: () => (reads++ === 0 ? '1.2.3' : '0.0.1'),
    });
    const r = verify(tricky, { policy: { installedVersion: '1.0.0' } });
    expect(r.ok).toBe(true);
    expect(reads).toBe(1);
    expect(r.ok && r.manifest.version).toBe('1.2.3');
    expect(refusal(verify({ ...pkg.manifest, hook: () => 1 })).code).toBe('malformed-manifest');
  });
});
