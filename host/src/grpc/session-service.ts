/**
 * cam.session.v1.SessionService: many syscalls over one bidirectional stream (proto/cam/session/v1/
 * session.proto has the protocol). Authentication once per stream; each call then goes through the same
 * authorize + dispatch path as a unary call, with its own deadline. Results are written as calls finish,
 * so they may come back in any order.
 *
 * Flow control: the Welcome message grants a window of in-flight calls; a call beyond it is answered
 * RESOURCE_EXHAUSTED at once (the client broke the protocol, the stream survives). When the client does
 * not read its results, writes back up, and the server stops reading calls until they drain — HTTP/2
 * flow control then pushes back on the client.
 */
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS } from '../dispatcher/dispatcher.js';
import { GrpcStatus, KernelError, sanitize } from '../errors.js';
import { toServiceError } from '../server/grpc-errors.js';
import { type KernelContext, loadProto, type ServiceRegistration } from '../server/server.js';
import { SYSCALL_NAMES, type SyscallName } from '../syscalls/index.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { lenientDefinition, MalformedRequest } from './malformed.js';

export const SESSION_PROTO = 'cam/session/v1/session.proto';
export const SESSION_SERVICE = 'cam.session.v1.SessionService';

/** `ContextRead` -> `context_read`: the oneof field carrying that syscall's request and response. */
export function sessionField(name: SyscallName): string {
  return name.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
}
const BY_FIELD = new Map<string, SyscallName>(SYSCALL_NAMES.map((n) => [sessionField(n), n]));

export function sessionServiceDefinition(): grpc.ServiceDefinition {
  const pkg = loadProto(SESSION_PROTO) as unknown as {
    cam: { session: { v1: { SessionService: grpc.ServiceClientConstructor } } };
  };
  return lenientDefinition(pkg.cam.session.v1.SessionService.service, () => 'cam.session.v1.ClientMessage');
}

type SessionCall = { request_id: number; timeout_ms: number; request?: string } & Record<string, unknown>;

interface ClientMessage {
  kind?: 'call' | 'cancel' | 'batch';
  call?: SessionCall;
  cancel?: { request_id: number };
  batch?: { calls?: SessionCall[] };
}

/** The most calls one CallBatch may carry (Welcome.max_batch). */
export const MAX_SESSION_BATCH = 1024;

type Duplex = grpc.ServerDuplexStream<ClientMessage, unknown>;

export function sessionService(opts: GatewayOptions = {}): ServiceRegistration {
  return {
    name: SESSION_SERVICE,
    register(server: grpc.Server, ctx: KernelContext) {
      const gw = Gateway.for(ctx, opts);
      server.addService(sessionServiceDefinition(), {
        Open: (call: Duplex) => {
          void runSession(gw, call);
        },
      });
    },
  };
}

