import { publicKeyOf } from '@cam-os/host/trust/keys.js';
import { fakeComponentBytes, testKeyPair } from '@cam-os/host/trust/testing.js';
import type { TrustLookup } from '@cam-os/host/trust/trust-store.js';
import { describe, expect, it } from 'vitest';
import { MarketplaceError } from './errors.js';
import { verifyPackage } from './package.js';
import { PACKAGE_FILES, PACKAGE_MAGIC, packFiles, unpack, unsafePathReason } from './package-format.js';
import { makeTestPackage, replaceFile, TestTransparencyLog } from './testing.js';

const publisher = testKeyPair('marketplace-package-test');
const stranger = testKeyPair('marketplace-package-stranger');
const trust = {
  lookup: (id: string): TrustLookup =>
    id === publisher.keyId
      ? {
          status: 'trusted',
          key: { ...publicKeyOf(publisher), addedAt: '2026-01-01T00:00:00Z', label: 'test' },
        }
      : { status: 'unknown' },
};
const policy = { allowedImports: ['wasi:cli/*'] };

async function refusal(p: Promise<unknown>): Promise<MarketplaceError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MarketplaceError);
  return e as MarketplaceError;
}

describe('package format and verification', () => {
  const component = fakeComponentBytes(2048);
  const build = (over: Partial<Parameters<typeof makeTestPackage>[0]> = {}) =>
    makeTestPackage({
      keyPair: publisher,
      componentBytes: component,
      name: 'demo-driver',
      version: '1.0.0',
      ...over,
    });

  it('verifies a well-formed package and reports signer, imports and digest', async () => {
    const v = await verifyPackage(await build(), { trustStore: trust, policy });
    expect(v.manifest.name).toBe('demo-driver');
    expect(v.publisher.label).toBe('test');
    expect(v.imports).toEqual(['wasi:cli/exit@0.2.3']);
    expect(v.tlogEntries).toBe(0);
    expect(Buffer.from(v.componentBytes).equals(Buffer.from(component))).toBe(true);
  });

  it('refuses unsafe paths inside the container', () => {
    for (const p of ['../evil', '/etc/passwd', 'docs/../../x', 'a\\b', 'docs//x', 'C:/x', 'docs/\u0001'])
      expect(unsafePathReason(p), p).toBeDefined();
    expect(unsafePathReason('docs/guide.md')).toBeUndefined();
  });

  it('refuses a header whose path climbs out, with path-traversal', async () => {
    const pkg = await build();
    const buf = Buffer.from(pkg);
    const len = buf.readUInt32BE(8);
    const header = JSON.parse(buf.subarray(12, 12 + len).toString()) as { files: Array<{ path: string }> };
    header.files[4]!.path = '../../LICENSE';
    const h = Buffer.from(JSON.stringify(header));
    const l = Buffer.alloc(4);
    l.writeUInt32BE(h.length);
    const evil = Buffer.concat([PACKAGE_MAGIC, l, h, buf.subarray(12 + len)]);
    expect((await refusal(Promise.resolve().then(() => unpack(evil)))).code).toBe('path-traversal');
  });

  it('refuses a tampered component (bad-digest), a bad signature, an unknown key, and a policy violation', async () => {
    const pkg = await build();
    const flipped = Buffer.from(component);
    flipped[100]! ^= 1;
    expect(
      (
        await refusal(
          verifyPackage(replaceFile(pkg, PACKAGE_FILES.component, flipped), { trustStore: trust, policy }),
        )
      ).code,
    ).toBe('bad-digest');
    const m = JSON.parse(Buffer.from(unpack(pkg).files.get(PACKAGE_FILES.manifest)!).toString());
    m.capabilities.deadlineMs = 499;
    expect(
      (
        await refusal(
          verifyPackage(replaceFile(pkg, PACKAGE_FILES.manifest, Buffer.from(JSON.stringify(m))), {
            trustStore: trust,
            policy,
          }),
        )
      ).code,
    ).toBe('bad-signature');
    const foreign = await makeTestPackage({
      keyPair: stranger,
      componentBytes: component,
      name: 'demo-driver',
      version: '1.0.0',
    });
    expect((await refusal(verifyPackage(foreign, { trustStore: trust, policy }))).code).toBe('unknown-key');
    const greedy = await build({ imports: ['wasi:sockets/tcp@0.2.3'] });
    const e = await refusal(verifyPackage(greedy, { trustStore: trust, policy }));
    expect(e.code).toBe('capability-refused');
    expect(e.message).toContain('wasi:sockets/tcp@0.2.3');
  });

  it('refuses a README changed after signing (the sigstore statement covers every file)', async () => {
    const pkg = await build();
    const e = await refusal(
      verifyPackage(replaceFile(pkg, PACKAGE_FILES.readme, Buffer.from('# pwned\n')), {
        trustStore: trust,
        policy,
      }),
    );
    expect(e.code).toBe('bad-signature');
    expect(e.message).toContain('sigstore');
  });

  it('refuses an oversized package before parsing it', async () => {
    const pkg = await build();
    expect(
      (await refusal(verifyPackage(pkg, { trustStore: trust, policy, maxBytes: pkg.byteLength - 1 }))).code,
    ).toBe('too-large');
  });

  it('verifies transparency-log inclusion against a pinned log, and refuses an entry that does not verify', async () => {
    const log = new TestTransparencyLog();
    await build({ version: '0.9.0' }).then((p) => log.witness(p)); // a tree of more than one leaf
    const witnessed = log.witness(await build());
    const ok = await verifyPackage(witnessed, { trustStore: trust, policy, pinnedLogs: [log.pinned] });
    expect(ok.tlogEntries).toBe(1);
    // Present but not verifiable: the log is not pinned.
    expect((await refusal(verifyPackage(witnessed, { trustStore: trust, policy }))).code).toBe(
      'tlog-invalid',
    );
    // Present but forged: pinned log, proof for another tree.
    const bundle = JSON.parse(Buffer.from(unpack(witnessed).files.get(PACKAGE_FILES.sigstore)!).toString());
    bundle.verificationMaterial.tlogEntries[0].inclusionProof.rootHash = Buffer.alloc(32, 7).toString(
      'base64',
    );
    bundle.verificationMaterial.tlogEntries[0].inclusionProof.hashes = [
      Buffer.alloc(32, 9).toString('base64'),
    ];
    const forged = replaceFile(witnessed, PACKAGE_FILES.sigstore, Buffer.from(JSON.stringify(bundle)));
    const e = await refusal(verifyPackage(forged, { trustStore: trust, policy, pinnedLogs: [log.pinned] }));
    expect(e.code).toBe('tlog-invalid');
  });

  it('packs only the allowed files', () => {
    const files = new Map([[PACKAGE_FILES.component, new Uint8Array(1)]]);
    expect(() => packFiles(files)).toThrow(/needs/);
  });
});
