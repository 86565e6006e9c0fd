/**
 * Shared set-up for the gRPC end-to-end tests and the gRPC benchmark: a kernel started with startKernel
 * on a free loopback port with the gateway services, the real host interfaces (embedded kv, log, clock,
 * digest), and the system components that can be had:
 *
 *   1. drivers/<name>/dist/<name>.wasm (or component.wasm) when the drivers have been built;
 *   2. else drivers/<name>/src built with the SDK into a cache outside the repository;
 *   3. else, for memory only, test/grpc/fixtures/memory-fixture.js (an in-memory implementation of
 *      cam:kernel/memory, so the context syscalls can be exercised before the real driver exists);
 *   4. else the service stays missing and its syscalls must answer UNIMPLEMENTED.
 *
 * CAM_OS_TEST_MEMORY=fixture skips 1-2 for memory (to test the gateway while the real driver is in flux);
 * CAM_OS_TEST_SYSTEM=none loads no system component (to check the UNIMPLEMENTED answers).
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuthConfig } from '../../host/src/auth/config.js';
import { Gateway } from '../../host/src/grpc/gateway.js';
import { gatewayServices } from '../../host/src/grpc/index.js';
import { hostInterfaces } from '../../host/src/host-interfaces/index.js';
import type { Kernel } from '../../host/src/kernel/kernel.js';
import { openKv } from '../../host/src/kv/index.js';
import type { KvStore } from '../../host/src/kv/types.js';
import { DEFAULT_ALLOWED_IMPORTS } from '../../host/src/server/config.js';
import { type RunningKernel, startKernel } from '../../host/src/server/server.js';

/** The repository root, found upward so the harness also works bundled (bench/.out/). */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'wit')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return resolve(from, '..', '..');
}
export const SYSTEM = ['scheduler', 'arbitration', 'memory'] as const;
export type SystemName = (typeof SYSTEM)[number];

const WORLD_IMPORTS: Record<SystemName, string[]> = {
  scheduler: ['cam:kernel/clock@0.1.0', 'cam:kernel/log@0.1.0'],
  arbitration: ['cam:kernel/kv@0.1.0', 'cam:kernel/log@0.1.0', 'cam:kernel/clock@0.1.0'],
  memory: [
    'cam:kernel/kv@0.1.0',
    'cam:kernel/log@0.1.0',
    'cam:kernel/clock@0.1.0',
    'cam:kernel/digest@0.1.0',
  ],
};

export interface SystemComponent {
  name: SystemName;
  /** Where the bytes came from: 'dist', 'source', 'fixture'. */
  origin: 'dist' | 'source' | 'fixture';
}

export interface TestKernel {
  running: RunningKernel;
  gateway: Gateway;
  dataDir: string;
  address: string;
  loaded: SystemComponent[];
  missing: Array<{ name: SystemName; why: string }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  auth?: AuthConfig;
  /** Load scheduler / arbitration / memory (default true). */
  system?: boolean;
  dataDir?: string;
}

