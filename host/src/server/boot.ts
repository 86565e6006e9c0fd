/**
 * `cam-os up`: everything a kernel on its embedded defaults runs, wired in one place — the gRPC services,
 * the host interfaces over the configured key-value backend, and the signed system components.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authConfigFrom } from '../auth/config.js';
import { type DashboardServer, startDashboard } from '../dashboard/server.js';
import { federationWiring } from '../federation/index.js';
import { gatewayServices } from '../grpc/index.js';
import { hostInterfaces } from '../host-interfaces/index.js';
import { type KvStore, openKv } from '../kv/index.js';
import { Observability } from '../observability/index.js';
import { securitySyscalls } from '../syscalls/security.js';
import { TelemetryStore } from '../syscalls/telemetry.js';
import { importPublicKey } from '../trust/keys.js';
import { KERNEL_VERSION } from '../version.js';
import type { KernelConfig } from './config.js';
import { type RunningKernel, startKernel } from './server.js';

export interface BootedKernel extends RunningKernel {
  version: string;
  kv: KvStore;
  /** Metrics, traces, structured logs (host/src/observability). */
  observability: Observability;
  /** The HTTP listener (dashboard, /metrics, /healthz, /traces); undefined when config.http is 'off'. */
  dashboard: DashboardServer | undefined;
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
  /**
   * Sink for log lines, one JSON object per line (default: stderr): the guests' (cam:kernel/log) and the
   * kernel's own (component "kernel"), with trace ids when written inside a traced call.
   */
  log?: (line: string) => void;
}

export async function boot(config: KernelConfig, opts: BootOptions = {}): Promise<BootedKernel> {
  const kv = await openKv(
    config.kv.backend === 'embedded' ? { backend: 'embedded', path: join(config.dataDir, 'kv') } : config.kv,
  );
  let running: RunningKernel;
  const auth = authConfigFrom(config.dataDir);
  const telemetry = new TelemetryStore();
  // Federation (docs/federation.md): only when configured; a plain `cam-os up` does not pay for it.
  const federation = config.federation ? federationWiring(config.federation) : undefined;
  let obs: Observability | undefined;
  const services = gatewayServices({
    auth,
    telemetry,
    // The security syscalls run on the kernel's own trust anchors (loader, TPM).
    overrides: (env, ctx) => [
      ...securitySyscalls({ loader: ctx.loader, tpm: ctx.tpm }),
      ...(federation?.overrides(env) ?? []),
    ],
  });
  try {
    running = await startKernel(config, federation ? [...services, federation.service] : services, {
      auth,
      instrument: (ctx) => {
        obs = new Observability(ctx, { log: opts.log, traceSampleRatio: config.traceSampleRatio });
        obs.attachTelemetry(telemetry);
        return (service, impl) => obs!.tracing.instrumentService(service, impl);
      },
    });
  } catch (e) {
    await obs?.stop();
    await kv.close();
    throw e;
  }
  const observability = obs!;
  observability.start();
  let dashboard: DashboardServer | undefined;
  if (config.http && config.http !== 'off') {
    try {
      dashboard = await startDashboard({
        ctx: running,
        obs: observability,
        auth,
        listen: config.http,
        audit: () => running.audit,
      });
    } catch (e) {
      await running.stop();
      await observability.stop();
      await kv.close();
      throw e;
    }
  }
  for (const iface of hostInterfaces({ kv, log: { sink: observability.logger.guestSink() } }))
    running.kernel.provide(iface);
  const booted: BootedKernel = {
    ...running,
    version: KERNEL_VERSION,
    kv,
    observability,
    dashboard,
    async stop() {
      services.health.setAll('NOT_SERVING');
      await federation?.stop();
      await dashboard?.close();
      await running.stop();
      await observability.stop();
      await kv.close();
    },
  };
  if (opts.systemComponents !== false) await loadSystemComponents(booted);
  if (federation && opts.systemComponents !== false) {
    await federation.start(booted, systemDir(), opts.log).catch(async (e) => {
      await booted.stop();
      throw e;
    });
  }
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
