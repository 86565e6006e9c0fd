/**
 * Issue 5 acceptance, over the CAM-OS wire interface: TmpSign, VerifyManifest and EstablishSecureChannel
 * called by the spec-only client (test/grpc/spec-client.ts) on a full kernel (boot()) backed by a real
 * swtpm; and the same kernel in no-TPM mode, which must say so instead of imitating a TPM.
 */
import { createPublicKey, verify } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initiateChannel } from '../../host/src/trust/channel.js';
import { publicKeyOf } from '../../host/src/trust/keys.js';
import { signAndAttach } from '../../host/src/trust/sign.js';
import { fakeComponentBytes, testKeyPair, testManifestBody } from '../../host/src/trust/testing.js';
import { TrustStore } from '../../host/src/trust/trust-store.js';
import { AdminClient } from '../../sdk/src/admin-client.js';
import { type Outcome, SpecClient } from '../grpc/spec-client.js';
import { runTpmSuites, type SecureKernel, startSecureKernel } from './harness.js';

const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;
const publisher = testKeyPair('security-syscalls-publisher');
const stranger = testKeyPair('security-syscalls-stranger');

function ok(o: Outcome): Record<string, unknown> {
  if (!o.ok) throw new Error(`expected success, got code ${o.code}: ${o.message}`);
  return o.res;
}

function manifestFor(pair = publisher) {
  const bytes = fakeComponentBytes(2048);
  return signAndAttach(
    testManifestBody(pair.keyId, bytes, {
      name: 'wire-checked',
      version: '1.0.0',
      capabilities: { imports: ['cam:kernel/kv@0.1.0'], memoryMaxPages: 16, deadlineMs: 100 },
      dependencies: [],
    }),
    pair,
  );
}

