/**
 * (d) Streaming sessions: many syscalls over one stream with request ids, out-of-order completion, the
 * granted window, per-request deadlines, cancellation, protocol errors that do not kill the stream, and a
 * clean close that waits for in-flight calls. Plus grpc.health.v1 and server reflection on the same kernel.
 */
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { developmentAuth } from '../../host/src/auth/config.js';
import { MAX_SESSION_BATCH } from '../../host/src/grpc/session-service.js';
import { CallError } from '../../sdk/src/client/connection.js';
import { SessionClient, type SessionResult } from '../../sdk/src/client/session-client.js';
import { SyscallClient } from '../../sdk/src/client/syscall-client.js';
import { startTestKernel, type TestKernel } from './harness.js';

let k: TestKernel;
const WINDOW = 8;

beforeAll(async () => {
  k = await startTestKernel({ auth: developmentAuth({ sessionWindow: WINDOW }), system: false });
});

afterAll(async () => {
  await k?.stop();
});

describe('streaming sessions', () => {
  it('welcomes with the granted window and runs calls as the caller_id they name (development mode)', async () => {
    const s = await SessionClient.open({ address: k.address });
    expect(s.welcome).toMatchObject({ window: WINDOW, auth_mode: 'development', identity: '' });
    expect(s.welcome?.session_id).toMatch(/^[0-9a-f-]{36}$/);
    const res = await s.call('HealthCheck', { caller_id: 'agent-s', detailed: false });
    expect(['serving', 'degraded']).toContain(res.status);
    await s.call('EmitTrace', { trace_id: 'ab', span_id: '01', operation: 'stream', caller_id: 'agent-s' });
    expect(k.gateway.env.telemetry.listSpans('ab')[0]?.callerId).toBe('agent-s');
    await s.close();
  });

  it('matches many concurrent results to their request ids', async () => {
    const s = await SessionClient.open({ address: k.address });
    s.recordArrivals = true;
    const n = 200;
    const calls = Array.from({ length: n }, (_, i) =>
      s.call('EmitMetric', { name: `m.${i % 7}`, value: i, caller_id: 'agent-s', tags: { i: String(i) } }),
    );
    await Promise.all(calls);
    expect(s.arrivals).toHaveLength(n);
    expect(new Set(s.arrivals).size).toBe(n);
    // Each sample landed with its own value: results and requests were not mixed up between ids.
    const values = k.gateway.env.telemetry
      .listSamples()
      .filter((x) => x.name.startsWith('m.'))
      .map((x) => x.value);
    expect(new Set(values).size).toBe(n);
    await s.close();
  });

  it('completes out of order: a fast call overtakes a slow one', async () => {
    const s = await SessionClient.open({ address: k.address });
    s.recordArrivals = true;
    const release = holdDispatch(k, 'HealthCheck');
    const slow = s.call('HealthCheck', { caller_id: 'o' });
    const fast = s.call('EmitMetric', { name: 'overtake', value: 1, caller_id: 'o' });
    await fast;
    release();
    await slow;
    expect(s.arrivals).toEqual([2, 1]);
    await s.close();
  });

  it('answers a call beyond the window with RESOURCE_EXHAUSTED for that request only', async () => {
    const s = await SessionClient.open({ address: k.address });
    const results: SessionResult[] = [];
    s.onRaw = (r) => results.push(r);
    const release = holdDispatch(k, 'HealthCheck');
    for (let id = 1; id <= WINDOW + 2; id++)
      s.sendRaw({ call: { request_id: id, health_check: { caller_id: 'w' } } });
    await waitFor(() => results.length >= 2);
    expect(results.map((r) => [Number(r.request_id), r.status.code])).toEqual([
      [WINDOW + 1, grpc.status.RESOURCE_EXHAUSTED],
      [WINDOW + 2, grpc.status.RESOURCE_EXHAUSTED],
    ]);
    expect(results[0]!.status.message).toMatch(/window of 8/);
    release();
    await waitFor(() => results.length === WINDOW + 2);
    expect(results.slice(2).every((r) => r.status.code === 0)).toBe(true);
    // The stream survived and takes calls again.
    s.sendRaw({ call: { request_id: 99, health_check: {} } });
    await waitFor(() => results.some((r) => Number(r.request_id) === 99));
    await s.close();
  });

  it('keeps the client within the window by queueing locally', async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const calls = Array.from({ length: WINDOW * 3 }, () => s.call('HealthCheck', { caller_id: 'q' }));
    await new Promise((r) => setTimeout(r, 100));
    expect(s.inFlight).toBe(WINDOW);
    release();
    const all = await Promise.all(calls);
    expect(all).toHaveLength(WINDOW * 3);
    await s.close();
  });

  it('applies per-request deadlines', async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const t0 = Date.now();
    await expect(s.call('HealthCheck', { caller_id: 'd' }, { timeoutMs: 50 })).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    release();
    // Other calls on the same stream are unaffected.
    await expect(s.call('EmitMetric', { name: 'after.deadline', value: 1 })).resolves.toBeDefined();
    await s.close();
  });

  it('keeps serving calls on a stream older than the default call deadline', {
    timeout: 30_000,
  }, async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const held = s.call('HealthCheck', {}, { timeoutMs: 11_000 });
    await new Promise((r) => setTimeout(r, 10_500));
    release();
    await held;
    await expect(s.call('EmitMetric', { name: 'late', value: 1 })).resolves.toBeDefined();
    await s.close();
  });

  it('cancels an in-flight call with CANCELLED', async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const id = s.peekNextId();
    const p = s.call('HealthCheck', { caller_id: 'c' });
    await new Promise((r) => setTimeout(r, 20));
    s.cancel(id);
    await expect(p).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    release();
    await s.close();
  });

  it('reports protocol errors per request and keeps the stream open', async () => {
    const s = await SessionClient.open({ address: k.address });
    const results: SessionResult[] = [];
    s.onRaw = (r) => results.push(r);
    const release = holdDispatch(k, 'HealthCheck');
    s.sendRaw({ call: { request_id: 7, health_check: {} } });
    s.sendRaw({ call: { request_id: 7, health_check: {} } }); // duplicate in-flight id
    s.sendRaw({ call: { request_id: 8 } }); // no request
    await waitFor(() => results.length >= 2);
    expect(results.map((r) => [Number(r.request_id), r.status.code])).toEqual([
      [7, grpc.status.INVALID_ARGUMENT],
      [8, grpc.status.INVALID_ARGUMENT],
    ]);
    release();
    await waitFor(() => results.length === 3);
    expect(results[2]).toMatchObject({ request_id: 7, status: { code: 0 } });
    // Validation failures come back like unary ones.
    await expect(
      s.call('EmitTrace', { trace_id: 'xyz!', span_id: '1', operation: 'o' }),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
    });
    await s.close();
  });

  it('finishes in-flight calls before ending on a client close', async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const p = s.call('HealthCheck', { caller_id: 'z' });
    const closing = s.close();
    setTimeout(release, 100);
    await expect(p).resolves.toMatchObject({ status: expect.any(String) });
    await closing;
  });

  it('sends calls made together as one CallBatch and gets their results in ResultBatches', async () => {
    const s = await SessionClient.open({ address: k.address });
    expect(s.welcome?.max_batch).toBe(MAX_SESSION_BATCH);
    const sent = s.stats.messagesSent;
    const received = s.stats.messagesReceived;
    const res = await Promise.all(
      Array.from({ length: WINDOW }, (_, i) =>
        s.call('EmitMetric', { name: 'batched', value: i, caller_id: 'b', tags: { i: String(i) } }),
      ),
    );
    expect(res).toHaveLength(WINDOW);
    expect(s.stats.messagesSent - sent).toBe(1);
    expect(s.stats.messagesReceived - received).toBeLessThan(WINDOW);
    const values = k.gateway.env.telemetry
      .listSamples()
      .filter((x) => x.name === 'batched')
      .map((x) => x.value)
      .sort((a, b) => a - b);
    expect(values).toEqual(Array.from({ length: WINDOW }, (_, i) => i));
    await s.close();
  });

  it('checks each call of a batch on its own: window, duplicate ids, missing requests', async () => {
    const s = await SessionClient.open({ address: k.address });
    const results: SessionResult[] = [];
    s.onRaw = (r) => results.push(r);
    const release = holdDispatch(k, 'HealthCheck');
    const calls: unknown[] = [
      { request_id: 1, emit_metric: { name: 'ok', value: 1, caller_id: 'b' } },
      { request_id: 2 },
      { request_id: 3, health_check: {} },
      { request_id: 3, health_check: {} },
    ];
    for (let id = 4; id <= WINDOW + 3; id++) calls.push({ request_id: id, health_check: {} });
    s.sendRaw({ batch: { calls } });
    await waitFor(() => results.length >= 5);
    const byId = (id: number) => results.filter((r) => Number(r.request_id) === id).map((r) => r.status.code);
    expect(byId(1)).toEqual([0]);
    expect(byId(2)).toEqual([grpc.status.INVALID_ARGUMENT]);
    expect(byId(3)).toEqual([grpc.status.INVALID_ARGUMENT]); // the duplicate; the first is held
    // Ids 3..WINDOW+1 fill the window (1 finished at once); the last two are refused.
    expect(byId(WINDOW + 2)).toEqual([grpc.status.RESOURCE_EXHAUSTED]);
    expect(byId(WINDOW + 3)).toEqual([grpc.status.RESOURCE_EXHAUSTED]);
    release();
    await waitFor(() => results.length === 5 + (WINDOW - 1));
    for (let id = 3; id <= WINDOW + 1; id++) expect(byId(id)).toContain(0);
    await s.close();
  });

  it('refuses a batch over max_batch call by call and keeps the stream open', async () => {
    const s = await SessionClient.open({ address: k.address });
    const results: SessionResult[] = [];
    s.onRaw = (r) => results.push(r);
    const n = MAX_SESSION_BATCH + 1;
    s.sendRaw({
      batch: { calls: Array.from({ length: n }, (_, i) => ({ request_id: i + 1, health_check: {} })) },
    });
    await waitFor(() => results.length === n);
    expect(results.every((r) => r.status.code === grpc.status.INVALID_ARGUMENT)).toBe(true);
    expect(results[0]!.status.message).toMatch(
      new RegExp(`at most ${MAX_SESSION_BATCH} calls; this one carried ${n}`),
    );
    expect(new Set(results.map((r) => Number(r.request_id))).size).toBe(n);
    await expect(s.call('HealthCheck', { caller_id: 'after' })).resolves.toMatchObject({
      status: expect.any(String),
    });
    await s.close();
  });

  it('fails every pending call when the stream is dropped', async () => {
    const s = await SessionClient.open({ address: k.address });
    const release = holdDispatch(k, 'HealthCheck');
    const p = s.call('HealthCheck', {});
    s.abort();
    await expect(p).rejects.toBeInstanceOf(CallError);
    release();
  });
});

