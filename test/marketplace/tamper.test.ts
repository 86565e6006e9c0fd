/**
 * Issue 7 acceptance: tampered registries and packages, served by a real HTTP registry on loopback, are each
 * refused with their specific error before anything is written — and the installed set (every directory
 * and file under <data-dir>/marketplace, lockfile included) stays byte-identical. A real kernel runs
 * throughout; what it runs is checked too.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeComponentBytes, testKeyPair } from '../../host/src/trust/testing.js';
import { MarketplaceError } from '../../marketplace/src/errors.js';
import { PACKAGE_FILES, PACKAGE_MAGIC, sha256, unpack } from '../../marketplace/src/package-format.js';
import { publishToDirectory } from '../../marketplace/src/registry.js';
import {
  packagePath,
  type RegistryIndex,
  serializeIndex,
  signIndex,
} from '../../marketplace/src/registry-index.js';
import { makeTestPackage, replaceFile } from '../../marketplace/src/testing.js';
import { installedSetHash, pkg, publisher, startWorld, stranger, type World } from './harness.js';

let w: World;

const indexFile = () => join(w.registryDir, 'index.json');
const readIndex = () => JSON.parse(readFileSync(indexFile(), 'utf8')) as RegistryIndex;
const writeIndex = (i: RegistryIndex) => writeFileSync(indexFile(), serializeIndex(i));

/** Puts bytes at a package's place in the registry and makes its index entry match them (a consistent attacker). */
function plant(name: string, version: string, bytes: Uint8Array, base?: { name: string; version: string }) {
  writeFileSync(join(w.registryDir, packagePath(name, version)), bytes);
  const index = readIndex();
  const from = base
    ? index.packages[base.name]!.versions[base.version]!
    : index.packages[name]!.versions[version]!;
  index.packages[name] ??= { description: '', versions: {} };
  index.packages[name]!.versions[version] = { ...from, digest: sha256(bytes), size: bytes.byteLength };
  writeIndex(index);
}

async function refused(
  code: MarketplaceError['code'],
  action: () => Promise<unknown>,
): Promise<MarketplaceError> {
  const before = installedSetHash(w.dataDir);
  const running = await w.control.list();
  const err = await action().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(MarketplaceError);
  expect((err as MarketplaceError).code, (err as Error).message).toBe(code);
  expect(installedSetHash(w.dataDir)).toBe(before);
  expect(await w.control.list()).toEqual(running);
  return err as MarketplaceError;
}

