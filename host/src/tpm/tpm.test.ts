import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm } from '../../../test/harness/swtpm.js';
import { normalizeTcti, openTpm, type Tpm, TpmError, tpmStatus } from './index.js';
import { loadAddon } from './native.js';

// These tests provoke TPM errors on purpose and assert on the addon's own messages; tpm2-tss would also log
// each one to stderr. TSS2_LOG=all+warning (or +debug) brings its logs back when debugging.
process.env.TSS2_LOG ??= 'all+none';

const swtpm = await startSwtpm();
const addon = loadAddon();
if (!addon.ok && process.env.CI !== 'true') console.warn(`[tpm tests] ${addon.detail}: skipping`);
const enabled = swtpm !== null && (addon.ok || process.env.CI === 'true');

afterAll(async () => {
  await swtpm?.stop();
});

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 1));
    });
  });
}

async function rejection(p: Promise<unknown>): Promise<TpmError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TpmError);
  return e as TpmError;
}

describe('normalizeTcti', () => {
  it('turns a device path into a device TCTI and leaves name:conf strings alone', () => {
    expect(normalizeTcti('/dev/tpmrm0')).toBe('device:/dev/tpmrm0');
    expect(normalizeTcti('swtpm:host=127.0.0.1,port=2321')).toBe('swtpm:host=127.0.0.1,port=2321');
  });
});

describe.skipIf(!enabled)('TPM through the addon, against a real swtpm', () => {
  let tpm: Tpm;

  beforeAll(async () => {
    tpm = await openTpm(swtpm!.tcti);
  });
  afterAll(async () => {
    await tpm?.close();
  });

  it('identifies the TPM it opened', () => {
    expect(tpm.tcti).toBe(swtpm!.tcti);
    expect(tpm.info.manufacturer).toBe('IBM');
  });

  it('getRandom returns the requested count of fresh bytes', async () => {
    const [a, b] = [await tpm.getRandom(32), await tpm.getRandom(32)];
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
    // More than one TPM2_GetRandom's worth.
    expect(await tpm.getRandom(200)).toHaveLength(200);
  });

  it('pcrExtend sets the PCR to sha256(old || digest)', async () => {
    await tpm.pcrReset(16);
    const zero = await tpm.pcrRead('sha256', 16);
    expect(zero.equals(Buffer.alloc(32))).toBe(true);
    const d1 = randomBytes(32);
    const d2 = randomBytes(32);
    await tpm.pcrExtend(16, d1);
    const after1 = await tpm.pcrRead('sha256', 16);
    expect(after1.toString('hex')).toBe(sha256(zero, d1).toString('hex'));
    await tpm.pcrExtend(16, d2);
    expect((await tpm.pcrRead('sha256', 16)).toString('hex')).toBe(sha256(after1, d2).toString('hex'));
  });

  it('applies commands issued without awaiting in call order', async () => {
    await tpm.pcrReset(16);
    const digests = Array.from({ length: 16 }, () => randomBytes(32));
    await Promise.all(digests.map((d) => tpm.pcrExtend(16, d)));
    const expected = digests.reduce((acc, d) => sha256(acc, d), Buffer.alloc(32));
    expect((await tpm.pcrRead('sha256', 16)).toString('hex')).toBe(expected.toString('hex'));
  });

  it('reports the TPM reason when a PCR is not resettable', async () => {
    const e = await rejection(tpm.pcrReset(0));
    expect(e.code).toBe('TPM_ERR_COMMAND');
    expect(e.message).toMatch(/TPM2_PCR_Reset\(PCR 0\) failed: .*locality/);
    expect(e.rc).toBe(0x907);
  });

  it('rejects malformed arguments before they reach the TPM', async () => {
    expect((await rejection(tpm.pcrExtend(16, Buffer.alloc(31)))).code).toBe('TPM_ERR_ARGUMENT');
    expect((await rejection(tpm.pcrRead('sha256', 24))).code).toBe('TPM_ERR_ARGUMENT');
    expect((await rejection(tpm.getRandom(-1))).code).toBe('TPM_ERR_ARGUMENT');
  });

  it('sign() makes an ECDSA P-256 signature that node:crypto verifies', async () => {
    const key = await tpm.createSigningKey();
    const data = randomBytes(300);
    const sig = await tpm.sign(key.handle, sha256(data));
    const pub = createPublicKey(key.pem);
    expect(pub.asymmetricKeyType).toBe('ec');
    expect(pub.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(verify('sha256', data, pub, sig)).toBe(true);
    expect(verify('sha256', randomBytes(300), pub, sig)).toBe(false);
    await tpm.flushKey(key.handle);
  });

  it('derives the same primary key from the same template, and another per hierarchy', async () => {
    const a = await tpm.createSigningKey();
    const b = await tpm.createSigningKey();
    expect(a.handle).not.toBe(b.handle);
    expect(a.publicPoint.equals(b.publicPoint)).toBe(true);
    await tpm.flushKey(a.handle);
    await tpm.flushKey(b.handle);
    const e = await tpm.createSigningKey({ hierarchy: 'endorsement' });
    expect(e.publicPoint.equals(a.publicPoint)).toBe(false);
    await tpm.flushKey(e.handle);
  });

  it('refuses sign() with a restricted (attestation) key', async () => {
    const ak = await tpm.createSigningKey({ restricted: true });
    const e = await rejection(tpm.sign(ak.handle, randomBytes(32)));
    expect(e.code).toBe('TPM_ERR_COMMAND');
    expect(e.message).toMatch(/TPM2_Sign.*ticket/);
    await tpm.flushKey(ak.handle);
  });

  it('rejects a handle that was never created or is flushed', async () => {
    const key = await tpm.createSigningKey();
    await tpm.flushKey(key.handle);
    const e = await rejection(tpm.sign(key.handle, randomBytes(32)));
    expect(e.code).toBe('TPM_ERR_KEY_HANDLE');
    expect(e.message).toContain(`unknown key handle ${key.handle}`);
  });

  it('after close(), every call rejects with TPM_ERR_CLOSED', async () => {
    const other = await openTpm(swtpm!.tcti);
    const pending = other.getRandom(8);
    await other.close();
    // Issued before close(): it completes.
    expect(await pending).toHaveLength(8);
    const e = await rejection(other.getRandom(8));
    expect(e.code).toBe('TPM_ERR_CLOSED');
  });

  it('tpmStatus reports a reachable TPM as available', async () => {
    const s = await tpmStatus(swtpm!.tcti);
    expect(s).toMatchObject({ available: true, tcti: swtpm!.tcti, info: { manufacturer: 'IBM' } });
  });
});

describe.skipIf(!addon.ok && process.env.CI !== 'true')('opening a TPM that is not there', () => {
  it('openTpm on a closed port fails with an error naming the TCTI and the cause', async () => {
    const tcti = `swtpm:host=127.0.0.1,port=${await closedPort()}`;
    const e = await rejection(openTpm(tcti));
    expect(e.code).toBe('TPM_ERR_OPEN');
    expect(e.message).toContain(`cannot open TCTI '${tcti}'`);
    expect(e.message).toMatch(/IO failure/);
    expect(e.rc).toBeTypeOf('number');
  });

  it('tpmStatus says why: no device, or open failed', async () => {
    expect(await tpmStatus('/dev/camos-no-such-tpm')).toMatchObject({
      available: false,
      reason: 'no device',
      tcti: 'device:/dev/camos-no-such-tpm',
    });
    const closed = await tpmStatus(`swtpm:host=127.0.0.1,port=${await closedPort()}`);
    expect(closed).toMatchObject({ available: false, reason: 'open failed' });
  });
});
