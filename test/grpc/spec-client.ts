/**
 * A CAM-OS client built only from the spec: its proto is test/grpc/fixtures/spec_syscall.proto (derived
 * from /work/shared/specs/cam-syscall-v1.md), loaded with plain grpc-js + proto-loader, and it reads a
 * failure the way the spec says clients must: the call's status OR the response's status_code.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const SPEC_PROTO = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'spec_syscall.proto');

export type Outcome =
  | { ok: true; res: Record<string, unknown> }
  | { ok: false; code: number; message: string };

export class SpecClient {
  private readonly client: grpc.Client;

  constructor(address: string, creds = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
    const def = protoLoader.loadSync(SPEC_PROTO, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      cam: { syscall: { SyscallService: grpc.ServiceClientConstructor } };
    };
    this.client = new pkg.cam.syscall.SyscallService(address, creds, options);
  }

  call(
    method: string,
    req: Record<string, unknown>,
    md = new grpc.Metadata(),
    timeoutMs = 10_000,
  ): Promise<Outcome> {
    const fn = (this.client as unknown as Record<string, Function>)[method];
    if (!fn) throw new Error(`spec client has no method ${method}`);
    return new Promise((resolve) => {
      fn.call(
        this.client,
        req,
        md,
        { deadline: new Date(Date.now() + timeoutMs) },
        (e: grpc.ServiceError | null, r: Record<string, unknown>) => {
          if (e) return resolve({ ok: false, code: e.code, message: e.details });
          const sc = Number(r.status_code ?? 0);
          if (sc !== 0) return resolve({ ok: false, code: sc, message: String(r.error ?? '') });
          resolve({ ok: true, res: r });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