describe('tampered registries and packages are refused and change nothing', () => {
  beforeAll(async () => {
    w = await startWorld();
    // What the attacker starts from: a consistent, honest registry.
    for (const [n, v, over] of [
      ['alpha', '1.0.0', {}],
      ['alpha', '1.1.0', {}],
      ['beta', '1.0.0', {}],
      ['gamma', '1.0.0', {}],
      ['delta', '1.0.0', {}],
      ['delta', '2.0.0', {}],
      ['big', '1.0.0', { padTo: 200_000 }],
      ['cyc-a', '1.0.0', { dependencies: [{ name: 'cyc-b', range: '^1.0.0' }] }],
      ['cyc-b', '1.0.0', { dependencies: [{ name: 'cyc-a', range: '^1.0.0' }] }],
    ] as const)
      await publishToDirectory(w.registryDir, await pkg(n, v, over));
    await publishToDirectory(w.registryDir, await pkg('foreign', '1.0.0', { keyPair: stranger }));
    // An honest install first, so the installed set is not empty: alpha@1.0.0 (1.1.0 is seen in the index).
    const m = await w.marketplace();
    const r = await m.install(['alpha@1.0.0']);
    expect(r.changed).toEqual([{ name: 'alpha', version: '1.0.0', action: 'install' }]);
    expect((await m.lockfile()).highestSeen.alpha).toBe('1.1.0');
  });
  afterAll(async () => {
    await w?.stop();
  });

  it('bad digest: package bytes changed on the registry, index untouched', async () => {
    const file = join(w.registryDir, packagePath('beta', '1.0.0'));
    const bytes = readFileSync(file);
    bytes[bytes.length - 10]! ^= 0xff;
    writeFileSync(file, bytes);
    const e = await refused('bad-digest', async () => (await w.marketplace()).install(['beta']));
    expect(e.message).toContain('the index says');
  });

  it('bad signature: signed manifest edited and the index updated to match the new file', async () => {
    const good = await pkg('beta', '1.0.0');
    const m = JSON.parse(Buffer.from(unpack(good).files.get(PACKAGE_FILES.manifest)!).toString());
    m.capabilities.deadlineMs = 5000;
    plant('beta', '1.0.0', replaceFile(good, PACKAGE_FILES.manifest, Buffer.from(JSON.stringify(m))));
    const e = await refused('bad-signature', async () => (await w.marketplace()).install(['beta']));
    expect(e.message).toMatch(/signature/);
  });

  it('unknown key: a package signed by a publisher the operator does not trust', async () => {
    const e = await refused('unknown-key', async () => (await w.marketplace()).install(['foreign']));
    expect(e.message).toContain(stranger.keyId);
  });

  it('yanked version: asked for by exact version, and the only match of a range', async () => {
    const index = readIndex();
    index.packages.gamma!.versions['1.0.0']!.yanked = true;
    writeIndex(index);
    await refused('yanked', async () => (await w.marketplace()).install(['gamma@1.0.0']));
    await refused('yanked', async () => (await w.marketplace()).install(['gamma@^1.0.0']));
  });

  it('downgrade attack: a rolled-back index that no longer offers 1.1.0, and an explicit older version', async () => {
    const index = readIndex();
    const saved = structuredClone(index);
    delete index.packages.alpha!.versions['1.1.0'];
    writeIndex(index);
    const e = await refused('downgrade', async () => (await w.marketplace()).upgrade('alpha'));
    expect(e.message).toContain('stale or rolled back');
    writeIndex(saved);
    // An older alpha, properly signed, offered as an "install".
    await publishToDirectory(w.registryDir, await pkg('alpha', '0.9.0'));
    await refused('downgrade', async () => (await w.marketplace()).install(['alpha@0.9.0']));
  });

  it('index entry pointing at another package: delta@2.0.0 serves the signed delta@1.0.0', async () => {
    const old = readFileSync(join(w.registryDir, packagePath('delta', '1.0.0')));
    plant('delta', '2.0.0', old);
    const e = await refused('index-mismatch', async () => (await w.marketplace()).install(['delta@2.0.0']));
    expect(e.message).toContain('delta@1.0.0');
    // Or at a different package altogether.
    copyFileSync(
      join(w.registryDir, packagePath('gamma', '1.0.0')),
      join(w.registryDir, packagePath('delta', '2.0.0')),
    );
    plant('delta', '2.0.0', readFileSync(join(w.registryDir, packagePath('delta', '2.0.0'))));
    await refused('index-mismatch', async () => (await w.marketplace()).install(['delta@2.0.0']));
  });

  it('path traversal inside the package: a file named ../../LICENSE', async () => {
    const good = Buffer.from(await pkg('delta', '2.0.0'));
    const len = good.readUInt32BE(8);
    const header = JSON.parse(good.subarray(12, 12 + len).toString()) as { files: Array<{ path: string }> };
    const i = header.files.findIndex((f) => f.path === PACKAGE_FILES.license);
    header.files[i]!.path = '../../../LICENSE';
    const h = Buffer.from(JSON.stringify(header));
    const l = Buffer.alloc(4);
    l.writeUInt32BE(h.length);
    plant('delta', '2.0.0', Buffer.concat([PACKAGE_MAGIC, l, h, good.subarray(12 + len)]));
    const e = await refused('path-traversal', async () => (await w.marketplace()).install(['delta@2.0.0']));
    expect(e.message).toContain('../../../LICENSE');
  });

  it('oversized package: over the limit by the index, and a registry sending more than the index said', async () => {
    await refused('too-large', async () =>
      (await w.marketplace({ maxPackageBytes: 100_000 })).install(['big']),
    );
    const index = readIndex();
    index.packages.big!.versions['1.0.0']!.size = 50_000;
    writeIndex(index);
    const e = await refused('too-large', async () => (await w.marketplace()).install(['big']));
    expect(e.message).toContain('sent more than 50000 bytes');
  });

  it('dependency cycle: cyc-a -> cyc-b -> cyc-a', async () => {
    const e = await refused('dependency-cycle', async () => (await w.marketplace()).install(['cyc-a']));
    expect(e.message).toContain('cyc-a -> cyc-b -> cyc-a');
  });

  it('capability policy: a driver asking for an import the operator does not allow', async () => {
    await publishToDirectory(
      w.registryDir,
      await pkg('greedy', '1.0.0', { imports: ['wasi:sockets/tcp@0.2.3'] }),
    );
    const e = await refused('capability-refused', async () => (await w.marketplace()).install(['greedy']));
    expect(e.message).toContain('wasi:sockets/tcp@0.2.3');
  });

  it('kernel refusal midway: the dependency already loaded is unloaded again, nothing is written', async () => {
    // stack-app is validly signed but is not a loadable component, so the kernel refuses it after stack-lib loaded.
    await publishToDirectory(w.registryDir, await pkg('stack-lib', '1.0.0'));
    await publishToDirectory(
      w.registryDir,
      await makeTestPackage({
        keyPair: publisher,
        componentBytes: fakeComponentBytes(4096),
        name: 'stack-app',
        version: '1.0.0',
        dependencies: [{ name: 'stack-lib', range: '^1.0.0' }],
      }),
    );
    const loads: string[] = [];
    const e = await refused('kernel-refused', async () =>
      (await w.marketplace({ onProgress: (p) => p.phase === 'load' && loads.push(p.name) })).install([
        'stack-app',
      ]),
    );
    expect(e.message).toContain('stack-app@1.0.0');
    expect(loads).toEqual(['stack-lib', 'stack-app']);
  });

  it('the kernel still runs only what was installed honestly', async () => {
    expect((await w.control.list()).map((c) => `${c.name}@${c.version}`)).toEqual(['alpha@1.0.0']);
  });
});

