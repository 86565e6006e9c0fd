/**
 * `cam-os up`: everything a kernel on its embedded defaults runs, wired in one place — the gRPC services,
 * the host interfaces over the configured key-value backend, and the signed system components.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authConfigFrom } from '../auth/config.js';
import { gatewayServices } from '../grpc/index.js';
import { hostInterfaces } from '../host-interfaces/index.js';
import { type KvStore, openKv } from '../kv/index.js';
import { securitySyscalls } from '../syscalls/security.js';
import { importPublicKey } from '../trust/keys.js';
import { KERNEL_VERSION } from '../version.js';
import type { KernelConfig } from './config.js';
import { type RunningKernel, startKernel } from './server.js';

export interface BootedKernel extends RunningKernel {
  version: string;
  kv: KvStore;
}

/** The system components, in load order (memory first: nothing else depends on the others). */
export const SYSTEM_COMPONENTS = ['memory', 'scheduler', 'arbitration'] as const;

/** Where the build puts the system components and their signing key's public half. */
export function systemDir(env = process.env): string {
  return resolve(env.CAM_OS_SYSTEM_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'));
}

export interface BootOptions {
  /** Load the system components (default true). */
  systemComponents?: boolean;
  /** Sink for guest log lines, one JSON object per line (default: stderr). */
  log?: (line: string) => void;
}

export async function boot(config: KernelConfig, opts: BootOptions = {}): Promise<BootedKernel> {
  const kv = await openKv(
    config.kv.backend === 'embedded' ? { backend: 'embedded', path: join(config.dataDir, 'kv') } : config.kv,
  );
  let running: RunningKernel;
  const auth = authConfigFrom(config.dataDir);
  const services = gatewayServices({
    auth,
    // The security syscalls run on the kernel's own trust anchors (loader, TPM).
    overrides: (_env, ctx) => securitySyscalls({ loader: ctx.loader, tpm: ctx.tpm }),
  });
  try {
    running = await startKernel(config, services, { auth });
  } catch (e) {
    await kv.close();
    throw e;
  }
  for (const iface of hostInterfaces({ kv, log: opts.log ? { sink: opts.log } : {} }))
    running.kernel.provide(iface);
  const booted: BootedKernel = {
    ...running,
    version: KERNEL_VERSION,
    kv,
    async stop() {
      services.health.setAll('NOT_SERVING');
      await running.stop();
      await kv.close();
    },
  };
  if (opts.systemComponents !== false) await loadSystemComponents(booted);
  return booted;
}

/**
 * Load the signed system components built from this checkout. Their publisher is the checkout's build key
 * (.cam-os/system-publisher.pub.json, see drivers/sign.mjs); it is added to the trust store, labelled, the
 * first time. A component that is missing or refused is reported as a warning — its syscalls then answer
 * UNIMPLEMENTED naming it — and the kernel still starts.
 */
async function loadSystemComponents(k: BootedKernel): Promise<void> {
  const root = systemDir();
  const pubFile = join(root, '.cam-os', 'system-publisher.pub.json');
  const store = k.loader.options.trustStore;
  if (existsSync(pubFile)) {
    const key = importPublicKey(JSON.parse(readFileSync(pubFile, 'utf8')), pubFile);
    if (store.lookup(key.keyId).status === 'unknown') {
      await store.add(key, { label: 'local build: system components' });
    }
  }
  for (const name of SYSTEM_COMPONENTS) {
    const dist = join(root, 'drivers', name, 'dist');
    const wasm = join(dist, `${name}.wasm`);
    const manifest = join(dist, 'manifest.json');
    if (!existsSync(wasm) || !existsSync(manifest)) {
      k.warnings.push(
        `system component '${name}' is not built (run \`npm run build\`); its syscalls are unavailable`,
      );
      continue;
    }
    try {
      await k.loader.load(readFileSync(wasm), readFileSync(manifest, 'utf8'));
    } catch (e) {
      k.warnings.push(`system component '${name}' was refused: ${(e as Error).message}`);
    }
  }
}
