/**
 * A running kernel process: the Kernel, the syscall Dispatcher and the gRPC listener with the admin
 * service. Other gRPC services (the CAM-OS SyscallService, streaming sessions, health, reflection) plug
 * in through `services`. Writes `<data-dir>/kernel.json` so the CLI finds the kernel without flags.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { HashChainAuditLog } from '../audit/log.js';
import { type AuthConfig, authConfigFrom, checkListen, serverCredentials } from '../auth/config.js';
import { Dispatcher } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { requireAdmin } from '../grpc/admin-guard.js';
import { unaryCallsPerTurn } from '../grpc/turn-gate.js';
import { type ComponentInfo, Kernel, type SwapRecord } from '../kernel/kernel.js';
import { TrustedLoader } from '../kernel/loader.js';
import { DEFAULT_TRACE_SAMPLE_RATIO } from '../observability/tracing.js';
import type { PolicyEngine } from '../policy/engine.js';
import { openGovernance, recordSyscallDecisions } from '../policy/governance.js';
import { KERNEL_VERSION } from '../version.js';
import { type KernelConfig, parseListen } from './config.js';
import { unary } from './grpc-errors.js';
import { openTrustAnchors, type TpmContext } from './trust-anchors.js';

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
  /** Every operator-facing load and swap goes through it (signatures, digest, policy, TPM measurement). */
  loader: TrustedLoader;
  /** The TPM and its measurement log, or why there is none (explicit no-TPM mode). */
  tpm: TpmContext;
  startedAt: number;
  /** Plain-language warnings shown by status and HealthCheck. */
  warnings: string[];
  authMode: 'development' | 'authenticated';
  /** The tamper-evident decision log (host/src/audit). */
  audit: HashChainAuditLog;
  /** The policy engine every syscall is authorized through (host/src/policy). */
  policy: PolicyEngine;
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

export interface StartOptions {
  /** Listener security and agent auth (default: authConfigFrom(dataDir)). */
  auth?: AuthConfig;
  /**
   * Called once the kernel context exists, before any gRPC service registers (observability hooks in
   * here); the function it may return wraps every service implementation added to the server (tracing).
   */
  instrument?: (ctx: KernelContext) => ServiceWrapper | undefined;
}

export type ServiceWrapper = (
  service: grpc.ServiceDefinition,
  impl: grpc.UntypedServiceImplementation,
) => grpc.UntypedServiceImplementation;

export async function startKernel(
  config: KernelConfig,
  services: ServiceRegistration[] = [],
  opts: StartOptions = {},
): Promise<RunningKernel> {
  const listen = parseListen(config.listen);
  let auth: AuthConfig;
  try {
    auth = opts.auth ?? authConfigFrom(config.dataDir);
    // Plaintext only on loopback; any other address needs TLS (auth.json names the certificate).
    checkListen(auth, config.listen);
  } catch (e) {
    throw new KernelError('KERNEL_ERR_CONFIG_INVALID', (e as Error).message);
  }
  mkdirSync(config.dataDir, { recursive: true });
  const kernel = new Kernel({ dataDir: config.dataDir, queryReplicas: config.queryReplicas });
  const dispatcher = new Dispatcher();
  const warnings: string[] = [];
  const anchors = await openTrustAnchors(config, warnings);
  const loader = new TrustedLoader({
    kernel,
    trustStore: anchors.trustStore,
    policy: { allowedImports: config.allowedImports },
    devMode: config.devMode,
    measurement: anchors.tpm.measurement,
  });
  const governance = await openGovernance({
    dataDir: config.dataDir,
    kernel,
    dispatcher,
    tpm: anchors.tpm,
    authMode: () => ctx.authMode,
    warn: (m) => warnings.push(m),
  }).catch(async (e: Error) => {
    await kernel.stop();
    await anchors.close();
    throw new KernelError(
      'KERNEL_ERR_CONFIG_INVALID',
      `cannot open the audit log / policy engine: ${e.message}`,
    );
  });
  const ctx: KernelContext = {
    config,
    kernel,
    dispatcher,
    loader,
    tpm: anchors.tpm,
    startedAt: Date.now(),
    warnings,
    authMode: 'development',
    audit: governance.audit,
    policy: governance.policy,
  };
  // The listener's limit must admit AdminService component uploads (a componentize-js component is ~12 MB);
  // syscalls enforce their own, smaller, per-field limits.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.max(MAX_MESSAGE_BYTES, auth.maxMessageBytes),
    'grpc.max_send_message_length': Math.max(MAX_MESSAGE_BYTES, auth.maxMessageBytes),
  });
  const wrap = opts.instrument?.(ctx);
  if (wrap) {
    const addService = server.addService.bind(server);
    server.addService = (service, impl) =>
      addService(service, wrap(service, impl as grpc.UntypedServiceImplementation));
  }
  registerAdmin(server, ctx, config.listen);
  for (const s of services) await s.register(server, ctx);
  recordSyscallDecisions(dispatcher, governance, kernel);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, serverCredentials(auth), (err, p) => (err ? reject(err) : resolve(p))),
  ).catch(async (e: Error) => {
    await kernel.stop();
    await governance.close();
    await anchors.close();
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
      await governance.close();
      await anchors.close();
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
    replica_state: s.replica.state,
    replica_reason: s.replica.reason ?? '',
    replica_calls: s.replica.calls,
    replica_fallbacks: s.replica.fallbacks,
    replica_last_fallback: s.replica.lastFallback ?? '',
  };
}