export async function startTestKernel(opts: StartOptions = {}): Promise<TestKernel> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'cam-grpc-test-'));
  const running = await startKernel(
    {
      dataDir,
      listen: '127.0.0.1:0',
      kv: { backend: 'embedded' },
      tpm: 'none',
      devMode: false,
      allowedImports: DEFAULT_ALLOWED_IMPORTS,
    },
    gatewayServices({ auth: opts.auth }),
  );
  let kv: KvStore | undefined;
  const loaded: SystemComponent[] = [];
  const missing: Array<{ name: SystemName; why: string }> = [];
  try {
    if (process.env.CAM_OS_TEST_SYSTEM === 'none' && (opts.system ?? true)) {
      for (const name of SYSTEM) missing.push({ name, why: 'not loaded: CAM_OS_TEST_SYSTEM=none' });
    } else if (opts.system ?? true) {
      kv = await openKv({ backend: 'embedded', path: join(dataDir, 'kv') });
      for (const hi of hostInterfaces({ kv })) running.kernel.provide(hi);
      for (const name of SYSTEM) {
        const r = await loadSystemComponent(running.kernel, name);
        if ('why' in r) missing.push({ name, why: r.why });
        else loaded.push(r);
      }
    }
  } catch (e) {
    await running.stop();
    throw e;
  }
  return {
    running,
    gateway: Gateway.for(running),
    dataDir,
    address: running.address,
    loaded,
    missing,
    async stop() {
      await running.stop();
      await kv?.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function loadSystemComponent(
  kernel: Kernel,
  name: SystemName,
): Promise<SystemComponent | { why: string }> {
  const dist = join(ROOT, 'drivers', name, 'dist');
  const forceFixture = name === 'memory' && process.env.CAM_OS_TEST_MEMORY === 'fixture';
  const wasm = forceFixture
    ? undefined
    : [join(dist, `${name}.wasm`), join(dist, 'component.wasm')].find((p) => existsSync(p));
  let bytes: Uint8Array | undefined;
  let imports = WORLD_IMPORTS[name];
  let origin: SystemComponent['origin'] = 'dist';
  const errors: string[] = [];
  if (wasm) {
    bytes = readFileSync(wasm);
    const manifest = join(dist, 'manifest.json');
    if (existsSync(manifest)) {
      imports = (JSON.parse(readFileSync(manifest, 'utf8')) as { capabilities: { imports: string[] } })
        .capabilities.imports;
    }
  } else {
    const built = await buildFromSource(name, forceFixture).catch((e: Error) => {
      errors.push(`building drivers/${name}/src failed: ${e.message.split('\n')[0]}`);
      return undefined;
    });
    if (built) {
      bytes = built.bytes;
      imports = built.imports;
      origin = built.origin;
    }
  }
  if (!bytes) return { why: errors[0] ?? `drivers/${name} is neither built nor buildable here` };
  try {
    await kernel.load({ name, bytes, imports, memoryMaxPages: 2048, deadlineMs: 5000, concurrency: 1 });
  } catch (e) {
    return { why: `loading ${name} (${origin}) failed: ${(e as Error).message}` };
  }
  return { name, origin };
}

const CACHE = join(tmpdir(), 'cam-os-test-cache', 'grpc-drivers');

async function buildFromSource(
  name: SystemName,
  forceFixture: boolean,
): Promise<{ bytes: Uint8Array; imports: string[]; origin: 'source' | 'fixture' } | undefined> {
  const driverJson = join(ROOT, 'drivers', name, 'driver.json');
  let entry: string;
  let world: string;
  let origin: 'source' | 'fixture';
  if (existsSync(driverJson) && !forceFixture) {
    const desc = JSON.parse(readFileSync(driverJson, 'utf8')) as { entry: string; world: string };
    entry = join(ROOT, 'drivers', name, desc.entry);
    world = desc.world;
    origin = 'source';
  } else if (name === 'memory') {
    entry = join(ROOT, 'test', 'grpc', 'fixtures', 'memory-fixture.js');
    world = 'memory-component';
    origin = 'fixture';
  } else {
    return undefined;
  }
  const sdkBuild = join(ROOT, 'sdk', 'dist', 'build', 'index.js');
  if (!existsSync(sdkBuild)) throw new Error('sdk/dist is missing: run `npx tsc -b` first');
  const { buildComponent } = (await import(sdkBuild)) as {
    buildComponent(o: Record<string, unknown>): Promise<{ wasmPath: string; imports: string[] }>;
  };
  const outDir = join(CACHE, `${name}-${process.pid}`);
  const r = await buildComponent({ entry, world, outDir, cacheDir: join(CACHE, 'cache'), name });
  const bytes = readFileSync(r.wasmPath);
  rmSync(outDir, { recursive: true, force: true });
  return { bytes, imports: r.imports, origin };
}
