/**
 * Traces: OpenTelemetry spans for the path of a call — gRPC method -> dispatcher -> component — kept in an
 * in-memory ring by a span processor (no network exporter: the dashboard and `GET /traces` read it). EmitTrace spans from
 * agents land in the same ring, so an agent's span and the kernel spans it caused show as one tree.
 *
 * Context travels with AsyncLocalStorage, one store per kernel (nothing is registered globally, so two
 * kernels in one process keep their traces apart). A gRPC call's parent comes from its `traceparent`
 * metadata (W3C trace context); an EmitTrace request without one is parented under the span it reports.
 *
 * The dispatcher and the kernel are instrumented by wrapping their `dispatch` / `call` methods on the
 * instance: their code stays untouched and a kernel without observability pays nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type * as grpc from '@grpc/grpc-js';
import {
  type Attributes,
  type Context,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { hrTimeToMilliseconds, parseTraceParent } from '@opentelemetry/core';
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Dispatcher } from '../dispatcher/dispatcher.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Span as AgentSpan } from '../syscalls/telemetry.js';

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: 'server' | 'internal' | 'client' | 'agent';
  /** 'kernel' for spans the kernel made, 'agent' for spans reported through EmitTrace. */
  source: 'kernel' | 'agent';
  startMs: number;
  durationMs: number;
  status: 'ok' | 'error' | 'unset';
  error?: string;
  attributes: Record<string, string | number | boolean>;
}

export const DEFAULT_SPAN_CAPACITY = 5_000;
const W3C_TRACE_ID = /^[0-9a-f]{32}$/;
const W3C_SPAN_ID = /^[0-9a-f]{16}$/;

/**
 * A bounded ring of finished spans, oldest first. Kernel spans are kept as the SDK's span objects and
 * converted to records only when read, so a finished span costs one array store on the call path.
 */
export class SpanRing {
  private readonly items: Array<SpanRecord | ReadableSpan> = [];
  private head = 0;
  total = 0;

  constructor(readonly capacity = DEFAULT_SPAN_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('span ring capacity must be >= 1');
  }

  push(r: SpanRecord | ReadableSpan): void {
    this.total++;
    if (this.items.length < this.capacity) this.items.push(r);
    else {
      this.items[this.head] = r;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  list(filter: { traceId?: string; limit?: number } = {}): SpanRecord[] {
    let all = [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
    if (filter.traceId) all = all.filter((s) => traceIdOf(s) === filter.traceId);
    if (filter.limit !== undefined) all = all.slice(-filter.limit);
    return all.map((s) => ('source' in s ? s : toRecord(s)));
  }
}

const KIND: Record<number, SpanRecord['kind']> = {
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.INTERNAL]: 'internal',
};

function toRecord(s: ReadableSpan): SpanRecord {
  const sc = s.spanContext();
  const attributes: SpanRecord['attributes'] = {};
  for (const [k, v] of Object.entries(s.attributes)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attributes[k] = v;
  }
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    name: s.name,
    kind: KIND[s.kind] ?? 'internal',
    source: 'kernel',
    startMs: hrTimeToMilliseconds(s.startTime),
    durationMs: hrTimeToMilliseconds(s.duration),
    status:
      s.status.code === SpanStatusCode.ERROR ? 'error' : s.status.code === SpanStatusCode.OK ? 'ok' : 'unset',
    ...(s.status.message ? { error: s.status.message } : {}),
    attributes,
  };
}

function traceIdOf(s: SpanRecord | ReadableSpan): string {
  return 'source' in s ? s.traceId : s.spanContext().traceId;
}

/**
 * Finished spans straight into the ring. (The SDK's SimpleSpanProcessor + an exporter costs a promise and
 * two context switches per span; this processor is the exporter.)
 */
class RingProcessor implements SpanProcessor {
  constructor(private readonly ring: SpanRing) {}
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.ring.push(span);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

export interface TracingOptions {
  capacity?: number;
  /**
   * Share of new traces recorded, 0 to 1 (default 1). A call that arrives with a `traceparent` follows
   * its sampled flag instead; an unsampled call still gets a trace id (for its log lines and decisions)
   * but no spans, and costs almost nothing.
   */
  sampleRatio?: number;
}

export class Tracing {
  readonly ring: SpanRing;
  readonly provider: BasicTracerProvider;
  readonly tracer: Tracer;
  readonly sampleRatio: number;
  private readonly als = new AsyncLocalStorage<Context>();

  constructor(opts: TracingOptions = {}) {
    this.ring = new SpanRing(opts.capacity ?? DEFAULT_SPAN_CAPACITY);
    this.sampleRatio = opts.sampleRatio ?? 1;
    if (!(this.sampleRatio >= 0 && this.sampleRatio <= 1))
      throw new Error(`trace sample ratio must be from 0 to 1, got ${opts.sampleRatio}`);
    this.provider = new BasicTracerProvider({
      spanProcessors: [new RingProcessor(this.ring)],
    });
    this.tracer = this.provider.getTracer('cam-os-kernel');
  }

