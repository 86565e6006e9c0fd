/**
 * Typed client for the kernel's AdminService (proto/cam/admin/v1/admin.proto), used by the CLI and tests.
 * Finds a running kernel by `--address`, CAM_OS_ADDRESS, or the discovery file `<data-dir>/kernel.json`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDataDir } from '@cam-os/host/server/config.js';
import { type DiscoveryFile, loadProto } from '@cam-os/host/server/server.js';
import * as grpc from '@grpc/grpc-js';

export interface ComponentInfoMsg {
  name: string;
  version: string;
  digest: string;
  abi: string;
  imports: string[];
  exports: string[];
  memory_max_pages: number;
  deadline_ms: number;
  concurrency: number;
  loaded_at: string;
  health: string;
  restarts: number;
  calls: number;
  failed_calls: number;
  last_error: string;
  last_error_kind: string;
  last_error_at: string;
  instances: number;
  queued: number;
  labels: Record<string, string>;
  replica_state: string;
  replica_reason: string;
  replica_calls: number;
  replica_fallbacks: number;
  replica_last_fallback: string;
}

export interface StatusMsg {
  version: string;
  data_dir: string;
  listen: string;
  auth_mode: string;
  started_at_ms: number;
  pid: number;
  rss_bytes: number;
  components: ComponentInfoMsg[];
  syscalls: Array<{
    name: string;
    group: string;
    calls: number;
    errors: Record<string, number>;
    p50_us: number;
    p99_us: number;
    available: boolean;
    missing: string;
  }>;
  warnings: string[];
  /** Unary gRPC calls started per event-loop turn; 0 = no pacing. */
  unary_calls_per_turn: number;
  /** Share of new traces recorded, 0 to 1. */
  trace_sample_ratio: number;
}

export interface SwapRecordMsg {
  name: string;
  at: string;
  from_version: string;
  from_digest: string;
  to_version: string;
  to_digest: string;
  kind: string;
  result: string;
  reason: string;
  paused_ms: number;
}

export interface AttestMsg {
  pcr: number;
  attest: Buffer;
  signature: Buffer;
  public_key_pem: string;
  event_log: string;
  pcr_value: Buffer;
  nonce: Buffer;
}

export class KernelNotRunning extends Error {
  override name = 'KernelNotRunning';
}

export function resolveAddress(opts: { address?: string; dataDir?: string }, env = process.env): string {
  if (opts.address) return opts.address;
  if (env.CAM_OS_ADDRESS) return env.CAM_OS_ADDRESS;
  const dataDir = opts.dataDir ?? defaultDataDir(env);
  const file = join(dataDir, 'kernel.json');
  if (!existsSync(file)) {
    throw new KernelNotRunning(
      `no running kernel found for data dir ${dataDir} (no kernel.json). Start one with \`cam-os up\`, or pass --address host:port`,
    );
  }
  const d = JSON.parse(readFileSync(file, 'utf8')) as DiscoveryFile;
  return d.address;
}

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (e: grpc.ServiceError | null, r: Res) => void,
) => void;

export class AdminClient {
  private readonly client: grpc.Client & Record<string, Unary<unknown, unknown>>;

  constructor(readonly address: string) {
    const pkg = loadProto('cam/admin/v1/admin.proto') as unknown as {
      cam: { admin: { v1: { AdminService: grpc.ServiceClientConstructor } } };
    };
    this.client = new pkg.cam.admin.v1.AdminService(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 32 * 1024 * 1024,
    }) as unknown as grpc.Client & Record<string, Unary<unknown, unknown>>;
  }

  private call<Res>(method: string, req: unknown, timeoutMs = 30_000): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method]!.bind(this.client);
      fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) {
          if (err.code === grpc.status.UNAVAILABLE) {
            reject(
              new KernelNotRunning(
                `cannot reach the kernel at ${this.address}: ${err.details || err.message}`,
              ),
            );
          } else reject(err);
        } else resolve(res as Res);
      });
    });
  }

  status(): Promise<StatusMsg> {
    return this.call('Status', {});
  }

  list(): Promise<ComponentInfoMsg[]> {
    return this.call<{ components: ComponentInfoMsg[] }>('ListComponents', {}).then((r) => r.components);
  }

  load(component: Uint8Array, manifestJson: string): Promise<ComponentInfoMsg> {
    return this.call(
      'LoadComponent',
      { component: Buffer.from(component), manifest_json: manifestJson },
      120_000,
    );
  }

  unload(name: string): Promise<{ name: string }> {
    return this.call('UnloadComponent', { name });
  }

  swap(
    name: string,
    component: Uint8Array,
    manifestJson: string,
    allowDowngrade = false,
  ): Promise<SwapRecordMsg> {
    return this.call(
      'SwapComponent',
      {
        name,
        component: Buffer.from(component),
        manifest_json: manifestJson,
        allow_downgrade: allowDowngrade,
      },
      180_000,
    );
  }

  rollback(name: string): Promise<SwapRecordMsg> {
    return this.call('RollbackComponent', { name }, 180_000);
  }

  history(name = ''): Promise<SwapRecordMsg[]> {
    return this.call<{ records: SwapRecordMsg[] }>('SwapHistory', { name }).then((r) => r.records);
  }

  attest(nonce: Uint8Array): Promise<AttestMsg> {
    return this.call('Attest', { nonce: Buffer.from(nonce) });
  }

  close(): void {
    this.client.close();
  }
}