async function runSession(gw: Gateway, call: Duplex): Promise<void> {
  const peer = call.getPeer();
  // Stop reading until the session is authenticated and welcomed.
  call.pause();
  let principal: Awaited<ReturnType<Gateway['authenticate']>>;
  try {
    principal = await gw.authenticate(call, 'Session.Open');
  } catch (e) {
    call.emit('error', toServiceError(e));
    return;
  }
  const window = gw.auth.sessionWindow;
  // A stream without a deadline may live for hours: only a deadline the client set caps its calls.
  const d = call.getDeadline();
  const streamDeadline = d instanceof Date ? d.getTime() : d;
  const inflight = new Map<number, { cancelled: boolean }>();
  let closed = false;
  let inputEnded = false;
  let backedUp = false;

  const send = (msg: unknown) => {
    if (closed) return;
    if (!call.write(msg) && !backedUp) {
      backedUp = true;
      call.pause();
      call.once('drain', () => {
        backedUp = false;
        if (!closed) call.resume();
      });
    }
  };
  const finishIfDone = () => {
    if (inputEnded && inflight.size === 0 && !closed) {
      flush();
      closed = true;
      call.end();
    }
  };
  // A client that batches gets the results that finish in the same event-loop turn as one ResultBatch.
  let batching = false;
  let pending: unknown[] = [];
  const flush = () => {
    const out = pending;
    pending = [];
    for (let i = 0; i < out.length; i += MAX_SESSION_BATCH) {
      send({ results: { results: out.slice(i, i + MAX_SESSION_BATCH) } });
    }
  };
  const result = (r: unknown) => {
    if (!batching) return send({ result: r });
    if (pending.length === 0) setImmediate(flush);
    pending.push(r);
  };
  const fail = (id: number, e: unknown) => {
    const err = sanitize(e);
    result({ request_id: id, status: { code: err.grpcCode, message: err.message, error_code: err.code } });
  };

  call.on('cancelled', () => {
    closed = true;
  });
  call.on('error', () => {
    closed = true;
  });
  call.on('end', () => {
    inputEnded = true;
    finishIfDone();
  });
  call.on('data', (msg: ClientMessage | MalformedRequest) => {
    if (closed) return;
    if (msg instanceof MalformedRequest) {
      // The request id is unknowable; result 0 reports it and the stream carries on.
      fail(0, msg.toError());
      return;
    }
    if (msg.kind === 'cancel' && msg.cancel) {
      const entry = inflight.get(Number(msg.cancel.request_id));
      if (entry && !entry.cancelled) {
        entry.cancelled = true;
        inflight.delete(Number(msg.cancel.request_id));
        fail(
          Number(msg.cancel.request_id),
          new KernelError(
            'KERNEL_ERR_REQUEST_INVALID',
            'the call was cancelled by the client',
            undefined,
            'CANCELLED',
          ),
        );
        finishIfDone();
      }
      return;
    }
    if (msg.kind === 'batch' && msg.batch) {
      batching = true;
      const calls = msg.batch.calls ?? [];
      if (calls.length > MAX_SESSION_BATCH) {
        for (const c of calls) {
          fail(
            Number(c.request_id),
            new KernelError(
              'KERNEL_ERR_REQUEST_INVALID',
              `a CallBatch carries at most ${MAX_SESSION_BATCH} calls; this one carried ${calls.length}`,
            ),
          );
        }
        return;
      }
      for (const c of calls) start(c);
      return;
    }
    if (msg.kind !== 'call' || !msg.call) {
      fail(
        0,
        new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          'a session message must carry a call, a batch of calls or a cancel',
        ),
      );
      return;
    }
    start(msg.call);
  });

  /** Check one call against the protocol and run it; its result (or refusal) is sent when it finishes. */
  function start(c: SessionCall): void {
    const id = Number(c.request_id);
    if (inflight.has(id)) {
      fail(id, new KernelError('KERNEL_ERR_REQUEST_INVALID', `request_id ${id} is already in flight`));
      return;
    }
    if (inflight.size >= window) {
      fail(
        id,
        new KernelError(
          'KERNEL_ERR_CALL_QUEUE_FULL',
          `the session window of ${window} in-flight calls is full; wait for results before sending more`,
        ),
      );
      return;
    }
    const name = c.request ? BY_FIELD.get(c.request) : undefined;
    if (!name) {
      fail(id, new KernelError('KERNEL_ERR_REQUEST_INVALID', 'the call carries no syscall request'));
      return;
    }
    const now = Date.now();
    const timeout = c.timeout_ms > 0 ? Math.min(c.timeout_ms, MAX_DEADLINE_MS) : DEFAULT_DEADLINE_MS;
    const deadlineAt = Math.min(now + timeout, streamDeadline);
    const entry = { cancelled: false };
    inflight.set(id, entry);
    gw.invoke(principal, name, c[c.request!], peer, deadlineAt).then(
      (res) => {
        if (entry.cancelled) return;
        inflight.delete(id);
        result({
          request_id: id,
          status: { code: GrpcStatus.OK, message: '', error_code: '' },
          [c.request!]: res,
        });
        finishIfDone();
      },
      (e: unknown) => {
        if (entry.cancelled) return;
        inflight.delete(id);
        fail(id, e);
        finishIfDone();
      },
    );
  }

  send({
    welcome: {
      session_id: randomUUID(),
      window,
      identity: principal.id,
      auth_mode: gw.auth.mode,
      max_timeout_ms: MAX_DEADLINE_MS,
      max_batch: MAX_SESSION_BATCH,
    },
  });
  call.resume();
}
