/**
 * Issue 9 (observability): a real kernel from boot() with the signed system components, real syscalls over
 * gRPC, and its HTTP listener scraped over loopback — /metrics moves with the calls (latency histogram,
 * errors by code, components, swaps, EmitMetric series), /traces links an agent's EmitTrace span, the gRPC
 * call span, the dispatch span and the component call span into one tree, and the structured log lines
 * carry the trace ids.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpanRecord } from '../../host/src/observability/index.js';
import { SessionClient } from '../../sdk/src/client/session-client.js';
import { systemMissing } from '../system/system-kernel.js';
import { bootObserved, type ObservedKernel, sample } from './kernel.js';

const missing = systemMissing();
if (missing && process.env.CI === 'true')
  throw new Error(`observability tests need built drivers: ${missing}`);

const HIST = 'cam_os_syscall_duration_seconds_count';

describe.skipIf(missing !== undefined)('observability over a booted kernel', () => {
  let k: ObservedKernel;

  beforeAll(async () => {
    k = await bootObserved();
  });

  afterAll(async () => {
    await k?.stop();
  });

  const get = async (path: string) => {
    const res = await fetch(new URL(path, k.url));
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  };
  const scrape = async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    return r.text;
  };
  const spans = async (traceId: string): Promise<SpanRecord[]> => {
    const r = await get(`/traces?trace_id=${traceId}`);
    expect(r.status).toBe(200);
    return (JSON.parse(r.text) as { spans: SpanRecord[] }).spans;
  };

  it('serves /healthz with every component healthy', async () => {
    const r = await get('/healthz');
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    expect(body.components).toMatchObject({
      memory: 'healthy',
      scheduler: 'healthy',
      arbitration: 'healthy',
    });
  });

  it('moves the syscall histogram and error counts with real gRPC calls', async () => {
    const before = await scrape();
    const writes = (lbl: string) => sample(before, HIST, { syscall: 'ContextWrite', outcome: lbl });
    const w0 = writes('ok');
    const r0 = sample(before, HIST, { syscall: 'ContextRead', outcome: 'ok' });
    const bad0 = sample(before, HIST, { syscall: 'ContextWrite', outcome: 'KERNEL_ERR_REQUEST_INVALID' });
    for (let i = 0; i < 5; i++)
      await k.call('ContextWrite', { namespace: 'obs', key: `k${i}`, data: Buffer.from(`v${i}`) });
    for (let i = 0; i < 3; i++) await k.call('ContextRead', { namespace: 'obs', key: `k${i}` });
    await expect(
      k.call('ContextWrite', { namespace: '', key: 'x', data: Buffer.from('y') }),
    ).rejects.toThrow();

    const after = await scrape();
    expect(sample(after, HIST, { syscall: 'ContextWrite', outcome: 'ok' })).toBe(w0 + 5);
    expect(sample(after, HIST, { syscall: 'ContextRead', outcome: 'ok' })).toBe(r0 + 3);
    expect(sample(after, HIST, { syscall: 'ContextWrite', outcome: 'KERNEL_ERR_REQUEST_INVALID' })).toBe(
      bad0 + 1,
    );
    // The +Inf bucket holds every call; the sum is positive seconds.
    expect(
      sample(after, 'cam_os_syscall_duration_seconds_bucket', {
        syscall: 'ContextWrite',
        outcome: 'ok',
        le: '+Inf',
      }),
    ).toBe(w0 + 5);
    expect(
      sample(after, 'cam_os_syscall_duration_seconds_sum', { syscall: 'ContextWrite', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    // Components: calls went into memory; restarts and health are exported per component.
    const memCalls = (t: string) => sample(t, 'cam_os_component_calls_total', { component: 'memory' });
    expect(memCalls(after)).toBeGreaterThanOrEqual(memCalls(before) + 8);
    expect(after).toMatch(/^cam_os_component_restarts_total\{component="memory",version="[^"]*"\} 0$/m);
    expect(sample(after, 'cam_os_component_health', { component: 'memory', state: 'healthy' })).toBe(1);
    expect(sample(after, 'cam_os_components_loaded', {})).toBe(3);
    // Memory: the process's resident set and each component's cap.
    expect(sample(after, 'cam_os_process_resident_memory_bytes', {})).toBeGreaterThan(0);
    expect(sample(after, 'cam_os_component_memory_limit_bytes', { component: 'memory' })).toBeGreaterThan(0);
  });

  it('exports EmitMetric series in /metrics', async () => {
    await k.call('EmitMetric', {
      name: 'agent.queue_depth',
      value: 7,
      unit: 'items',
      tags: { queue: 'plan' },
    });
    await k.call('EmitMetric', {
      name: 'agent.queue_depth',
      value: 4.5,
      unit: 'items',
      tags: { queue: 'plan' },
    });
    const text = await scrape();
    const labels = { metric: 'agent.queue_depth', unit: 'items', tag_queue: 'plan' };
    expect(sample(text, 'cam_os_agent_metric', labels)).toBe(4.5);
    expect(sample(text, 'cam_os_agent_metric_sum', labels)).toBe(11.5);
    expect(sample(text, 'cam_os_agent_metric_samples_total', labels)).toBe(2);
    expect(sample(text, HIST, { syscall: 'EmitMetric', outcome: 'ok' })).toBe(2);
  });

  it('links an EmitTrace span, the gRPC call span and the component span in /traces', async () => {
    const traceId = randomBytes(16).toString('hex');
    const agentSpan = randomBytes(8).toString('hex');
    // The agent reports its own span, then makes a call inside it (W3C traceparent).
    await k.call('EmitTrace', {
      trace_id: traceId,
      span_id: agentSpan,
      operation: 'agent.plan',
      timestamp: Date.now(),
      duration: 2_000_000,
      tags: { step: 'write' },
    });
    await k.call(
      'ContextWrite',
      { namespace: 'obs', key: 'traced', data: Buffer.from('t') },
      `00-${traceId}-${agentSpan}-01`,
    );
    const all = await spans(traceId);
    const agent = all.find((s) => s.source === 'agent');
    expect(agent).toMatchObject({
      spanId: agentSpan,
      name: 'agent.plan',
      durationMs: 2,
      attributes: { step: 'write' },
    });
    // A unary call's server span is its syscall span (no dispatch span of the same length inside it).
    const grpcWrite = all.find((s) => s.name === 'grpc /cam.syscall.SyscallService/ContextWrite');
    expect(grpcWrite).toMatchObject({
      kind: 'server',
      parentSpanId: agentSpan,
      status: 'ok',
      attributes: { 'cam.syscall': 'ContextWrite', 'cam.caller': 'obs-test' },
    });
    expect(all.some((s) => s.name === 'dispatch ContextWrite')).toBe(false);
    const component = all.find((s) => s.parentSpanId === grpcWrite!.spanId);
    expect(component).toMatchObject({ kind: 'client', attributes: { 'cam.component': 'memory' } });
    // EmitTrace without traceparent: its own gRPC span hangs under the span it reports.
    const grpcEmit = all.find((s) => s.name === 'grpc /cam.syscall.SyscallService/EmitTrace');
    expect(grpcEmit).toMatchObject({ parentSpanId: agentSpan });
    expect(all.every((s) => s.traceId === traceId)).toBe(true);
    // The agent span also counts in /metrics.
    expect(sample(await scrape(), 'cam_os_agent_spans_total', {})).toBeGreaterThanOrEqual(1);
  });

  it('writes structured JSON log lines that carry the failing call trace id', async () => {
    const traceId = randomBytes(16).toString('hex');
    await expect(
      k.call(
        'ContextRead',
        { namespace: 'bad namespace!', key: 'x' },
        `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      ),
    ).rejects.toThrow();
    const lines = k.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l.trace_id === traceId);
    expect(line).toMatchObject({
      level: 'warn',
      component: 'kernel',
      fields: { syscall: 'ContextRead', code: 'KERNEL_ERR_REQUEST_INVALID', caller: 'obs-test' },
    });
    expect(typeof line!.span_id).toBe('string');
    expect(new Date(line!.time as string).getTime()).toBeGreaterThan(0);
    // The span the line names exists and failed.
    const failed = (await spans(traceId)).find((s) => s.spanId === line!.span_id);
    expect(failed).toMatchObject({
      name: 'grpc /cam.syscall.SyscallService/ContextRead',
      status: 'error',
      attributes: { 'cam.syscall': 'ContextRead', 'cam.error_code': 'KERNEL_ERR_REQUEST_INVALID' },
    });
  });

  it('traces a streaming session: one span for the stream, a dispatch span per call under it', async () => {
    const s = await SessionClient.open({ address: k.booted.address });
    await s.call('ContextWrite', {
      namespace: 'obs',
      key: 'streamed',
      data: Buffer.from('s'),
      caller_id: 'stream-test',
    });
    await s.call('ContextRead', { namespace: 'obs', key: 'streamed', caller_id: 'stream-test' });
    await s.close();
    const r = await get('/traces?limit=5000');
    const all = (JSON.parse(r.text) as { spans: SpanRecord[] }).spans;
    const writes = all.filter(
      (x) => x.name === 'dispatch ContextWrite' && x.attributes['cam.caller'] === 'stream-test',
    );
    expect(writes).toHaveLength(1);
    await expect
      .poll(async () => {
        const spans = (
          JSON.parse((await get(`/traces?trace_id=${writes[0]!.traceId}`)).text) as { spans: SpanRecord[] }
        ).spans;
        return spans.find((x) => x.spanId === writes[0]!.parentSpanId)?.name;
      })
      .toMatch(/^grpc \/cam\..*Session.*\/Open$/);
  });

  it('tags guest log lines written during a traced call with its trace and component span', async () => {
    const traceId = randomBytes(16).toString('hex');
    await k.call(
      'AgentRegister',
      { agent_id: 'obs-agent', capabilities: ['plan'], metadata: { provider: 'p' } },
      `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
    );
    const guest = k.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.component === 'arbitration' && l.trace_id === traceId);
    expect(guest).toMatchObject({ level: 'info', msg: 'agent registered', fields: { agent: 'obs-agent' } });
    const span = (await spans(traceId)).find((s) => s.spanId === guest!.span_id);
    expect(span).toMatchObject({ kind: 'client', attributes: { 'cam.component': 'arbitration' } });
  });

  it('answers bad /traces parameters with 400 and names the parameter', async () => {
    const r = await get('/traces?limit=0');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error).toMatch(/limit/);
    const h = await get('/traces?trace_id=xyz');
    expect(h.status).toBe(400);
    expect(JSON.parse(h.text).error).toMatch(/trace_id/);
  });
});
