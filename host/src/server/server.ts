/**
 * A running kernel process: the Kernel, the syscall Dispatcher and the gRPC listener with the admin
 * service. Other gRPC services (the CAM-OS SyscallService, streaming sessions, health, reflection) plug
 * in through `services`. Writes `<data-dir>/kernel.json` so the CLI finds the kernel without flags.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Dispatcher } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { type ComponentInfo, Kernel } from '../kernel/kernel.js';
import { type Manifest, parseManifest, parseManifestJson } from '../trust/manifest.js';
import { KERNEL_VERSION } from '../version.js';
import { type KernelConfig, parseListen } from './config.js';
import { unary } from './grpc-errors.js';

export const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'proto');
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

export function loadProto(file: string): grpc.GrpcObject {
  const def = protoLoader.loadSync(join(PROTO_ROOT, file), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_ROOT],
  });
  return grpc.loadPackageDefinition(def);
}

/** A gRPC service the server should host, added by the issue that owns it. */
export interface ServiceRegistration {
  name: string;
  register(server: grpc.Server, ctx: KernelContext): void | Promise<void>;
}

export interface KernelContext {
  config: KernelConfig;
  kernel: Kernel;
  dispatcher: Dispatcher;
  startedAt: number;
  /** Plain-language warnings shown by status and HealthCheck. */
  warnings: string[];
  authMode: 'development' | 'authenticated';
}

export interface RunningKernel extends KernelContext {
  address: string;
  server: grpc.Server;
  stop(): Promise<void>;
}

export interface DiscoveryFile {
  pid: number;
  address: string;
  version: string;
  startedAt: number;
}

export async function startKernel(
  config: KernelConfig,
  services: ServiceRegistration[] = [],
): Promise<RunningKernel> {
  const listen = parseListen(config.listen);
  if (!listen.loopback) {
    throw new KernelError(
      'KERNEL_ERR_CONFIG_INVALID',
      `refusing to listen on ${config.listen} without TLS: plaintext is only allowed on loopback (127.0.0.0/8, [::1])`,
    );
  }
  mkdirSync(config.dataDir, { recursive: true });
  const kernel = new Kernel({ dataDir: config.dataDir });
  const dispatcher = new Dispatcher();
  const ctx: KernelContext = {
    config,
    kernel,
    dispatcher,
    startedAt: Date.now(),
    warnings: [],
    authMode: 'development',
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  registerAdmin(server, ctx, config.listen);
  for (const s of services) await s.register(server, ctx);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  ).catch(async (e: Error) => {
    await kernel.stop();
    throw new KernelError('KERNEL_ERR_CONFIG_INVALID', `cannot listen on ${config.listen}: ${e.message}`);
  });
  const address = `${listen.host}:${port}`;
  const discovery = join(config.dataDir, 'kernel.json');
  const info: DiscoveryFile = {
    pid: process.pid,
    address,
    version: KERNEL_VERSION,
    startedAt: ctx.startedAt,
  };
  writeFileSync(discovery, `${JSON.stringify(info, null, 2)}\n`);
  let stopped = false;
  return {
    ...ctx,
    address,
    server,
    async stop() {
      if (stopped) return;
      stopped = true;
      rmSync(discovery, { force: true });
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await kernel.stop();
    },
  };
}

function componentMessage(c: ComponentInfo) {
  const s = c.status;
  return {
    name: c.name,
    version: c.version ?? '',
    digest: c.digest,
    abi: c.abi ?? '',
    imports: c.imports,
    exports: c.exports,
    memory_max_pages: c.memoryMaxPages,
    deadline_ms: c.deadlineMs,
    concurrency: c.concurrency,
    loaded_at: c.loadedAt,
    health: s.health,
    restarts: s.restarts,
    calls: s.calls,
    failed_calls: s.failedCalls,
    last_error: s.lastError?.message ?? '',
    last_error_kind: s.lastError?.kind ?? '',
    last_error_at: s.lastError?.at ?? '',
    instances: s.instances.total,
    queued: s.queued,
    labels: c.labels,
  };
}

function registerAdmin(server: grpc.Server, ctx: KernelContext, listen: string): void {
  const pkg = loadProto('cam/admin/v1/admin.proto') as unknown as {
    cam: { admin: { v1: { AdminService: grpc.ServiceClientConstructor } } };
  };
  server.addService(pkg.cam.admin.v1.AdminService.service, {
    Status: unary(async () => ({
      version: KERNEL_VERSION,
      data_dir: ctx.config.dataDir,
      listen,
      auth_mode: ctx.authMode,
      started_at_ms: ctx.startedAt,
      pid: process.pid,
      rss_bytes: process.memoryUsage.rss(),
      components: ctx.kernel.list().map(componentMessage),
      syscalls: ctx.dispatcher.metrics().map((m) => ({
        name: m.name,
        group: m.group,
        calls: m.calls,
        errors: m.errors,
        p50_us: m.p50Us,
        p99_us: m.p99Us,
        available: m.available,
        missing: m.missing ?? '',
      })),
      warnings: ctx.warnings,
    })),
    ListComponents: unary(async () => ({ components: ctx.kernel.list().map(componentMessage) })),
    LoadComponent: unary(async (req: { component: Buffer; manifest_json: string }) => {
      const info = await loadWithManifest(ctx.kernel, req.component, req.manifest_json);
      return componentMessage(info);
    }),
    UnloadComponent: unary(async (req: { name: string }) => {
      await ctx.kernel.unload(req.name);
      return { name: req.name };
    }),
  });
}

/**
 * Load a component from its bytes and manifest JSON: the manifest is validated strictly, its pinned digest
 * and size are checked against the bytes, and its capabilities become the component's grants and limits.
 */
export async function loadWithManifest(
  kernel: Kernel,
  bytes: Uint8Array,
  manifestJson: string,
): Promise<ComponentInfo> {
  if (!bytes || bytes.length === 0)
    throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'component bytes are empty');
  const parsed = parseManifestJson(manifestJson);
  if (!parsed.ok)
    throw new KernelError('KERNEL_ERR_MANIFEST_INVALID', `${parsed.issue.field} ${parsed.issue.message}`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(parsed.value);
  } catch (e) {
    throw new KernelError('KERNEL_ERR_MANIFEST_INVALID', (e as Error).message);
  }
  if (manifest.component.size !== bytes.length) {
    throw new KernelError(
      'KERNEL_ERR_DIGEST_MISMATCH',
      `manifest says the component is ${manifest.component.size} bytes but ${bytes.length} were given`,
    );
  }
  const caps = manifest.capabilities;
  return kernel.load({
    name: manifest.name,
    version: manifest.version,
    bytes,
    digest: manifest.component.digest,
    imports: [...caps.imports],
    memoryMaxPages: caps.memoryMaxPages,
    deadlineMs: caps.deadlineMs,
    concurrency: caps.concurrency,
    labels: {
      publisher: manifest.publisher,
      world: manifest.world,
      abiVersion: manifest.abiVersion,
      signed: manifest.signatures ? 'present' : 'absent',
    },
  });
}
