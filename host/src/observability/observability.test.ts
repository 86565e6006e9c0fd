/**
 * Unit tests of the observability parts on real objects (a Dispatcher, a Kernel with no components, the
 * telemetry store): span tree and sampling, the span ring, live rates, log lines with trace ids, the
 * Prometheus registry, and the `http` / `traceSampleRatio` config keys. The end-to-end tests over a booted
 * kernel are in test/observability and test/dashboard.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import client from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { type CallContext, Dispatcher } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { Kernel } from '../kernel/kernel.js';
import { defaultHttp, loadConfig } from '../server/config.js';
import { TelemetryStore } from '../syscalls/telemetry.js';
import { Observability, SpanRing, Tracing } from './index.js';
import { SYSCALL_BUCKETS, SyscallDurations } from './metrics.js';
import type { KernelSpan } from './tracing.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'cam-obs-unit-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dispatcherWith(): Dispatcher {
  const d = new Dispatcher();
  d.register<{ fail?: boolean }, unknown>({
    name: 'Echo',
    group: 'observability',
    summary: 'test',
    validate: (r) => r as { fail?: boolean },
    handle: async (r) => {
      if (r.fail) throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'asked to fail');
      return { ok: true };
    },
  });
  return d;
}
const ctx = (): CallContext => ({ callerId: 'unit', deadlineAt: Date.now() + 5_000 });

describe('Tracing', () => {
  it('nests spans through async work and records errors', async () => {
    const t = new Tracing();
    await t.inSpan('outer', {}, async () => {
      await new Promise((r) => setTimeout(r, 1));
      await t.inSpan('inner', {}, async () => undefined);
      await expect(
        t.inSpan('failing', {}, async () => {
          throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'bad field');
        }),
      ).rejects.toThrow('bad field');
    });
    const [inner, failing, outer] = t.ring.list();
    expect(outer).toMatchObject({ name: 'outer', status: 'ok', source: 'kernel' });
    expect(inner).toMatchObject({ name: 'inner', parentSpanId: outer!.spanId, traceId: outer!.traceId });
    expect(failing).toMatchObject({
      status: 'error',
      error: 'bad field',
      attributes: { 'cam.error_code': 'KERNEL_ERR_REQUEST_INVALID' },
    });
    expect(outer!.durationMs).toBeGreaterThan(0);
  });

  it('follows traceparent: sampled parents are kept, unsampled ones record nothing', async () => {
    const t = new Tracing();
    const traceId = 'a'.repeat(32);
    const sampled = t.parentFromTraceparent(`00-${traceId}-${'b'.repeat(16)}-01`);
    await t.inSpan('kept', { parent: sampled }, async () => undefined);
    expect(t.ring.list({ traceId })).toMatchObject([{ name: 'kept', parentSpanId: 'b'.repeat(16) }]);
    const unsampled = t.parentFromTraceparent(`00-${'c'.repeat(32)}-${'d'.repeat(16)}-00`);
    await t.inSpan('dropped', { parent: unsampled }, async () => undefined);
    expect(t.ring.list()).toHaveLength(1);
    expect(t.parentFromTraceparent('garbage')).toBeUndefined();
    expect(t.parentFromIds('abc', 'de01')).toBeUndefined();
    expect(t.parentFromIds('0'.repeat(32), '1'.repeat(16))).toBeUndefined();
  });

  it('with sampleRatio 0 records no span and leaves the dispatcher result alone', async () => {
    const d = dispatcherWith();
    const k = new Kernel({ dataDir: tmp() });
    const obs = new Observability({ dispatcher: d, kernel: k }, { traceSampleRatio: 0, log: () => {} });
    const c = ctx();
    expect(await d.dispatch('Echo', {}, c)).toEqual({ ok: true });
    expect(obs.tracing.ring.list()).toEqual([]);
    expect(c).not.toHaveProperty('traceId');
    await obs.stop();
    expect(() => new Tracing({ sampleRatio: 2 })).toThrow(/from 0 to 1/);
  });

  it('records EmitTrace spans as reported, with a parent named by tag', () => {
    const t = new Tracing();
    t.recordAgentSpan({
      traceId: 'ABCDEF',
      spanId: '0102',
      operation: 'agent.step',
      startMs: 1_000,
      durationNs: 3_000_000,
      tags: [
        ['parent_span_id', 'FFEE'],
        ['model', 'm1'],
      ],
      callerId: 'agent-1',
      receivedAtMs: 2_000,
    });
    expect(t.ring.list({ traceId: 'abcdef' })).toEqual([
      {
        traceId: 'abcdef',
        spanId: '0102',
        parentSpanId: 'ffee',
        name: 'agent.step',
        kind: 'agent',
        source: 'agent',
        startMs: 1_000,
        durationMs: 3,
        status: 'unset',
        attributes: { 'cam.caller': 'agent-1', model: 'm1' },
      },
    ]);
  });
});

describe('KernelSpan', () => {
  it('has W3C ids, records once, and ignores changes after it ended', () => {
    const t = new Tracing();
    const root = t.startSpan('root', SpanKind.SERVER, { 'rpc.method': '/x', list: ['a', 'b'] });
    const child = t.startSpan('child', undefined, undefined, trace.setSpan(ROOT_CONTEXT, root));
    const ids = new Set<string>();
    for (let i = 0; i < 600; i++) ids.add(t.startSpan('x').spanContext().spanId);
    expect(ids.size).toBe(600);
    expect(root.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(child.spanContext().traceId).toBe(root.spanContext().traceId);
    child.addEvent('retry', { attempt: 2 }, 1_700_000_000_000);
    child.recordException(new TypeError('boom'));
    child.addLink({ context: root.spanContext() });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    child.end();
    child.end();
    child.setAttribute('late', 1);
    child.updateName('renamed');
    expect(child.isRecording()).toBe(false);
    root.end();
    const [c, r] = t.ring.list();
    expect(t.ring.total).toBe(2);
    expect(r).toMatchObject({
      name: 'root',
      kind: 'server',
      attributes: { 'rpc.method': '/x', list: 'a,b' },
    });
    expect(r).not.toHaveProperty('parentSpanId');
    expect(c).toMatchObject({
      name: 'child',
      parentSpanId: r!.spanId,
      status: 'error',
      error: 'boom',
      links: [{ traceId: r!.traceId, spanId: r!.spanId }],
      events: [
        { name: 'retry', timeMs: 1_700_000_000_000, attributes: { attempt: 2 } },
        { name: 'exception', attributes: { 'exception.type': 'TypeError', 'exception.message': 'boom' } },
      ],
    });
    expect(c!.attributes).not.toHaveProperty('late');
    expect(c!.durationMs).toBeGreaterThanOrEqual(0);
    expect(c!.durationMs).toBeLessThanOrEqual(r!.durationMs);
  });

  it('records a unary call as one span: the first syscall dispatched under it claims it', async () => {
    const d = dispatcherWith();
    const k = new Kernel({ dataDir: tmp() });
    const obs = new Observability({ dispatcher: d, kernel: k }, { log: () => {} });
    const c1 = ctx();
    // As the gRPC wrapper does: a server span with the syscall slot, the handler run in its context.
    const { span, first, second } = obs.tracing.startIn('grpc /x/Echo', { kind: SpanKind.SERVER }, (span) => {
      (span as KernelSpan).syscallSlot = true;
      return {
        span,
        first: d.dispatch('Echo', { fail: true }, c1).catch((e: unknown) => e),
        second: d.dispatch('Echo', {}, ctx()),
      };
    });
    expect(await first).toMatchObject({ message: 'asked to fail' });
    expect(await second).toEqual({ ok: true });
    span.end();
    const spans = obs.tracing.ring.list();
    const s = spans.find((x) => x.name === 'grpc /x/Echo');
    expect(s).toMatchObject({
      kind: 'server',
      status: 'error',
      error: 'asked to fail',
      attributes: {
        'cam.syscall': 'Echo',
        'cam.caller': 'unit',
        'cam.error_code': 'KERNEL_ERR_REQUEST_INVALID',
      },
    });
    expect(c1.traceId).toBe(s!.traceId);
    // The second syscall under the same span gets a span of its own.
    expect(spans.filter((x) => x.name === 'dispatch Echo' && x.parentSpanId === s!.spanId)).toHaveLength(1);
    await obs.stop();
  });
});

describe('Tracing.instrumentService', () => {
  it('runs the events of a stream in its span, and once-listeners still remove themselves', () => {
    const t = new Tracing();
    const seen: Array<string | undefined> = [];
    const def = {
      Open: { path: '/x.S/Open', requestStream: true, responseStream: true },
    } as unknown as grpc.ServiceDefinition;
    let streamCall: EventEmitter | undefined;
    const impl = t.instrumentService(def, {
      Open: (call: EventEmitter) => {
        streamCall = call;
      },
    } as unknown as grpc.UntypedServiceImplementation);
    const call = Object.assign(new EventEmitter(), { metadata: new grpc.Metadata() });
    (impl.Open as unknown as (c: EventEmitter) => void)(call);
    expect(streamCall).toBe(call);
    // A session that backs up and drains many times, as session-service's `send` does.
    for (let i = 0; i < 25; i++) {
      call.once('drain', () => seen.push(t.currentIds()?.spanId));
      call.emit('drain');
    }
    expect(call.listenerCount('drain')).toBe(0);
    expect(seen).toHaveLength(25);
    call.emit('finish');
    const [span] = t.ring.list();
    expect(span).toMatchObject({ name: 'grpc /x.S/Open', kind: 'server' });
    expect(new Set(seen)).toEqual(new Set([span!.spanId]));
  });
});

describe('SpanRing', () => {
  it('keeps the newest spans up to its capacity, oldest first', () => {
    const r = new SpanRing(3);
    for (let i = 0; i < 5; i++) {
      r.push({
        traceId: i % 2 ? 'odd' : 'even',
        spanId: String(i),
        name: `s${i}`,
        kind: 'agent',
        source: 'agent',
        startMs: i,
        durationMs: 0,
        status: 'unset',
        attributes: {},
      });
    }
    expect(r.list().map((s) => s.spanId)).toEqual(['2', '3', '4']);
    expect(r.list({ traceId: 'even' }).map((s) => s.spanId)).toEqual(['2', '4']);
    expect(r.list({ limit: 1 }).map((s) => s.spanId)).toEqual(['4']);
    expect(r.total).toBe(5);
    expect(() => new SpanRing(0)).toThrow(/capacity/);
  });

  it('stores kernel spans field by field beside agent records, and rebuilds them when read', () => {
    const t = new Tracing({ capacity: 3 });
    const shared = { 'cam.component': 'memory' };
    const a = t.startSpan('a', SpanKind.CLIENT, shared);
    a.setAttribute('late', 2);
    a.setStatus({ code: SpanStatusCode.ERROR, message: 'nope' });
    a.end();
    const b = t.startSpan('b', SpanKind.SERVER, undefined, trace.setSpan(ROOT_CONTEXT, a));
    b.forSyscall('ContextRead', 'agent-1');
    b.end();
    t.recordAgentSpan({
      traceId: 'ab',
      spanId: 'cd',
      operation: 'agent.step',
      startMs: 1,
      durationNs: 0,
      tags: [],
      callerId: 'agent-1',
      receivedAtMs: 1,
    });
    const c = t.startSpan('c');
    c.end();
    // 'a' was overwritten by 'c' (capacity 3); the shared attribute object is read, not copied, and unchanged.
    const [rb, agent, rc] = t.ring.list();
    expect(rb).toMatchObject({
      name: 'b',
      kind: 'server',
      status: 'unset',
      parentSpanId: a.spanContext().spanId,
      traceId: a.spanContext().traceId,
      attributes: { 'cam.syscall': 'ContextRead', 'cam.caller': 'agent-1' },
    });
    expect(agent).toMatchObject({ name: 'agent.step', source: 'agent' });
    expect(rc).toMatchObject({ name: 'c', kind: 'internal', attributes: {} });
    expect(t.ring.total).toBe(4);
    expect(shared).toEqual({ 'cam.component': 'memory' });
    const t2 = new Tracing({ capacity: 2 });
    const d = t2.startSpan('d', SpanKind.CLIENT, shared);
    d.setAttribute('late', 2);
    d.setStatus({ code: SpanStatusCode.ERROR, message: 'nope' });
    d.end();
    expect(t2.ring.list()).toEqual([
      expect.objectContaining({
        name: 'd',
        kind: 'client',
        status: 'error',
        error: 'nope',
        attributes: { 'cam.component': 'memory', late: 2 },
      }),
    ]);
  });
});

describe('Observability on a dispatcher', () => {
  it('exports latency by outcome, agent series, and logs failures with trace ids', async () => {
    const d = dispatcherWith();
    const k = new Kernel({ dataDir: tmp() });
    const lines: string[] = [];
    const obs = new Observability({ dispatcher: d, kernel: k }, { log: (l) => lines.push(l) });
    const store = new TelemetryStore();
    obs.attachTelemetry(store);
    for (let i = 0; i < 3; i++) await d.dispatch('Echo', {}, ctx());
    const failing = ctx();
    await expect(d.dispatch('Echo', { fail: true }, failing)).rejects.toThrow('asked to fail');
    store.addSample({
      name: 'tokens.used',
      value: 5,
      unit: '1',
      tags: [['model', 'x-1']],
      timestampMs: 1,
      callerId: 'a',
    });
    const text = await obs.metrics.text();
    expect(text).toContain('cam_os_syscall_duration_seconds_count{syscall="Echo",outcome="ok"} 3');
    expect(text).toContain(
      'cam_os_syscall_duration_seconds_count{syscall="Echo",outcome="KERNEL_ERR_REQUEST_INVALID"} 1',
    );
    expect(text).toContain('cam_os_agent_metric{metric="tokens.used",unit="1",tag_model="x-1"} 5');
    expect(text).toContain('cam_os_components_loaded 0');

    const logged = lines.map((l) => JSON.parse(l));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'warn',
      component: 'kernel',
      msg: 'Echo failed: asked to fail',
      fields: { syscall: 'Echo', code: 'KERNEL_ERR_REQUEST_INVALID', caller: 'unit' },
      trace_id: failing.traceId,
    });
    const span = obs.tracing.ring
      .list({ traceId: failing.traceId })
      .find((s) => s.spanId === logged[0].span_id);
    expect(span).toMatchObject({ name: 'dispatch Echo', status: 'error' });

    // Guest log lines get the active trace ids appended, and stay JSON.
    const guest = obs.logger.guestSink();
    await obs.tracing.inSpan('guest call', {}, async () => {
      guest(JSON.stringify({ level: 'info', component: 'g', msg: 'hi', fields: {} }));
    });
    const g = JSON.parse(lines.at(-1)!);
    expect(g).toMatchObject({ component: 'g', msg: 'hi' });
    expect(g.trace_id).toMatch(/^[0-9a-f]{32}$/);
    await obs.stop();
  });

  it('closes one-second windows of rate and latency', async () => {
    const d = dispatcherWith();
    const k = new Kernel({ dataDir: tmp() });
    const obs = new Observability({ dispatcher: d, kernel: k }, { log: () => {} });
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) await d.dispatch('Echo', {}, ctx());
    await d.dispatch('Echo', { fail: true }, ctx()).catch(() => undefined);
    const p = obs.rates.tick(t0 + 2_000);
    expect(p.bySyscall).toEqual({ Echo: 11 });
    expect(p.errors).toBe(1);
    expect(p.rate).toBeGreaterThan(0);
    expect(p.p99Us).toBeGreaterThanOrEqual(p.p50Us);
    expect(obs.rates.tick(t0 + 3_000)).toMatchObject({ rate: 0, errors: 0, p50Us: 0, bySyscall: {} });
    expect(obs.rates.list()).toHaveLength(2);
    await obs.stop();
  });
});

describe('config: http and traceSampleRatio', () => {
  it('puts the HTTP listener next to gRPC by default, and validates both keys', () => {
    expect(defaultHttp('127.0.0.1:50051')).toBe('127.0.0.1:50052');
    expect(defaultHttp('127.0.0.1:0')).toBe('127.0.0.1:0');
    expect(() => defaultHttp('127.0.0.1:65535')).toThrow(/set http/);
    const dataDir = tmp();
    expect(loadConfig({ dataDir }, {})).toMatchObject({ http: '127.0.0.1:50052', traceSampleRatio: 1 });
    expect(loadConfig({ dataDir }, { CAM_OS_HTTP: 'off', CAM_OS_TRACE_SAMPLE: '0.25' })).toMatchObject({
      http: 'off',
      traceSampleRatio: 0.25,
    });
    expect(() => loadConfig({ dataDir }, { CAM_OS_HTTP: 'nonsense' })).toThrow(/must be host:port/);
    expect(() => loadConfig({ dataDir }, { CAM_OS_TRACE_SAMPLE: '2' })).toThrow(
      /traceSampleRatio \(from CAM_OS_TRACE_SAMPLE\) must be a number from 0 to 1/,
    );
    writeFileSync(
      join(dataDir, 'config.json'),
      JSON.stringify({ http: '127.0.0.1:9100', traceSampleRatio: 0 }),
    );
    expect(loadConfig({ dataDir }, {})).toMatchObject({ http: '127.0.0.1:9100', traceSampleRatio: 0 });
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ traceSampleRatio: 'all' }));
    expect(() => loadConfig({ dataDir }, {})).toThrow(/config.json\) must be a number from 0 to 1/);
  });
});

describe('SyscallDurations', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const ours = new client.Registry();
    const durations = new SyscallDurations();
    durations.register(ours);
    const theirs = new client.Registry();
    const h = new client.Histogram({
      name: 'cam_os_syscall_duration_seconds',
      help: 'Syscall latency through the dispatcher (validation, deadline, handler, component), by outcome (ok or the error code)',
      labelNames: ['syscall', 'outcome'],
      buckets: SYSCALL_BUCKETS,
      registers: [theirs],
    });
    // On bounds, between them, below the first and above the last.
    const values = [...SYSCALL_BUCKETS, 0, 0.000003, 0.00007, 0.3, 11, 400];
    values.forEach((v, i) => {
      const [syscall, outcome] =
        i % 3 === 0
          ? ['ContextRead', 'ok']
          : i % 3 === 1
            ? ['ContextWrite', 'ok']
            : ['ContextRead', 'KERNEL_ERR_REQUEST_INVALID'];
      durations.observe(syscall!, outcome!, v);
      h.labels(syscall!, outcome!).observe(v);
    });
    const lines = (t: string) => t.split('\n').sort();
    expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
  });
});
