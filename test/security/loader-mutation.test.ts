/**
 * Issue 5 acceptance at the loader level: one valid signed package, then 1,000 mutants of it — bit flips in
 * the component bytes, in manifest fields and raw manifest text, in each signature and the signing key id;
 * swapped and mixed signature blocks; a wrong key; a revoked key; downgrades pushed as swaps — each sent to
 * a running kernel (real TPM) through the admin API, exactly as `cam-os load` / `cam-os swap` send them.
 * Every one must be refused, and nothing may change: the component list, the measurement log and the trust
 * store stay byte-identical. Then the valid package loads, which shows the comparison could have failed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture } from '../../host/src/testing/fixtures.js';
import { type PublisherKeyPair, publicKeyOf } from '../../host/src/trust/keys.js';
import type { ManifestBody, SignedManifest } from '../../host/src/trust/manifest.js';
import { signAndAttach } from '../../host/src/trust/sign.js';
import { testKeyPair, testManifestBody } from '../../host/src/trust/testing.js';
import { TRUST_STORE_FILE, TrustStore } from '../../host/src/trust/trust-store.js';
import { AdminClient } from '../../sdk/src/admin-client.js';
import { runTpmSuites, type SecureKernel, startSecureKernel } from './harness.js';

const SEED = Number(process.env.CAM_OS_MUTATION_SEED ?? 0x5eed_0005);
const publisher = testKeyPair('mutation-publisher');
const stranger = testKeyPair('mutation-stranger');
const revoked = testKeyPair('mutation-revoked');

/** xorshift32: reproducible mutants; CAM_OS_MUTATION_SEED replays another set. */
function prng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { int: (n: number) => next() % n };
}

interface Mutant {
  kind: string;
  bytes: Uint8Array;
  manifest: string;
  /** Push as a swap of the running `target` instead of a fresh load. */
  swap?: boolean;
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function flipB64(b64: string, bit: number): string {
  return Buffer.from(flipBit(Buffer.from(b64, 'base64'), bit)).toString('base64');
}

/** Flip one bit of one character of a string, staying printable ASCII so the result is still a string. */
function flipChar(text: string, r: ReturnType<typeof prng>): string {
  for (;;) {
    const i = r.int(text.length);
    const c = text.charCodeAt(i) ^ (1 << r.int(7));
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c)
      return text.slice(0, i) + String.fromCharCode(c) + text.slice(i + 1);
  }
}

type Json = Record<string, unknown>;

/** A manifest field chosen at random, changed by one bit (strings: one character; numbers: one bit). */
function mutateField(m: SignedManifest, r: ReturnType<typeof prng>): { what: string; manifest: Json } {
  const copy = structuredClone(m) as unknown as Json;
  const caps = copy.capabilities as Json;
  const comp = copy.component as Json;
  const fields: Array<[string, Json, string]> = [
    ['name', copy, 'name'],
    ['version', copy, 'version'],
    ['publisher', copy, 'publisher'],
    ['world', copy, 'world'],
    ['abiVersion', copy, 'abiVersion'],
    ['component.digest', comp, 'digest'],
    ['component.size', comp, 'size'],
    ['capabilities.imports[0]', caps.imports as unknown as Json, '0'],
    ['capabilities.memoryMaxPages', caps, 'memoryMaxPages'],
    ['capabilities.deadlineMs', caps, 'deadlineMs'],
    ['capabilities.concurrency', caps, 'concurrency'],
  ];
  const [what, obj, key] = fields[r.int(fields.length)]!;
  const v = obj[key];
  if (typeof v === 'number') obj[key] = v ^ (1 << r.int(16));
  else obj[key] = flipChar(String(v), r);
  return { what, manifest: copy };
}