describe.skipIf(!runTpmSuites())('security syscalls on a kernel with a real TPM (swtpm)', () => {
  let sk: SecureKernel;
  let c: SpecClient;
  const call = (method: string, req: Record<string, unknown>) =>
    c.call(method, { caller_id: 'agent-sec', ...req }, undefined, 30_000);

  beforeAll(async () => {
    const started = await startSecureKernel({ tpm: 'swtpm' });
    if (!started) throw new Error('swtpm vanished between the check and the start');
    sk = started;
    expect(sk.kernel.tpm.tpm, `kernel has no TPM: ${sk.kernel.tpm.reason}`).toBeDefined();
    // Context reads and writes carry no TPM proof yet: a TPM kernel says so instead of implying one.
    expect(sk.kernel.warnings.join('\n')).toMatch(/context proofs: .* not implemented yet/);
    const store = await TrustStore.open(join(sk.dataDir, 'trust'));
    await store.add(publicKeyOf(publisher), { label: 'syscalls test publisher' });
    c = new SpecClient(sk.kernel.address);
  }, 120_000);

  afterAll(async () => {
    c?.close();
    await sk?.stop();
  });

  describe('TmpSign', () => {
    it('signs with a TPM-resident P-256 key; node:crypto verifies the signature with the returned SPKI', async () => {
      const data = Buffer.from('issue 5: sign me with the TPM');
      const res = ok(await call('TmpSign', { data, algorithm: 'ECDSA_P256_SHA256' }));
      const cert = res.signing_certificate as Record<string, unknown>;
      expect(cert.algorithm).toBe('ECDSA_P256_SHA256');
      expect((cert.attributes as Record<string, string>).tpm).toBe('resident');
      const key = createPublicKey({ key: cert.attestation_data as Buffer, format: 'der', type: 'spki' });
      expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      const signature = res.signature as Buffer;
      expect(verify('sha256', data, key, signature)).toBe(true);
      expect(verify('sha256', Buffer.from('issue 5: sign me with the TPN'), key, signature)).toBe(false);

      // The same key signs again (key_id = its fingerprint), and each ECDSA signature is fresh.
      const again = ok(await call('TmpSign', { data, key_id: cert.key_id }));
      expect((again.signing_certificate as Record<string, unknown>).key_id).toBe(cert.key_id);
      expect(Buffer.compare(again.signature as Buffer, signature)).not.toBe(0);
      expect(verify('sha256', data, key, again.signature as Buffer)).toBe(true);
    });

    it('refuses a bad algorithm, empty data and an unknown key id with INVALID_ARGUMENT', async () => {
      const bad = await call('TmpSign', { data: Buffer.from('x'), algorithm: 'RSA_PKCS1_SHA1' });
      expect(bad).toMatchObject({ ok: false, code: INVALID_ARGUMENT });
      if (!bad.ok) expect(bad.message).toMatch(/algorithm must be ECDSA_P256_SHA256/);
      expect(await call('TmpSign', { data: Buffer.alloc(0) })).toMatchObject({
        ok: false,
        code: INVALID_ARGUMENT,
      });
      const unknown = await call('TmpSign', { data: Buffer.from('x'), key_id: 'not-a-key' });
      expect(unknown).toMatchObject({ ok: false, code: INVALID_ARGUMENT });
    });
  });

  describe('VerifyManifest', () => {
    it('accepts a manifest signed by a key in the trust store', async () => {
      const m = await manifestFor();
      const res = ok(await call('VerifyManifest', { manifest_data: Buffer.from(JSON.stringify(m)) }));
      expect(res).toMatchObject({ valid: true, error: '' });
    });

    it('accepts the same manifest with its signatures block sent detached', async () => {
      const { signatures, ...body } = await manifestFor();
      const res = ok(
        await call('VerifyManifest', {
          manifest_data: Buffer.from(JSON.stringify(body)),
          signature: Buffer.from(JSON.stringify(signatures)),
        }),
      );
      expect(res.valid).toBe(true);
    });

    it('refuses a manifest changed after signing, and says why', async () => {
      const m = { ...(await manifestFor()), version: '1.0.1' };
      const res = ok(await call('VerifyManifest', { manifest_data: Buffer.from(JSON.stringify(m)) }));
      expect(res.valid).toBe(false);
      expect(res.error).toMatch(/^bad-signature: .*wire-checked@1.0.1/);
    });

    it('refuses a manifest from a publisher the kernel does not trust', async () => {
      const m = await manifestFor(stranger);
      const res = ok(await call('VerifyManifest', { manifest_data: Buffer.from(JSON.stringify(m)) }));
      expect(res.valid).toBe(false);
      expect(res.error).toMatch(/^unknown-publisher: .*not in the trust store/);
    });

    it('answers garbage with INVALID_ARGUMENT or valid: false, never valid: true', async () => {
      for (const [manifest, signature] of [
        [Buffer.from('not json at all {'), Buffer.alloc(0)],
        [Buffer.from('{"schema":"cam-os/manifest@1"}'), Buffer.alloc(0)],
        [Buffer.from([0xff, 0x00, 0x13, 0x37]), Buffer.alloc(0)],
        [Buffer.from('{}'), Buffer.from('not json')],
      ] as const) {
        const o = await call('VerifyManifest', { manifest_data: manifest, signature });
        if (o.ok) {
          expect(o.res.valid).toBe(false);
          expect(String(o.res.error)).not.toBe('');
        } else expect(o.code).toBe(INVALID_ARGUMENT);
      }
      expect(await call('VerifyManifest', { manifest_data: Buffer.alloc(0) })).toMatchObject({
        ok: false,
        code: INVALID_ARGUMENT,
      });
    });
  });

  describe('EstablishSecureChannel', () => {
    it('runs the hybrid X25519 + ML-KEM-768 exchange: both sides derive the same channel', async () => {
      const initiator = await initiateChannel();
      const { hello } = initiator;
      expect(hello.x25519PublicKey.length).toBe(32);
      expect(hello.kemPublicKey.length).toBe(1184);
      const res = ok(
        await call('EstablishSecureChannel', {
          peer_id: 'peer-under-test',
          ephemeral_public_key: Buffer.concat([hello.x25519PublicKey, hello.kemPublicKey]),
        }),
      );
      const answer = res.ephemeral_public_key as Buffer;
      expect(answer.length).toBe(32 + 1088);
      const { channel } = initiator.complete({
        protocol: hello.protocol,
        x25519PublicKey: answer.subarray(0, 32),
        kemCiphertext: answer.subarray(32),
      });
      // The channel id is an HKDF output over both shared secrets and the transcript: equal ids mean
      // the kernel derived the same keys.
      expect(channel.id).toMatch(/^[0-9a-f]{32}$/);
      expect(channel.id).toBe(res.channel_id);
      // And the kernel keeps its end for reuse.
      const peer = (res.peer_certificate as Record<string, unknown>).attributes as Record<string, string>;
      expect(peer.protocol).toBe('cam-os/channel@1');
    });

    it('two exchanges give two different channels', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const initiator = await initiateChannel();
        const res = ok(
          await call('EstablishSecureChannel', {
            ephemeral_public_key: Buffer.concat([
              initiator.hello.x25519PublicKey,
              initiator.hello.kemPublicKey,
            ]),
          }),
        );
        ids.add(String(res.channel_id));
      }
      expect(ids.size).toBe(2);
    });

    it('refuses wrong key sizes with INVALID_ARGUMENT', async () => {
      const initiator = await initiateChannel();
      const { x25519PublicKey: x, kemPublicKey: kem } = initiator.hello;
      for (const key of [
        Buffer.alloc(0),
        Buffer.from(x),
        Buffer.from(kem),
        Buffer.concat([x, kem.subarray(0, 1183)]),
        Buffer.concat([x, kem, Buffer.alloc(1)]),
        Buffer.concat([x.subarray(0, 31), kem]),
      ]) {
        const o = await call('EstablishSecureChannel', { ephemeral_public_key: key });
        expect(o, `key of ${key.length} bytes`).toMatchObject({ ok: false, code: INVALID_ARGUMENT });
        if (!o.ok) expect(o.message).toMatch(/must be 1216 bytes/);
      }
    });
  });
});

