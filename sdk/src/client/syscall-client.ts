/**
 * Typed client for cam.syscall.SyscallService (the CAM-OS compatible unary API). Every failure —
 * whether the kernel fails the call with a status (this kernel) or fills `error` / `status_code` in the
 * response (original CAM-OS servers) — rejects with a CallError carrying the gRPC code, so callers handle
 * one shape.
 */
import { loadProto } from '@cam-os/host/server/server.js';
import type * as grpc from '@grpc/grpc-js';
import {
  CallError,
  type ConnectOptions,
  callMetadata,
  channelCredentials,
  channelOptions,
} from './connection.js';
import type { RequestOf, ResponseOf, SyscallMethod } from './types.js';

type Unary = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (e: grpc.ServiceError | null, r: unknown) => void,
) => grpc.ClientUnaryCall;

export interface CallOpts {
  /** Per-call deadline; default 10 s. */
  timeoutMs?: number;
}

export class SyscallClient {
  readonly grpc: grpc.Client;

  constructor(readonly opts: ConnectOptions) {
    const pkg = loadProto('cam_syscall.proto') as unknown as {
      cam: { syscall: { SyscallService: grpc.ServiceClientConstructor } };
    };
    this.grpc = new pkg.cam.syscall.SyscallService(
      opts.address,
      channelCredentials(opts),
      channelOptions(opts),
    );
  }

  call<M extends SyscallMethod>(method: M, request: RequestOf<M>, o: CallOpts = {}): Promise<ResponseOf<M>> {
    const fn = (this.grpc as unknown as Record<string, Unary>)[method];
    if (!fn) return Promise.reject(new Error(`unknown syscall ${method}`));
    const req = { ...request } as Record<string, unknown>;
    if (!req.caller_id && this.opts.callerId) req.caller_id = this.opts.callerId;
    const deadline = new Date(Date.now() + (o.timeoutMs ?? 10_000));
    return new Promise((resolve, reject) => {
      fn.call(this.grpc, req, callMetadata(this.opts), { deadline }, (e, r) => {
        if (e) return reject(CallError.from(e));
        const res = r as ResponseOf<M>;
        if (res.status_code) return reject(new CallError(res.status_code, res.error, ''));
        resolve(res);
      });
    });
  }

  /** Resolves once the channel is connected (or rejects after timeoutMs). */
  waitForReady(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.grpc.waitForReady(Date.now() + timeoutMs, (e) => (e ? reject(e) : resolve())),
    );
  }

  close(): void {
    this.grpc.close();
  }
}