describe('grpc.health.v1 and reflection', () => {
  it('answers the standard health check for the server and each service', async () => {
    const def = protoLoader.loadSync(healthProtoPath, { enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const c = new pkg.grpc.health.v1.Health(k.address, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status: string } | grpc.ServiceError>((resolve) =>
        (c as unknown as Record<string, (...a: unknown[]) => void>).Check!(
          { service },
          (e: grpc.ServiceError | null, r: { status: string }) => resolve(e ?? r),
        ),
      );
    expect(await check('')).toMatchObject({ status: 'SERVING' });
    expect(await check('cam.syscall.SyscallService')).toMatchObject({ status: 'SERVING' });
    expect(await check('cam.session.v1.SessionService')).toMatchObject({ status: 'SERVING' });
    expect(await check('no.such.Service')).toMatchObject({ code: grpc.status.NOT_FOUND });
    c.close();
  });

  it('lets a reflection client list services and fetch descriptors without proto files', async () => {
    const def = protoLoader.loadSync(
      createRequire(import.meta.url).resolve(
        '@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
      ),
      { keepCase: true },
    );
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const c = new pkg.grpc.reflection.v1.ServerReflection(k.address, grpc.credentials.createInsecure());
    const ask = (req: Record<string, unknown>) =>
      new Promise<ReflectionReply>((resolve, reject) => {
        const s = (
          c as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionReply> }
        ).ServerReflectionInfo();
        s.on('data', (d) => {
          resolve(d);
          s.end();
        });
        s.on('error', reject);
        s.write(req);
      });
    const list = await ask({ list_services: '' });
    const names = (list.list_services_response?.service ?? []).map((x) => x.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'cam.syscall.SyscallService',
        'cam.session.v1.SessionService',
        'grpc.health.v1.Health',
      ]),
    );
    const file = await ask({ file_containing_symbol: 'cam.syscall.SyscallService' });
    const protos = file.file_descriptor_response?.file_descriptor_proto ?? [];
    const { FileDescriptorProto } = (await import('protobufjs/ext/descriptor/index.js')) as unknown as {
      FileDescriptorProto: {
        decode(b: Uint8Array): { name: string; service: Array<{ name: string; method: unknown[] }> };
      };
    };
    const decoded = protos.map((b) => FileDescriptorProto.decode(b));
    const svc = decoded.flatMap((d) => d.service).find((s) => s.name === 'SyscallService');
    expect(svc?.method).toHaveLength(20);
    c.close();
  });

  it('serves the unary API and the session side by side on one kernel', async () => {
    const u = new SyscallClient({ address: k.address, callerId: 'both' });
    const s = await SessionClient.open({ address: k.address, callerId: 'both' });
    const [a, b] = await Promise.all([u.call('HealthCheck', {}), s.call('HealthCheck', {})]);
    expect(a.status).toBe(b.status);
    u.close();
    await s.close();
  });
});

interface ReflectionReply {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
}

/**
 * Hold every dispatch of `syscall` until the returned function is called, by wrapping its handler — the
 * way to keep calls in flight with a kernel whose real syscalls answer in microseconds.
 */
function holdDispatch(kernel: TestKernel, syscall: string): () => void {
  const def = kernel.running.dispatcher.definition(syscall)!;
  const original = def.handle;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  def.handle = async (req, ctx) => {
    await gate;
    return original.call(def, req, ctx);
  };
  return () => {
    def.handle = original;
    open();
  };
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