  /** The context of the code running now (ROOT_CONTEXT outside any span). */
  active(): Context {
    return this.als.getStore() ?? ROOT_CONTEXT;
  }

  /** Trace and span id of the active span, for log lines and decision records. */
  currentIds(): { traceId: string; spanId: string } | undefined {
    const sc = trace.getSpanContext(this.active());
    return sc ? { traceId: sc.traceId, spanId: sc.spanId } : undefined;
  }

  /**
   * Run `fn` inside a new span (child of `parent`, default the active context). The span ends when the
   * returned promise settles; a rejection marks it as an error with the error's message.
   */
  inSpan<T>(
    name: string,
    opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
    fn: (span: Span) => Promise<T>,
  ): Promise<T> {
    const { span, ctx } = this.begin(name, opts);
    if (!span.isRecording()) return ctx ? this.als.run(ctx, () => fn(span)) : fn(span);
    let p: Promise<T>;
    try {
      p = this.als.run(ctx!, () => fn(span));
    } catch (e) {
      endWith(span, e);
      throw e;
    }
    return p.then(
      (v) => {
        span.setStatus({ code: SpanStatusCode.OK });
        span.end();
        return v;
      },
      (e: unknown) => {
        endWith(span, e);
        throw e;
      },
    );
  }

  /** Synchronous variant for callback-style code: the caller ends the span. */
  startIn<T>(
    name: string,
    opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
    fn: (span: Span) => T,
  ): T {
    const { span, ctx } = this.begin(name, opts);
    return ctx ? this.als.run(ctx, () => fn(span)) : fn(span);
  }

  /**
   * Start a span under `opts.parent` (default: the active context), sampled the parent's way, or for a new
   * trace by the sample ratio, with the context to run the work in. An unsampled call gets a
   * non-recording span (its caller's ids, if any) and no context switch: entering an AsyncLocalStorage
   * context turns on promise hooks for the whole process (Node 20), which is what a sampled-out kernel
   * should not pay for. Its descendants then sample on their own, never as children of nothing recorded
   * (component calls only trace inside a recorded span).
   */
  private begin(
    name: string,
    opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  ): { span: Span; ctx: Context | undefined } {
    const parent = opts.parent ?? this.active();
    if (this.samples(parent)) {
      const span = this.tracer.startSpan(name, { kind: opts.kind, attributes: opts.attributes }, parent);
      return { span, ctx: trace.setSpan(parent, span) };
    }
    return {
      span: trace.wrapSpanContext(trace.getSpanContext(parent) ?? INVALID_SPAN_CONTEXT),
      ctx: undefined,
    };
  }

  /** Whether a span started now would be recorded (the parent's flag, else the sample ratio). */
  private samples(parent = this.active()): boolean {
    const sc = trace.getSpanContext(parent);
    if (sc) return (sc.traceFlags & TraceFlags.SAMPLED) !== 0;
    return this.sampleRatio >= 1 || (this.sampleRatio > 0 && Math.random() < this.sampleRatio);
  }

  /** Whether the active context is a recorded span (component calls are traced only inside one). */
  private recording(): boolean {
    const sc = trace.getSpanContext(this.active());
    return sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) !== 0;
  }

  /** The parent context a `traceparent` value names, or undefined when absent or malformed. */
  parentFromTraceparent(value: string | undefined): Context | undefined {
    if (!value) return undefined;
    const sc = parseTraceParent(value);
    return sc ? trace.setSpanContext(ROOT_CONTEXT, { ...sc, isRemote: true }) : undefined;
  }

  /** A remote parent from a trace id and span id in W3C form (lowercase hex, 32 and 16 digits). */
  parentFromIds(traceId: string, spanId: string): Context | undefined {
    const t = traceId.toLowerCase();
    const s = spanId.toLowerCase();
    if (!W3C_TRACE_ID.test(t) || !W3C_SPAN_ID.test(s) || /^0+$/.test(t) || /^0+$/.test(s)) return undefined;
    const sc: SpanContext = { traceId: t, spanId: s, traceFlags: 1, isRemote: true };
    return trace.setSpanContext(ROOT_CONTEXT, sc);
  }

  /** An EmitTrace span: recorded as reported (ids, times, tags), next to the kernel's own spans. */
  recordAgentSpan(s: AgentSpan): void {
    const attributes: SpanRecord['attributes'] = { 'cam.caller': s.callerId };
    let parentSpanId: string | undefined;
    for (const [k, v] of s.tags) {
      if (k === 'parent_span_id' || k === 'parent_id') parentSpanId = v.toLowerCase();
      else attributes[k] = v;
    }
    this.ring.push({
      traceId: s.traceId.toLowerCase(),
      spanId: s.spanId.toLowerCase(),
      ...(parentSpanId ? { parentSpanId } : {}),
      name: s.operation,
      kind: 'agent',
      source: 'agent',
      startMs: s.startMs,
      durationMs: s.durationNs / 1e6,
      status: s.tags.some(([k, v]) => k === 'error' && v !== '' && v !== 'false') ? 'error' : 'unset',
      attributes,
    });
  }