describe.skipIf(!runTpmSuites())('1,000 mutants of a signed package through a running kernel', () => {
  let sk: SecureKernel;
  let admin: AdminClient;
  let chaos: Uint8Array;
  let valid: SignedManifest;
  let snapshot: { components: string; log: Buffer; trust: Buffer };
  const mutants: Mutant[] = [];

  const body = (pair: PublisherKeyPair, overrides: Partial<ManifestBody> = {}) =>
    testManifestBody(pair.keyId, chaos, {
      name: 'fresh',
      version: '1.0.0',
      world: 'test:fixtures/chaos-world',
      capabilities: { imports: ['wasi:cli/exit@0.2.3'], memoryMaxPages: 32, deadlineMs: 500 },
      dependencies: [],
      ...overrides,
    });

  const componentsNow = async () =>
    JSON.stringify((await admin.list()).map((c) => [c.name, c.version, c.digest, c.loaded_at]).sort());
  const filesNow = () => ({
    log: readFileSync(join(sk.dataDir, 'measurements.log')),
    trust: readFileSync(join(sk.dataDir, 'trust', TRUST_STORE_FILE)),
  });

  beforeAll(async () => {
    const started = await startSecureKernel({ tpm: 'swtpm' });
    if (!started) throw new Error('swtpm vanished between the check and the start');
    sk = started;
    admin = new AdminClient(sk.kernel.address);
    const store = await TrustStore.open(join(sk.dataDir, 'trust'));
    await store.add(publicKeyOf(publisher), { label: 'mutation publisher' });
    await store.add(publicKeyOf(revoked), { label: 'revoked below' });
    await store.revoke(revoked.keyId, 'acceptance test: key compromised');
    chaos = await buildFixture('chaos');

    // The running package the downgrades target, at 2.0.0.
    const target = await signAndAttach(body(publisher, { name: 'target', version: '2.0.0' }), publisher);
    await admin.load(chaos, JSON.stringify(target));
    valid = await signAndAttach(body(publisher), publisher);

    const r = prng(SEED);
    const add = (kind: string, manifest: unknown, bytes = chaos, swap = false) =>
      mutants.push({ kind, bytes, manifest: JSON.stringify(manifest), swap });
    const validJson = JSON.stringify(valid);
    const bits = (n: number) => r.int(n * 8);

    for (let i = 0; i < 200; i++) add('component bit flip', valid, flipBit(chaos, bits(chaos.length)));
    for (let i = 0; i < 200; i++) {
      const { what, manifest } = mutateField(valid, r);
      add(`manifest field: ${what}`, manifest);
    }
    for (let i = 0; i < 150; i++) {
      const text = Buffer.from(validJson);
      mutants.push({ kind: 'manifest text bit flip', bytes: chaos, manifest: '' });
      mutants[mutants.length - 1]!.manifest = Buffer.from(flipBit(text, bits(text.length))).toString(
        'latin1',
      );
    }
    const sig = valid.signatures;
    const mlDsaBits = Buffer.from(sig.mlDsa65, 'base64').length * 8;
    const edBits = Buffer.from(sig.ed25519, 'base64').length * 8;
    for (let i = 0; i < 125; i++)
      add('ML-DSA-65 signature bit flip', {
        ...valid,
        signatures: { ...sig, mlDsa65: flipB64(sig.mlDsa65, r.int(mlDsaBits)) },
      });
    for (let i = 0; i < 75; i++)
      add('Ed25519 signature bit flip', {
        ...valid,
        signatures: { ...sig, ed25519: flipB64(sig.ed25519, r.int(edBits)) },
      });
    for (let i = 0; i < 25; i++)
      add('signatures.keyId bit flip', { ...valid, signatures: { ...sig, keyId: flipChar(sig.keyId, r) } });

    // Valid signatures of other manifests by the same trusted key, moved onto this one.
    const others: SignedManifest[] = [];
    for (let i = 0; i < 10; i++)
      others.push(await signAndAttach(body(publisher, { version: `1.0.${i + 1}` }), publisher));
    for (let i = 0; i < 50; i++)
      add('signature block swapped from another manifest', {
        ...valid,
        signatures: others[i % 10]!.signatures,
      });
    for (let i = 0; i < 25; i++) {
      const o = others[i % 10]!.signatures;
      const mixed = i % 2 ? { ...sig, mlDsa65: o.mlDsa65 } : { ...sig, ed25519: o.ed25519 };
      add('one signature swapped from another manifest', { ...valid, signatures: mixed });
    }
    for (let i = 0; i < 25; i++)
      add(
        'wrong key: unknown publisher',
        await signAndAttach(body(stranger, { version: `1.0.${i}` }), stranger),
      );
    for (let i = 0; i < 25; i++) {
      const forged = await signAndAttach(body(stranger, { version: `1.1.${i}` }), stranger);
      add('wrong key: signed by a stranger, claiming the trusted publisher', {
        ...forged,
        publisher: publisher.keyId,
        signatures: { ...forged.signatures, keyId: publisher.keyId },
      });
    }
    for (let i = 0; i < 50; i++)
      add('revoked key', await signAndAttach(body(revoked, { version: `1.2.${i}` }), revoked));
    for (let i = 0; i < 50; i++) {
      const down = await signAndAttach(
        body(publisher, { name: 'target', version: `1.${i % 10}.${Math.floor(i / 10)}` }),
        publisher,
      );
      add('downgrade via swap', down, chaos, true);
    }
    expect(mutants).toHaveLength(1000);

    snapshot = { components: await componentsNow(), ...filesNow() };
  }, 180_000);

  afterAll(async () => {
    admin?.close();
    await sk?.stop();
  });

  it('refuses every mutant, changes nothing, and still loads the valid package', async () => {
    const refusedBy = new Map<string, number>();
    const accepted: string[] = [];
    const started = performance.now();
    for (const [i, m] of mutants.entries()) {
      try {
        const r = m.swap
          ? await admin.swap('target', m.bytes, m.manifest)
          : await admin.load(m.bytes, m.manifest);
        accepted.push(`#${i} ${m.kind}: ${JSON.stringify(r).slice(0, 200)}`);
      } catch (e) {
        const err = e as ServiceError;
        const details = String(err.details ?? err.message);
        // The kernel's error catalogue code travels in the trailers (host/src/server/grpc-errors.ts).
        const code = String(err.metadata?.get('cam-error-code')[0] ?? `no code: ${details.slice(0, 60)}`);
        // A refusal for any reason but trust would hide a mutant that verified.
        if (!/^KERNEL_ERR_(TRUST_|MANIFEST|REQUEST_INVALID)/.test(code))
          accepted.push(`#${i} ${m.kind}: refused for a non-trust reason: ${details}`);
        const key = `${m.kind.replace(/^manifest field: .*/, 'manifest field')} -> ${code}`;
        refusedBy.set(key, (refusedBy.get(key) ?? 0) + 1);
      }
    }
    const ms = performance.now() - started;
    console.info(
      `1,000 mutants (seed ${SEED}) refused in ${ms.toFixed(0)} ms (${(ms / 1000).toFixed(2)} ms each):\n${[
        ...refusedBy,
      ]
        .sort()
        .map(([k, n]) => `  ${n}\t${k}`)
        .join('\n')}`,
    );
    expect(accepted, `seed ${SEED}`).toEqual([]);
    expect([...refusedBy.values()].reduce((a, b) => a + b, 0)).toBe(1000);

    expect(await componentsNow()).toBe(snapshot.components);
    const after = filesNow();
    expect(createHash('sha256').update(after.log).digest('hex')).toBe(
      createHash('sha256').update(snapshot.log).digest('hex'),
    );
    expect(after.trust.equals(snapshot.trust)).toBe(true);

    // Control: the unmutated package loads, is measured, and the list and log do change.
    const info = await admin.load(chaos, JSON.stringify(valid));
    expect(info).toMatchObject({ name: 'fresh', version: '1.0.0' });
    expect(await componentsNow()).not.toBe(snapshot.components);
    expect(filesNow().log.length).toBeGreaterThan(snapshot.log.length);
  }, 120_000);
});
