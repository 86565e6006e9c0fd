/**
 * Issue 7: the whole life of a driver through a real loopback HTTP registry and a real kernel — publish
 * (authenticated), install with a dependency, consent, upgrade with a permission diff, rollback, uninstall —
 * and the same install offline from a directory registry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { boot } from '@cam-os/host/server/boot.js';
import { loadConfig } from '@cam-os/host/server/config.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MarketplaceError } from '../../marketplace/src/errors.js';
import type { Review } from '../../marketplace/src/marketplace.js';
import { openRegistry } from '../../marketplace/src/registry.js';
import { loadInstalledAtStart } from '../../sdk/src/cli/commands-marketplace.js';
import { installedSetHash, PUBLISH_TOKEN, pkg, startWorld, type World } from './harness.js';

let w: World;

const CLOCK = 'wasi:clocks/monotonic-clock@0.2.3';

describe('install, upgrade, rollback and uninstall against a running kernel', () => {
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => {
    await w?.stop();
  });

  it('publishes over HTTP only with the bearer token', async () => {
    const reg = openRegistry(w.http.url);
    const lib = await pkg('dep-lib', '1.0.0');
    const err = await reg.publish(lib, { token: 'wrong-token-wrong-token' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MarketplaceError);
    expect((err as MarketplaceError).code).toBe('unauthorized');
    expect((await reg.index()).packages['dep-lib']).toBeUndefined();
    const r = await reg.publish(lib, { token: PUBLISH_TOKEN });
    expect(r).toMatchObject({ name: 'dep-lib', version: '1.0.0', created: true });
    // Publishing the same bytes again is a no-op; other bytes under the same version are a conflict.
    expect((await reg.publish(lib, { token: PUBLISH_TOKEN })).created).toBe(false);
    const other = await pkg('dep-lib', '1.0.0', { readme: '# dep-lib\n\nchanged\n' });
    const c = await reg.publish(other, { token: PUBLISH_TOKEN }).catch((e: unknown) => e);
    expect((c as MarketplaceError).code).toBe('conflict');
    for (const p of [
      await pkg('app', '1.0.0', { dependencies: [{ name: 'dep-lib', range: '^1.0.0' }] }),
      await pkg('app', '1.1.0', {
        dependencies: [{ name: 'dep-lib', range: '^1.0.0' }],
        imports: ['wasi:cli/exit@0.2.3', CLOCK],
      }),
    ])
      await reg.publish(p, { token: PUBLISH_TOKEN });
    expect((await reg.index()).packages.app!.versions['1.1.0']!.imports).toContain(CLOCK);
  });

  it('install resolves the dependency, shows imports and signer, and loads both into the kernel', async () => {
    const reviews: Review[] = [];
    const progress: string[] = [];
    const m = await w.marketplace({
      confirm: async (r) => {
        reviews.push(r);
        return true;
      },
      onProgress: (e) => progress.push(e.phase),
    });
    const r = await m.install(['app@~1.0.0']);
    expect(r.changed.map((c) => `${c.name}@${c.version}`)).toEqual(['dep-lib@1.0.0', 'app@1.0.0']);
    expect(reviews[0]!.items.map((i) => [i.name, i.dependency, i.imports, i.publisherLabel])).toEqual([
      ['dep-lib', true, ['wasi:cli/exit@0.2.3'], 'marketplace test publisher'],
      ['app', false, ['wasi:cli/exit@0.2.3'], 'marketplace test publisher'],
    ]);
    expect(progress).toContain('download');
    expect(progress).toContain('verify');
    expect((await w.control.list()).map((c) => `${c.name}@${c.version}`).sort()).toEqual([
      'app@1.0.0',
      'dep-lib@1.0.0',
    ]);
    const lock = await m.lockfile();
    expect(lock.packages.app).toMatchObject({ version: '1.0.0', requested: true });
    expect(lock.packages['dep-lib']).toMatchObject({ version: '1.0.0', requested: false });
    const files = join(w.dataDir, 'marketplace', 'packages', 'app', '1.0.0', 'files');
    expect(readFileSync(join(files, 'README.md'), 'utf8')).toContain('app');
    expect(existsSync(join(files, 'LICENSE'))).toBe(true);
  });

  it('upgrade shows the new import, and a refusal changes nothing', async () => {
    const before = installedSetHash(w.dataDir);
    let seen: Review | undefined;
    const declining = await w.marketplace({
      confirm: async (r) => {
        seen = r;
        return false;
      },
    });
    const e = await declining.upgrade('app').catch((x: unknown) => x);
    expect((e as MarketplaceError).code).toBe('consent-declined');
    expect(seen!.items).toEqual([
      expect.objectContaining({
        name: 'app',
        action: 'upgrade',
        from: '1.0.0',
        version: '1.1.0',
        addedImports: [CLOCK],
        removedImports: [],
      }),
    ]);
    expect(installedSetHash(w.dataDir)).toBe(before);
    expect((await w.control.list()).find((c) => c.name === 'app')!.version).toBe('1.0.0');
  });

  it('upgrade with consent hot-swaps the running driver and keeps the old version for rollback', async () => {
    const m = await w.marketplace();
    const r = await m.upgrade();
    expect(r.changed).toEqual([{ name: 'app', version: '1.1.0', action: 'upgrade', from: '1.0.0' }]);
    expect(r.unchanged).toEqual([{ name: 'dep-lib', version: '1.0.0' }]);
    expect((await w.control.list()).find((c) => c.name === 'app')!.version).toBe('1.1.0');
    const lock = await m.lockfile();
    expect(lock.packages.app!.previous.map((v) => v.version)).toEqual(['1.0.0']);
    expect(lock.packages.app!.imports).toContain(CLOCK);
    // Nothing newer: a second upgrade changes nothing.
    expect((await m.upgrade('app')).changed).toEqual([]);
  });

  it('rollback returns to the previous installed version, in the kernel and in the lockfile', async () => {
    const m = await w.marketplace();
    const r = await m.rollback('app');
    expect(r).toMatchObject({ from: '1.1.0', to: '1.0.0', swapped: true });
    expect((await w.control.list()).find((c) => c.name === 'app')!.version).toBe('1.0.0');
    const lock = await m.lockfile();
    expect(lock.packages.app!.version).toBe('1.0.0');
    expect(lock.highestSeen.app).toBe('1.1.0');
    expect(existsSync(join(w.dataDir, 'marketplace', 'packages', 'app', '1.1.0'))).toBe(false);
    const again = await m.rollback('app').catch((x: unknown) => x);
    expect((again as MarketplaceError).code).toBe('no-previous-version');
  });

  it('uninstall refuses to remove a dependency in use, then removes and unloads', async () => {
    const m = await w.marketplace();
    const e = await m.uninstall('dep-lib').catch((x: unknown) => x);
    expect((e as MarketplaceError).code).toBe('in-use');
    expect(await m.uninstall('app')).toMatchObject({ name: 'app', unloaded: true });
    expect(await m.uninstall('dep-lib')).toMatchObject({ name: 'dep-lib', unloaded: true });
    expect(await w.control.list()).toEqual([]);
    expect(await m.list()).toEqual([]);
    expect(existsSync(join(w.dataDir, 'marketplace', 'packages', 'app'))).toBe(false);
  });

  it('installs offline from a directory registry', async () => {
    const { Marketplace } = await import('../../marketplace/src/marketplace.js');
    const base = await w.marketplace();
    const offline = new Marketplace({ ...base.options, registry: openRegistry(w.registryDir) });
    const r = await offline.install(['app@1.1.0']);
    expect(r.changed.map((c) => `${c.name}@${c.version}`)).toEqual(['dep-lib@1.0.0', 'app@1.1.0']);
    expect((await w.control.list()).map((c) => c.name).sort()).toEqual(['app', 'dep-lib']);
    expect((await offline.lockfile()).registry).toBe(w.registryDir);
  });
});

describe('after a kernel restart', () => {
  let v: World;
  beforeAll(async () => {
    v = await startWorld();
  });
  afterAll(async () => {
    await v?.stop();
  });

  it('loadInstalled re-verifies the installed set and loads it, dependencies first', async () => {
    const { publishToDirectory } = await import('../../marketplace/src/registry.js');
    await publishToDirectory(v.registryDir, await pkg('dep-lib', '1.0.0'));
    await publishToDirectory(
      v.registryDir,
      await pkg('app', '1.0.0', { dependencies: [{ name: 'dep-lib', range: '^1.0.0' }] }),
    );
    const m = await v.marketplace();
    await m.install(['app']);
    // What a restarted kernel looks like: nothing loaded, the installed set on disk.
    await v.admin.unload('app');
    await v.admin.unload('dep-lib');
    const loads: string[] = [];
    const again = await v.marketplace({ onProgress: (p) => p.phase === 'load' && loads.push(p.name) });
    const r = await again.loadInstalled();
    expect(r).toEqual({
      loaded: [
        { name: 'dep-lib', version: '1.0.0' },
        { name: 'app', version: '1.0.0' },
      ],
      failed: [],
      alreadyRunning: [],
    });
    expect(loads).toEqual(['dep-lib', 'app']);
    expect((await v.control.list()).map((c) => c.name).sort()).toEqual(['app', 'dep-lib']);
    expect((await again.loadInstalled()).alreadyRunning).toEqual(['dep-lib', 'app']);
  });

  it('`cam-os up` brings the installed set back with a restarted kernel', async () => {
    await v.kernel.stop();
    const k = await boot(loadConfig({ dataDir: v.dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {}), {
      systemComponents: false,
      log: () => {},
    });
    try {
      const r = await loadInstalledAtStart(v.dataDir, k);
      expect(r?.failed).toEqual([]);
      expect(r?.loaded.map((l) => l.name)).toEqual(['dep-lib', 'app']);
      expect(
        k.kernel
          .list()
          .map((c) => `${c.name}@${c.version}`)
          .sort(),
      ).toEqual(['app@1.0.0', 'dep-lib@1.0.0']);
    } finally {
      await k.stop();
    }
  });
});