  /**
   * Spans around every syscall and every component call. `ctx.traceId` of a call that has none is set to
   * the dispatch span's trace, so whatever records the call (the audit log) can point at its trace.
   */
  instrument(dispatcher: Dispatcher, kernel: Kernel): void {
    const dispatch = dispatcher.dispatch;
    dispatcher.dispatch = (name, request, ctx) =>
      !this.samples()
        ? dispatch.call(dispatcher, name, request, ctx)
        : this.inSpan(
            `dispatch ${name}`,
            { kind: SpanKind.INTERNAL, attributes: { 'cam.syscall': name, 'cam.caller': ctx.callerId } },
            (span) => {
              ctx.traceId ??= span.spanContext().traceId;
              return dispatch.call(dispatcher, name, request, ctx);
            },
          );
    const call = kernel.call;
    kernel.call = (component, iface, fn, args, opts) =>
      !this.recording()
        ? call.call(kernel, component, iface, fn, args, opts)
        : this.inSpan(
            `component ${component} ${fn}`,
            {
              kind: SpanKind.CLIENT,
              attributes: { 'cam.component': component, 'cam.interface': iface, 'cam.function': fn },
            },
            () => call.call(kernel, component, iface, fn, args, opts),
          );
  }

  /**
   * Wrap a gRPC service implementation so every unary call runs in a SERVER span (and every stream in
   * one span for its lifetime), parented from the call's `traceparent` metadata.
   */
  instrumentService(
    service: grpc.ServiceDefinition,
    impl: grpc.UntypedServiceImplementation,
  ): grpc.UntypedServiceImplementation {
    const out: grpc.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(impl)) {
      const def = service[method];
      if (!def || typeof handler !== 'function') {
        out[method] = handler;
        continue;
      }
      const attributes = { 'rpc.system': 'grpc', 'rpc.method': def.path };
      if (!def.requestStream && !def.responseStream) {
        const h = handler as grpc.handleUnaryCall<unknown, unknown>;
        out[method] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          const parent = this.parentOf(call.metadata, call.request);
          this.startIn(`grpc ${def.path}`, { kind: SpanKind.SERVER, attributes, parent }, (span) => {
            h(call, (err, value, trailer, flags) => {
              if (err) endWith(span, err);
              else {
                span.setStatus({ code: SpanStatusCode.OK });
                span.end();
              }
              cb(err, value, trailer, flags);
            });
          });
        }) as grpc.UntypedHandleCall;
      } else {
        const h = handler as (call: grpc.ServerWritableStream<unknown, unknown>) => void;
        out[method] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
          const parent = this.parentOf(call.metadata, undefined);
          this.startIn(`grpc ${def.path}`, { kind: SpanKind.SERVER, attributes, parent }, (span) => {
            let ended = false;
            const end = (e?: unknown) => {
              if (ended) return;
              ended = true;
              if (e) endWith(span, e);
              else span.end();
            };
            call.once('finish', () => end());
            call.once('cancelled', () => end(new Error('cancelled')));
            call.once('error', (e: unknown) => end(e));
            call.once('close', () => end());
            if (span.isRecording()) {
              // Stream events fire in grpc's context, not the handler's: bind the handler's listeners to
              // the stream span so the calls a session makes are its children.
              const on = call.on.bind(call);
              const once = call.once.bind(call);
              call.on = ((ev: string, l: (...a: unknown[]) => void) =>
                on(ev, AsyncLocalStorage.bind(l))) as typeof call.on;
              call.once = ((ev: string, l: (...a: unknown[]) => void) =>
                once(ev, AsyncLocalStorage.bind(l))) as typeof call.once;
            }
            h(call);
          });
        }) as grpc.UntypedHandleCall;
      }
    }
    return out;
  }

  private parentOf(md: grpc.Metadata, request: unknown): Context | undefined {
    const tp = md.get('traceparent')[0];
    const fromHeader = this.parentFromTraceparent(typeof tp === 'string' ? tp : tp?.toString());
    if (fromHeader) return fromHeader;
    // The CAM-OS request's own trace: EmitTrace names the span it reports, so its call hangs under it.
    const r = request as { trace_id?: unknown; span_id?: unknown } | undefined;
    if (r && typeof r.trace_id === 'string' && typeof r.span_id === 'string')
      return this.parentFromIds(r.trace_id, r.span_id);
    return undefined;
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

function endWith(span: Span, e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: msg.slice(0, 500) });
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' || typeof code === 'number') span.setAttribute('cam.error_code', code);
  span.end();
}