describe('a signed registry index: rollback, tampering, stripping and foreign keys are refused', () => {
  const registryKey = testKeyPair('marketplace-acceptance-registry');
  const rogueKey = testKeyPair('marketplace-acceptance-rogue-registry');
  let rolledBack: string;

  beforeAll(async () => {
    w = await startWorld([publisher, registryKey]);
    await publishToDirectory(w.registryDir, await pkg('signed-a', '1.0.0'), { key: registryKey });
    rolledBack = readFileSync(indexFile(), 'utf8'); // serial 1
    await publishToDirectory(w.registryDir, await pkg('signed-b', '1.0.0'), { key: registryKey });
    await publishToDirectory(w.registryDir, await pkg('signed-b', '1.1.0'), { key: registryKey });
    const m = await w.marketplace();
    await m.install(['signed-a']);
    expect((await m.lockfile()).registries?.[w.http.url]).toEqual({ keyId: registryKey.keyId, serial: 3 });
  });
  afterAll(async () => {
    await w?.stop();
  });

  it('publishing to a signed registry without its key is refused', async () => {
    const e = await publishToDirectory(w.registryDir, await pkg('signed-c', '1.0.0')).catch(
      (x: unknown) => x,
    );
    expect((e as MarketplaceError).code).toBe('unauthorized');
    expect(readIndex().serial).toBe(3);
  });

  it('an index rolled back to an older signed state (lower serial)', async () => {
    const current = readFileSync(indexFile(), 'utf8');
    writeFileSync(indexFile(), rolledBack);
    const e = await refused('downgrade', async () => (await w.marketplace()).install(['signed-b']));
    expect(e.message).toContain('serial 1, older than serial 3');
    writeFileSync(indexFile(), current);
  });

  it('an index changed after signing', async () => {
    const current = readFileSync(indexFile(), 'utf8');
    const index = readIndex();
    index.packages['signed-b']!.versions['1.1.0']!.yanked = true;
    writeIndex(index);
    await refused('bad-signature', async () => (await w.marketplace()).install(['signed-b']));
    writeFileSync(indexFile(), current);
  });

  it('an index with its signature stripped', async () => {
    const current = readFileSync(indexFile(), 'utf8');
    const { signature: _s, serial: _n, ...unsigned } = readIndex();
    writeIndex(unsigned as RegistryIndex);
    const e = await refused('downgrade', async () => (await w.marketplace()).install(['signed-b']));
    expect(e.message).toContain('was signed before');
    writeFileSync(indexFile(), current);
  });

  it('an index re-signed by a key the operator does not trust', async () => {
    const current = readFileSync(indexFile(), 'utf8');
    writeIndex(await signIndex({ ...readIndex(), serial: 10 }, rogueKey));
    const e = await refused('unknown-key', async () => (await w.marketplace()).install(['signed-b']));
    expect(e.message).toContain(rogueKey.keyId);
    writeFileSync(indexFile(), current);
  });

  it('the current signed index still installs', async () => {
    const r = await (await w.marketplace()).install(['signed-b']);
    expect(r.changed).toEqual([{ name: 'signed-b', version: '1.1.0', action: 'install' }]);
  });
});
