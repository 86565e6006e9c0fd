/**
 * Shared pieces of the marketplace acceptance tests: a real kernel (boot(), no system components, no TPM)
 * with its own data dir, a directory registry served over loopback HTTP by `serveRegistry`, real signed
 * packages of a real component, and a hash of the installed set (every file under
 * <data-dir>/marketplace, names and bytes) to show a refusal changed nothing.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { loadConfig } from '../../host/src/server/config.js';
import { buildFixture } from '../../host/src/testing/fixtures.js';
import { type PublisherKeyPair, publicKeyOf } from '../../host/src/trust/keys.js';
import { testKeyPair } from '../../host/src/trust/testing.js';
import { TrustStore } from '../../host/src/trust/trust-store.js';
import {
  type KernelControl,
  Marketplace,
  type MarketplaceOptions,
} from '../../marketplace/src/marketplace.js';
import { openRegistry } from '../../marketplace/src/registry.js';
import { type RunningRegistry, serveRegistry } from '../../marketplace/src/server.js';
import { makeTestPackage, type TestPackageInput } from '../../marketplace/src/testing.js';
import { AdminClient } from '../../sdk/src/admin-client.js';
import { adminControl } from '../../sdk/src/cli/commands-marketplace.js';

export const publisher = testKeyPair('marketplace-acceptance-publisher');
export const stranger = testKeyPair('marketplace-acceptance-stranger');
export const PUBLISH_TOKEN = 'marketplace-test-token-0123456789';

/** The chaos fixture with a tag in a custom section: a valid component with its own digest. */
export function tagged(base: Uint8Array, tag: string, padTo = 0): Uint8Array {
  const name = Buffer.from('cam-os-test');
  const pad = Math.max(0, padTo - base.byteLength - tag.length - 32);
  const payload = Buffer.concat([Buffer.from(tag), Buffer.alloc(pad, 0x20)]);
  const body = Buffer.concat([leb(name.length), name, payload]);
  return Buffer.concat([base, Buffer.from([0x00]), leb(body.length), body]);
}

function leb(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

let chaos: Uint8Array | undefined;
export async function chaosComponent(): Promise<Uint8Array> {
  chaos ??= await buildFixture('chaos');
  return chaos;
}

export async function pkg(
  name: string,
  version: string,
  over: Partial<TestPackageInput> & { padTo?: number } = {},
): Promise<Uint8Array> {
  const { padTo, ...rest } = over;
  return makeTestPackage({
    keyPair: publisher,
    componentBytes: tagged(await chaosComponent(), `${name}@${version}`, padTo),
    name,
    version,
    ...rest,
  });
}

export interface World {
  kernel: BootedKernel;
  dataDir: string;
  registryDir: string;
  http: RunningRegistry;
  admin: AdminClient;
  control: KernelControl;
  marketplace(over?: Partial<MarketplaceOptions>): Promise<Marketplace>;
  stop(): Promise<void>;
}

export async function startWorld(trusted: PublisherKeyPair[] = [publisher]): Promise<World> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cam-market-kernel-'));
  const registryDir = mkdtempSync(join(tmpdir(), 'cam-market-registry-'));
  const config = loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {});
  const kernel = await boot(config, { systemComponents: false, log: () => {} });
  const store = await TrustStore.open(join(dataDir, 'trust'));
  for (const k of trusted) await store.add(publicKeyOf(k), { label: 'marketplace test publisher' });
  const http = await serveRegistry(registryDir, { token: PUBLISH_TOKEN });
  const admin = new AdminClient(kernel.address);
  const control = adminControl(admin);
  return {
    kernel,
    dataDir,
    registryDir,
    http,
    admin,
    control,
    async marketplace(over = {}) {
      return new Marketplace({
        dataDir,
        registry: openRegistry(http.url),
        trustStore: await TrustStore.open(join(dataDir, 'trust')),
        policy: { allowedImports: config.allowedImports },
        kernel: control,
        confirm: async () => true,
        ...over,
      });
    },
    async stop() {
      admin.close();
      await http.close();
      await kernel.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(registryDir, { recursive: true, force: true });
    },
  };
}

/** SHA-256 over every path and file under <data-dir>/marketplace (the installed set and its lockfile). */
export function installedSetHash(dataDir: string): string {
  const root = join(dataDir, 'marketplace');
  const h = createHash('sha256');
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      const rel = relative(root, p);
      if (statSync(p).isDirectory()) {
        h.update(`d:${rel}\n`);
        walk(p);
      } else h.update(`f:${rel}:`).update(readFileSync(p)).update('\n');
    }
  };
  walk(root);
  return h.digest('hex');
}