function registerAdmin(server: grpc.Server, ctx: KernelContext, listen: string): void {
  const pkg = loadProto('cam/admin/v1/admin.proto') as unknown as {
    cam: { admin: { v1: { AdminService: grpc.ServiceClientConstructor } } };
  };
  // Every admin method is authorised the same way: in authenticated mode it needs group:admin.
  const guarded = <Req, Res>(action: string, fn: (req: Req) => Promise<Res>) =>
    unary<Req, Res>(async (req, call) => {
      await requireAdmin(ctx, call as unknown as Parameters<typeof requireAdmin>[1], `Admin.${action}`);
      return fn(req);
    });
  server.addService(pkg.cam.admin.v1.AdminService.service, {
    Status: guarded('Status', async () => ({
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
      unary_calls_per_turn: unaryCallsPerTurn(ctx.config),
      trace_sample_ratio: ctx.config.traceSampleRatio ?? DEFAULT_TRACE_SAMPLE_RATIO,
    })),
    ListComponents: guarded('ListComponents', async () => ({
      components: ctx.kernel.list().map(componentMessage),
    })),
    LoadComponent: guarded('LoadComponent', async (req: { component: Buffer; manifest_json: string }) => {
      requireBytes(req.component, req.manifest_json);
      return componentMessage(await ctx.loader.load(req.component, req.manifest_json));
    }),
    SwapComponent: guarded(
      'SwapComponent',
      async (req: { name: string; component: Buffer; manifest_json: string; allow_downgrade: boolean }) => {
        requireBytes(req.component, req.manifest_json);
        return swapMessage(
          await ctx.loader.swap(req.name, req.component, req.manifest_json, {
            allowDowngrade: req.allow_downgrade,
          }),
        );
      },
    ),
    RollbackComponent: guarded('RollbackComponent', async (req: { name: string }) =>
      swapMessage(await ctx.kernel.rollback(req.name)),
    ),
    SwapHistory: guarded('SwapHistory', async (req: { name: string }) => ({
      records: ctx.kernel.swapHistory(req.name || undefined).map(swapMessage),
    })),
    Attest: guarded('Attest', async (req: { nonce: Buffer }) => attest(ctx, req.nonce)),
    UnloadComponent: guarded('UnloadComponent', async (req: { name: string }) => {
      await ctx.kernel.unload(req.name);
      return { name: req.name };
    }),
  });
}

function requireBytes(component: Uint8Array, manifestJson: string): void {
  if (!component || component.length === 0)
    throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'component bytes are empty');
  if (!manifestJson) throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'manifest_json is empty');
}

function swapMessage(r: SwapRecord) {
  return {
    name: r.name,
    at: r.at,
    from_version: r.from.version ?? '',
    from_digest: r.from.digest,
    to_version: r.to.version ?? '',
    to_digest: r.to.digest,
    kind: r.kind,
    result: r.result,
    reason: r.reason ?? '',
    paused_ms: r.pausedMs ?? 0,
  };
}

async function attest(ctx: KernelContext, nonce: Uint8Array) {
  const { tpm, measurement } = ctx.tpm;
  if (!tpm || !measurement) {
    throw new KernelError(
      'KERNEL_ERR_SYSCALL_UNAVAILABLE',
      `no TPM: ${ctx.tpm.reason ?? 'not configured'}; nothing to attest`,
    );
  }
  if (!nonce || nonce.length < 8 || nonce.length > 64) {
    throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'nonce must be 8 to 64 bytes');
  }
  const ak = await ctx.tpm.attestationKey();
  const quote = await tpm.quote(ak.handle, [measurement.pcr], nonce);
  return {
    pcr: measurement.pcr,
    attest: quote.attest,
    signature: quote.signature,
    public_key_pem: ak.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    event_log: readFileSync(measurement.path, 'utf8'),
    pcr_value: await tpm.pcrRead('sha256', measurement.pcr),
    nonce,
  };
}