describe('security syscalls on a kernel without a TPM', () => {
  let sk: SecureKernel;
  let c: SpecClient;

  beforeAll(async () => {
    sk = (await startSecureKernel({ tpm: 'none' }))!;
    c = new SpecClient(sk.kernel.address);
  }, 120_000);

  afterAll(async () => {
    c?.close();
    await sk?.stop();
  });

  it('TmpSign answers UNIMPLEMENTED naming the missing TPM', async () => {
    const o = await c.call('TmpSign', { caller_id: 'agent-sec', data: Buffer.from('x') });
    expect(o).toMatchObject({ ok: false, code: UNIMPLEMENTED });
    if (!o.ok) expect(o.message).toMatch(/no TPM/);
  });

  it('HealthCheck and the admin Status show the no-TPM warning', async () => {
    const h = ok(await c.call('HealthCheck', { caller_id: 'agent-sec', detailed: true }));
    expect(h.status).toBe('degraded');
    const components = h.components as Record<string, string>;
    expect(components['syscall.TmpSign']).toMatch(/no TPM/);
    expect(Object.values(components).join('\n')).toMatch(/no-TPM mode/);
    const admin = new AdminClient(sk.kernel.address);
    const status = await admin.status();
    expect(status.warnings.join('\n')).toMatch(/no-TPM mode: TPM disabled by configuration/);
    expect(status.syscalls.find((s) => s.name === 'TmpSign')).toMatchObject({ available: false });
  });

  it('VerifyManifest and EstablishSecureChannel still work: they need no TPM', async () => {
    const initiator = await initiateChannel();
    const res = ok(
      await c.call('EstablishSecureChannel', {
        caller_id: 'agent-sec',
        ephemeral_public_key: Buffer.concat([initiator.hello.x25519PublicKey, initiator.hello.kemPublicKey]),
      }),
    );
    const answer = res.ephemeral_public_key as Buffer;
    const { channel } = initiator.complete({
      protocol: initiator.hello.protocol,
      x25519PublicKey: answer.subarray(0, 32),
      kemCiphertext: answer.subarray(32),
    });
    expect(channel.id).toBe(res.channel_id);
  });
});
