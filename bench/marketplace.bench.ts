/**
 * Issue 7: installing a 1 MiB driver from a registry served over loopback HTTP into a running kernel —
 * signed index read and checked, download, verification (container, ML-DSA-65 + Ed25519 manifest, digest, trust store, sigstore
 * bundle, policy), staging, load over the admin gRPC API, lockfile commit — vs loading a component of the
 * same size straight through the admin API (the kernel's own verify + transpile + instantiate) in the same
 * run. Every iteration uses a component with its own digest, so neither side hits the transpile cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Marketplace,
  openRegistry,
  publishToDirectory,
  serveRegistry,
  verifyPackage,
} from '@cam-os/marketplace/index.js';
import { makeTestPackage } from '@cam-os/marketplace/testing.js';
import { boot } from '../host/src/server/boot.js';
import { loadConfig } from '../host/src/server/config.js';
import { buildFixture } from '../host/src/testing/fixtures.js';
import { publicKeyOf } from '../host/src/trust/keys.js';
import { signAndAttach } from '../host/src/trust/sign.js';
import { testKeyPair, testManifestBody } from '../host/src/trust/testing.js';
import { TrustStore } from '../host/src/trust/trust-store.js';
import { AdminClient } from '../sdk/src/admin-client.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'marketplace';
const N = 8;
const SIZE = 1 << 20;

/** Package names are kebab-case words: a, b, c… */
const letter = (i: number) => String.fromCharCode(97 + i);

function padded(base: Uint8Array, tag: string, size: number): Uint8Array {
  const name = Buffer.from('cam-os-bench');
  const head = Buffer.concat([Buffer.from([name.length]), name, Buffer.from(tag)]);
  // custom section: id 0, LEB128 size (5 bytes, padded form), payload
  const payloadLen = size - base.byteLength - 6;
  const payload = Buffer.concat([head, Buffer.alloc(payloadLen - head.length, 0x20)]);
  const len = Buffer.from([
    (payloadLen & 0x7f) | 0x80,
    ((payloadLen >> 7) & 0x7f) | 0x80,
    ((payloadLen >> 14) & 0x7f) | 0x80,
    ((payloadLen >> 21) & 0x7f) | 0x80,
    (payloadLen >> 28) & 0x7f,
  ]);
  return Buffer.concat([base, Buffer.from([0x00]), len, payload]);
}

export async function run(): Promise<BenchResult[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cam-bench-market-'));
  const registryDir = mkdtempSync(join(tmpdir(), 'cam-bench-registry-'));
  const config = loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {});
  const kernel = await boot(config, { systemComponents: false, log: () => {} });
  const http = await serveRegistry(registryDir);
  const admin = new AdminClient(kernel.address);
  try {
    const pair = testKeyPair('bench-marketplace');
    const registryKey = testKeyPair('bench-marketplace-registry');
    const store = await TrustStore.open(join(dataDir, 'trust'));
    await store.add(publicKeyOf(pair), { label: 'bench' });
    await store.add(publicKeyOf(registryKey), { label: 'bench registry' });
    const chaos = await buildFixture('chaos');
    const imports = ['wasi:cli/exit@0.2.3'];
    for (let i = 0; i <= N; i++) {
      const bytes = await makeTestPackage({
        keyPair: pair,
        componentBytes: padded(chaos, `market-${letter(i)}`, SIZE),
        name: `market-${letter(i)}`,
        version: '1.0.0',
        imports,
      });
      await publishToDirectory(registryDir, bytes, { key: registryKey });
    }
    const direct: Array<{ bytes: Uint8Array; manifest: string }> = [];
    for (let i = 0; i <= N; i++) {
      const bytes = padded(chaos, `direct-${letter(i)}`, SIZE);
      const body = testManifestBody(pair.keyId, bytes, {
        name: `direct-${letter(i)}`,
        world: 'test:fixtures/chaos-world',
        capabilities: { imports, memoryMaxPages: 32, deadlineMs: 500 },
        dependencies: [],
      });
      direct.push({ bytes, manifest: JSON.stringify(await signAndAttach(body, pair)) });
    }
    const m = new Marketplace({
      dataDir,
      registry: openRegistry(http.url),
      trustStore: store,
      policy: { allowedImports: config.allowedImports },
      kernel: {
        list: async () => (await admin.list()).map((c) => ({ name: c.name, version: c.version })),
        load: async (c, j) => {
          await admin.load(c, j);
        },
        swap: async () => {
          throw new Error('not used');
        },
        unload: async (n) => {
          await admin.unload(n);
        },
      },
      confirm: async () => true,
    });
    // Warm-up (liboqs, gRPC channel, HTTP keep-alive, jco) with iteration 0 of each.
    await admin.load(direct[0]!.bytes, direct[0]!.manifest);
    await m.install([`market-${letter(0)}`]);
    const baseline: number[] = [];
    const install: number[] = [];
    const fetchVerify: number[] = [];
    const index = await openRegistry(http.url).index();
    for (let i = 1; i <= N; i++) {
      let t = performance.now();
      await admin.load(direct[i]!.bytes, direct[i]!.manifest);
      baseline.push(performance.now() - t);
      t = performance.now();
      const r = await m.install([`market-${letter(i)}`]);
      install.push(performance.now() - t);
      if (r.changed.length !== 1) throw new Error(`market-${i} was not installed`);
      const name = `market-${letter(i)}`;
      t = performance.now();
      const pkg = await openRegistry(http.url).fetchPackage(
        name,
        '1.0.0',
        index.packages[name]!.versions['1.0.0']!,
      );
      await verifyPackage(pkg, {
        trustStore: store,
        policy: { allowedImports: config.allowedImports },
        expected: { name, version: '1.0.0' },
      });
      fetchVerify.push(performance.now() - t);
    }
    const running = (await admin.list()).filter((c) => c.name.startsWith('market-')).length;
    if (running !== N + 1) throw new Error(`expected ${N + 1} installed drivers running, found ${running}`);
    const b = stats(baseline);
    const s = stats(install);
    const f = stats(fetchVerify);
    const worst = Math.max(...install);
    return [
      {
        suite: SUITE,
        name: 'install 1 MiB driver from loopback HTTP registry (download, verify, load, commit)',
        unit: 'ms',
        median: round(s.median, 1),
        p99: round(s.p99, 1),
        baseline: {
          name: 'admin gRPC load of a 1 MiB component, no marketplace',
          median: round(b.median, 1),
        },
        target: '<= 2000 ms (every run)',
        met: worst <= 2000,
        notes: `${N} installs, slowest ${round(worst, 1)} ms; each component has its own digest (no transpile cache hit)`,
      },
      {
        suite: SUITE,
        name: 'download + verify 1 MiB package over loopback HTTP (no load)',
        unit: 'ms',
        median: round(f.median, 1),
        p99: round(f.p99, 1),
        notes:
          'index fetched once; package download, size/digest check, container, signatures, sigstore, policy',
      },
    ];
  } finally {
    admin.close();
    await http.close();
    await kernel.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(registryDir, { recursive: true, force: true });
  }
}
