/**
 * Client for cam.session.v1.SessionService: one stream, many concurrent syscalls. `call` returns a promise
 * per syscall; results arrive in any order and are matched by request id. The client keeps within the
 * window the server granted by queueing locally, so callers may fire any number of calls.
 *
 * Calls made in the same synchronous run (e.g. `Promise.all` over many calls, or the continuations of the
 * results of one ResultBatch) go out as one CallBatch when the server takes batches: one message instead of
 * one per call, which is where a session's throughput comes from (bench/RESULTS.md, grpc suite).
 */
import { loadProto } from '@cam-os/host/server/server.js';
import * as grpc from '@grpc/grpc-js';
import {
  CallError,
  type ConnectOptions,
  callMetadata,
  channelCredentials,
  channelOptions,
} from './connection.js';
import type { RequestOf, ResponseOf, SyscallMethod } from './types.js';

export interface Welcome {
  session_id: string;
  window: number;
  identity: string;
  auth_mode: string;
  max_timeout_ms: number;
  /** The most calls one CallBatch may carry; 0 from a server that does not take batches. */
  max_batch: number;
}

export interface SessionResult {
  request_id: number;
  status: { code: number; message: string; error_code: string };
  response?: string;
  [field: string]: unknown;
}

interface ServerMessage {
  kind: string;
  welcome?: Welcome;
  result?: SessionResult;
  results?: { results: SessionResult[] };
}

type SessionStream = grpc.ClientDuplexStream<unknown, ServerMessage>;

interface Pending {
  field: string;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export function sessionField(method: SyscallMethod): string {
  return method.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
}

export class SessionClient {
  private readonly client: grpc.Client;
  private readonly stream: SessionStream;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: Array<{ send(): void; reject(e: unknown): void }> = [];
  private nextId = 1;
  /** Calls written in this synchronous run, sent as one message at the end of it. */
  private outbox: unknown[] = [];
  private ended: CallError | undefined;
  private readonly done: Promise<void>;
  welcome: Welcome | undefined;
  /** Request ids in the order their results arrived, when `recordArrivals` is set (protocol tests). */
  readonly arrivals: number[] = [];
  recordArrivals = false;
  /** Messages written to and read from the stream (a CallBatch or a ResultBatch counts once). */
  readonly stats = { messagesSent: 0, messagesReceived: 0 };

  private constructor(
    readonly opts: ConnectOptions,
    private readonly onWelcome: (w: Welcome) => void,
    private readonly onFail: (e: CallError) => void,
  ) {
    const pkg = loadProto('cam/session/v1/session.proto') as unknown as {
      cam: { session: { v1: { SessionService: grpc.ServiceClientConstructor } } };
    };
    this.client = new pkg.cam.session.v1.SessionService(
      opts.address,
      channelCredentials(opts),
      channelOptions(opts),
    );
    const open = (this.client as unknown as { Open(md: grpc.Metadata): SessionStream }).Open;
    this.stream = open.call(this.client, callMetadata(opts));
    this.done = new Promise<void>((resolve) => {
      this.stream.on('data', (m) => this.onMessage(m));
      this.stream.on('error', (e: grpc.ServiceError) => {
        this.fail(CallError.from(e));
        resolve();
      });
      this.stream.on('end', () => {
        this.fail(new CallError(grpc.status.UNAVAILABLE, 'the session ended', ''));
        resolve();
      });
    });
  }

  /** Open a session and wait for the server's Welcome (which carries the window). */
  static open(opts: ConnectOptions): Promise<SessionClient> {
    return new Promise((resolve, reject) => {
      const s: SessionClient = new SessionClient(
        opts,
        () => resolve(s),
        (e) => reject(e),
      );
    });
  }

  get window(): number {
    return this.welcome?.window ?? 0;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  call<M extends SyscallMethod>(
    method: M,
    request: RequestOf<M>,
    o: { timeoutMs?: number } = {},
  ): Promise<ResponseOf<M>> {
    if (this.ended) return Promise.reject(this.ended);
    const field = sessionField(method);
    const req = { ...request } as Record<string, unknown>;
    if (!req.caller_id && this.opts.callerId) req.caller_id = this.opts.callerId;
    return new Promise((resolve, reject) => {
      const send = () => {
        const id = this.nextId++;
        this.pending.set(id, { field, resolve: resolve as (v: unknown) => void, reject });
        this.enqueue({ request_id: id, timeout_ms: o.timeoutMs ?? 0, [field]: req });
      };
      if (this.pending.size < this.window) send();
      else this.queue.push({ send, reject });
    });
  }

  private enqueue(call: unknown): void {
    const max = this.welcome?.max_batch ?? 0;
    if (max === 0) {
      this.stats.messagesSent++;
      this.stream.write({ call });
      return;
    }
    if (this.outbox.length === 0) queueMicrotask(() => this.flush());
    this.outbox.push(call);
    if (this.outbox.length >= max) this.flush();
  }

  private flush(): void {
    const calls = this.outbox;
    if (calls.length === 0 || this.ended) return;
    this.outbox = [];
    this.stats.messagesSent++;
    this.stream.write(calls.length === 1 ? { call: calls[0] } : { batch: { calls } });
  }

  /**
   * Send a raw ClientMessage, bypassing the window and id bookkeeping (protocol tests). Its result, if
   * any, is delivered to `onRaw`.
   */
  sendRaw(message: unknown): void {
    this.stream.write(message);
  }

  onRaw: ((r: SessionResult) => void) | undefined;

  cancel(requestId: number): void {
    this.stream.write({ cancel: { request_id: requestId } });
  }

  /** The id the next call will get (tests use it to cancel a specific call). */
  peekNextId(): number {
    return this.nextId;
  }

  /** Half-close and wait until the server has answered everything and ended the stream. */
  async close(): Promise<void> {
    this.flush();
    this.stream.end();
    await this.done;
    this.client.close();
  }

  /** Drop the stream at once (in-flight calls fail with CANCELLED). */
  abort(): void {
    this.stream.cancel();
    this.client.close();
  }

  private onMessage(m: ServerMessage): void {
    this.stats.messagesReceived++;
    if (m.kind === 'welcome' && m.welcome) {
      this.welcome = m.welcome;
      this.onWelcome(m.welcome);
      return;
    }
    if (m.kind === 'results' && m.results) {
      for (const r of m.results.results) this.onResult(r);
      return;
    }
    if (m.result) this.onResult(m.result);
  }

  private onResult(r: SessionResult): void {
    const id = Number(r.request_id);
    if (this.recordArrivals) this.arrivals.push(id);
    const p = this.pending.get(id);
    if (!p) {
      this.onRaw?.(r);
      return;
    }
    this.pending.delete(id);
    if (r.status.code !== 0) p.reject(new CallError(r.status.code, r.status.message, r.status.error_code));
    else p.resolve(r[p.field]);
    while (this.queue.length > 0 && this.pending.size < this.window) this.queue.shift()!.send();
  }

  private fail(e: CallError): void {
    if (this.ended) return;
    this.ended = e;
    if (!this.welcome) this.onFail(e);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.reject(e);
  }
}
