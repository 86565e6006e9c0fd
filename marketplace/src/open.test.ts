import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeyOf } from '@cam-os/host/trust/keys.js';
import { fakeComponentBytes, testKeyPair } from '@cam-os/host/trust/testing.js';
import { TrustStore } from '@cam-os/host/trust/trust-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MarketplaceError } from './errors.js';
import { openMarketplace, PINNED_LOGS_FILE } from './open.js';
import { publishToDirectory } from './registry.js';
import { makeTestPackage, TestTransparencyLog } from './testing.js';

const publisher = testKeyPair('marketplace-open-test');

describe('openMarketplace: trust store, policy and pinned transparency logs from the data dir', () => {
  let dataDir: string;
  let registry: string;
  const log = new TestTransparencyLog();
  const otherLog = new TestTransparencyLog('other-log.cam-os.test');

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cam-market-open-'));
    registry = mkdtempSync(join(tmpdir(), 'cam-market-open-reg-'));
    const store = await TrustStore.open(join(dataDir, 'trust'));
    await store.add(publicKeyOf(publisher), { label: 'open test' });
    mkdirSync(join(dataDir, 'marketplace'), { recursive: true });
    writeFileSync(join(dataDir, 'marketplace', PINNED_LOGS_FILE), JSON.stringify([log.pinned]));
    const make = (name: string) =>
      makeTestPackage({
        keyPair: publisher,
        componentBytes: fakeComponentBytes(4096),
        name,
        version: '1.0.0',
      });
    await publishToDirectory(registry, log.witness(await make('logged-driver')));
    await publishToDirectory(registry, otherLog.witness(await make('elsewhere-driver')));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(registry, { recursive: true, force: true });
  });

  it('installs a package whose bundle proves inclusion in a pinned log (installed set only, no kernel)', async () => {
    const m = await openMarketplace({ dataDir, registry, confirm: async () => true });
    const r = await m.install(['logged-driver']);
    expect(r).toMatchObject({ loaded: false, changed: [{ name: 'logged-driver', version: '1.0.0' }] });
    expect(
      existsSync(join(dataDir, 'marketplace', 'packages', 'logged-driver', '1.0.0', 'package.campkg')),
    ).toBe(true);
  });

  it('refuses a bundle whose log entry is from a log the operator did not pin', async () => {
    const m = await openMarketplace({ dataDir, registry, confirm: async () => true });
    const e = await m.install(['elsewhere-driver']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MarketplaceError);
    expect((e as MarketplaceError).code).toBe('tlog-invalid');
  });

  it('remembers the registry, and says so when there is none', async () => {
    const m = await openMarketplace({ dataDir });
    expect(m.options.registry.location).toBe(registry);
    const fresh = mkdtempSync(join(tmpdir(), 'cam-market-open-empty-'));
    try {
      const prev = process.env.CAM_OS_REGISTRY;
      delete process.env.CAM_OS_REGISTRY;
      await expect(openMarketplace({ dataDir: fresh })).rejects.toThrow(/--registry/);
      if (prev !== undefined) process.env.CAM_OS_REGISTRY = prev;
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('refuses a malformed pinned-logs file with the path in the message', async () => {
    writeFileSync(join(dataDir, 'marketplace', PINNED_LOGS_FILE), '{"baseUrl": 1}');
    await expect(openMarketplace({ dataDir, registry })).rejects.toThrow(PINNED_LOGS_FILE);
    writeFileSync(join(dataDir, 'marketplace', PINNED_LOGS_FILE), JSON.stringify([log.pinned]));
  });
});
