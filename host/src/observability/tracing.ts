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
import { randomFillSync } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import {
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  INVALID_SPAN_CONTEXT,
  type Link,
  type Span,
  type SpanAttributes,
  type SpanContext,
  SpanKind,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import type { Dispatcher } from '../dispatcher/dispatcher.js';
import type { Kernel } from '../kernel/kernel.js';
import { innerMap, memoized } from '../maps.js';
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
  /** Events added to the span (none on the kernel's own call path). */
  events?: Array<{ name: string; timeMs: number; attributes: Record<string, string | number | boolean> }>;
  /** Spans this one links to (none on the kernel's own call path). */
  links?: Array<{ traceId: string; spanId: string }>;
}

export const DEFAULT_SPAN_CAPACITY = 5_000;
/** Share of new traces recorded when the configuration names none: every call is traced. */
export const DEFAULT_TRACE_SAMPLE_RATIO = 1;
const W3C_TRACE_ID = /^[0-9a-f]{32}$/;
const W3C_SPAN_ID = /^[0-9a-f]{16}$/;

/**
 * A bounded ring of finished spans, oldest first.
 *
 * A kernel span is stored field by field into preallocated slots when it ends, so the span object, its
 * context and its attribute overlay die young. Keeping the span objects themselves (as this ring once did)
 * kept ~0.5 KB per span alive until the ring wrapped: at two spans per syscall that was ~300 KB copied by every
 * scavenge under gRPC load and promoted into the old generation (bench/RESULTS.md, "grpc"). What a slot still
 * holds are strings (ids, the caller) and attribute objects the callers share between spans. Records are
 * built only when the ring is read. EmitTrace spans, already records, are kept as they are.
 */
export class SpanRing {
  private readonly traceIds: string[] = [];
  private readonly spanIds: string[] = [];
  private readonly parents: Array<string | undefined> = [];
  private readonly names: string[] = [];
  private readonly kinds: Uint8Array;
  private readonly statuses: Uint8Array;
  private readonly times: Float64Array;
  /** Attributes given at start (kept by reference: the kernel's are shared constants). */
  private readonly bases: Array<Attributes | undefined> = [];
  /** The syscall and caller a span stands for (see KernelSpan.forSyscall). */
  private readonly syscalls: Array<string | undefined> = [];
  private readonly callers: Array<string | undefined> = [];
  /** What few spans have: attributes set later, events, links, an error message. */
  private readonly extras: Array<SpanExtras | undefined> = [];
  /** EmitTrace spans, as reported. */
  private readonly agents: Array<SpanRecord | undefined> = [];
  private size = 0;
  private head = 0;
  total = 0;

  constructor(readonly capacity = DEFAULT_SPAN_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('span ring capacity must be >= 1');
    this.kinds = new Uint8Array(capacity);
    this.statuses = new Uint8Array(capacity);
    this.times = new Float64Array(capacity * 2);
  }

  /** An EmitTrace span, kept as reported. (A kernel span stores itself when it ends: KernelSpan.end.) */
  push(r: SpanRecord): void {
    this.agents[this.slot()] = r;
  }

  /** A kernel span's fields into the next slot (KernelSpan.end). */
  store(
    traceId: string,
    spanId: string,
    parentSpanId: string | undefined,
    name: string,
    kind: SpanKind,
    status: SpanStatusCode,
    startMs: number,
    durationMs: number,
    base: Attributes | undefined,
    syscall: string | undefined,
    caller: string | undefined,
    extras: SpanExtras | undefined,
  ): void {
    const i = this.slot();
    this.agents[i] = undefined;
    this.traceIds[i] = traceId;
    this.spanIds[i] = spanId;
    this.parents[i] = parentSpanId;
    this.names[i] = name;
    this.kinds[i] = kind;
    this.statuses[i] = status;
    this.times[2 * i] = startMs;
    this.times[2 * i + 1] = durationMs;
    this.bases[i] = base;
    this.syscalls[i] = syscall;
    this.callers[i] = caller;
    this.extras[i] = extras;
  }

  list(filter: { traceId?: string; limit?: number } = {}): SpanRecord[] {
    const order: number[] = [];
    const first = this.size < this.capacity ? 0 : this.head;
    for (let n = 0; n < this.size; n++) {
      const i = (first + n) % this.capacity;
      if (filter.traceId === undefined || (this.agents[i]?.traceId ?? this.traceIds[i]) === filter.traceId)
        order.push(i);
    }
    const picked = filter.limit === undefined ? order : order.slice(Math.max(0, order.length - filter.limit));
    return picked.map((i) => this.record(i));
  }

  /** The slot to write next (the oldest once the ring is full). */
  private slot(): number {
    this.total++;
    const i = this.head;
    this.head = (i + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
    return i;
  }

  private record(i: number): SpanRecord {
    const agent = this.agents[i];
    if (agent) return agent;
    const attributes: Record<string, Primitive> = {};
    const base = this.bases[i];
    if (base) for (const k in base) putPrimitive(attributes, k, base[k]);
    const x = this.extras[i];
    if (x?.attributes) Object.assign(attributes, x.attributes);
    if (this.syscalls[i] !== undefined) {
      attributes['cam.syscall'] = this.syscalls[i]!;
      attributes['cam.caller'] = this.callers[i]!;
    }
    const status = this.statuses[i];
    const parent = this.parents[i];
    return {
      traceId: this.traceIds[i]!,
      spanId: this.spanIds[i]!,
      ...(parent ? { parentSpanId: parent } : {}),
      name: this.names[i]!,
      kind: KIND[this.kinds[i]!] ?? 'internal',
      source: 'kernel',
      startMs: this.times[2 * i]!,
      durationMs: this.times[2 * i + 1]!,
      status: status === SpanStatusCode.ERROR ? 'error' : status === SpanStatusCode.OK ? 'ok' : 'unset',
      ...(x?.error ? { error: x.error } : {}),
      attributes,
      ...(x?.events ? { events: x.events.map((e) => ({ ...e, attributes: { ...e.attributes } })) } : {}),
      ...(x?.links ? { links: x.links.map((l) => ({ ...l })) } : {}),
    };
  }
}

/** The rarely used parts of a kernel span, kept together so a plain span stores none of them. */
interface SpanExtras {
  attributes?: Record<string, Primitive>;
  events?: SpanRecord['events'];
  links?: SpanRecord['links'];
  error?: string;
}

const KIND: Record<number, SpanRecord['kind']> = {
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.INTERNAL]: 'internal',
};

/**
 * Random trace and span ids, hex, cut from a pool refilled by the CSPRNG 4 KiB at a time (W3C: ids must be
 * random and not all zero).
 */
class Ids {
  private readonly pool = Buffer.allocUnsafe(4096);
  private at = this.pool.length;

  next(bytes: 8 | 16): string {
    for (;;) {
      if (this.at + bytes > this.pool.length) {
        randomFillSync(this.pool);
        this.at = 0;
      }
      const id = this.pool.toString('hex', this.at, this.at + bytes);
      this.at += bytes;
      if (!/^0+$/.test(id)) return id;
    }
  }
}

type Primitive = string | number | boolean;

/**
 * A recorded kernel span: the OpenTelemetry API's Span, implemented for what the kernel does with spans — keep
 * them in the in-memory ring (no exporter, processors, resource or limits). It replaces the SDK's
 * BasicTracerProvider/SpanImpl, measured on the call path: 2.0-2.7 us per span in a tight loop (ids from
 * Math.random formatted to hex, hrtime conversions, attribute sanitising), about 8-10 us per span in the
 * kernel under gRPC load, and each of its ~25-field objects is kept alive by the 5,000-span ring into the old
 * generation. Two or three spans per syscall made tracing the largest single cost of a ContextRead after the
 * component call (bench/RESULTS.md, "grpc"). This one is ~0.5 us: ids from a CSPRNG pool, one clock read at
 * each end, attributes copied only when they are primitives (the API's arrays are kept as their string).
 */
export class KernelSpan implements Span {
  private readonly sc: SpanContext;
  private readonly startMs: number;
  private durationMs = -1;
  private statusCode = SpanStatusCode.UNSET;
  private statusMessage: string | undefined;
  /** The syscall and caller this span stands for (set by `forSyscall`), kept out of any attribute object. */
  private syscall: string | undefined;
  private caller: string | undefined;
  private extras: SpanExtras | undefined;
  /**
   * Set on a unary gRPC call's server span: the first syscall dispatched under it is recorded on this span
   * (its name and caller as attributes) instead of in a child span. See Tracing.instrument.
   */
  syscallSlot = false;

  /**
   * `attributes` are kept by reference and read when the ring is listed: the kernel passes objects it shares
   * between spans and never changes (copying them made an object per span that the ring kept alive).
   */
  constructor(
    private readonly ring: SpanRing,
    private name: string,
    private readonly kind: SpanKind,
    private readonly parent: SpanContext | undefined,
    ids: Ids,
    private readonly attributes: Attributes | undefined,
  ) {
    this.sc = {
      traceId: parent?.traceId ?? ids.next(16),
      spanId: ids.next(8),
      traceFlags: TraceFlags.SAMPLED,
    };
    this.startMs = timeMs(undefined);
  }

  spanContext(): SpanContext {
    return this.sc;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (this.durationMs < 0) putPrimitive(this.overlay(), key, value);
    return this;
  }

  setAttributes(attributes: SpanAttributes): this {
    if (this.durationMs < 0) {
      const to = this.overlay();
      for (const k in attributes) putPrimitive(to, k, attributes[k]);
    }
    return this;
  }

  addEvent(name: string, attributesOrTime?: SpanAttributes | TimeInput, time?: TimeInput): this {
    if (this.durationMs >= 0) return this;
    const isTime = (v: unknown): v is TimeInput =>
      typeof v === 'number' || v instanceof Date || Array.isArray(v);
    const at = isTime(attributesOrTime) ? attributesOrTime : time;
    const attributes: Record<string, Primitive> = {};
    if (attributesOrTime && !isTime(attributesOrTime)) {
      for (const k in attributesOrTime) putPrimitive(attributes, k, attributesOrTime[k]);
    }
    const x = this.extra();
    x.events ??= [];
    x.events.push({ name, timeMs: timeMs(at), attributes });
    return this;
  }

  addLink(link: Link): this {
    if (this.durationMs < 0) {
      const x = this.extra();
      x.links ??= [];
      x.links.push({ traceId: link.context.traceId, spanId: link.context.spanId });
    }
    return this;
  }

  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.durationMs < 0) {
      this.statusCode = status.code;
      this.statusMessage = status.message;
    }
    return this;
  }

  updateName(name: string): this {
    if (this.durationMs < 0) this.name = name;
    return this;
  }

  /** Ends the span (once) and stores its fields in the ring. */
  end(endTime?: TimeInput): void {
    if (this.durationMs >= 0) return;
    this.durationMs = Math.max(0, timeMs(endTime) - this.startMs);
    this.ring.store(
      this.sc.traceId,
      this.sc.spanId,
      this.parent?.spanId,
      this.name,
      this.kind,
      this.statusCode,
      this.startMs,
      this.durationMs,
      this.attributes,
      this.syscall,
      this.caller,
      this.statusMessage ? { ...this.extras, error: this.statusMessage } : this.extras,
    );
  }

  isRecording(): boolean {
    return this.durationMs < 0;
  }

  /** Whether the span's status is an error. */
  get failed(): boolean {
    return this.statusCode === SpanStatusCode.ERROR;
  }

  /** Take the syscall slot (once): the span then stands for syscall `name` made by `caller`. */
  claimSyscall(name: string, caller: string): boolean {
    if (!this.syscallSlot || !this.isRecording()) return false;
    this.syscallSlot = false;
    this.forSyscall(name, caller);
    return true;
  }

  /** Record the syscall and caller this span stands for (the `cam.syscall` and `cam.caller` attributes). */
  forSyscall(name: string, caller: string): void {
    this.syscall = name;
    this.caller = caller;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const e = typeof exception === 'string' ? { message: exception } : exception;
    this.addEvent(
      'exception',
      {
        ...(e.name ? { 'exception.type': e.name } : {}),
        ...(e.message ? { 'exception.message': e.message } : {}),
      },
      time,
    );
  }

  private extra(): SpanExtras {
    if (!this.extras) this.extras = {};
    return this.extras;
  }

  /** Attributes set after the start (over the ones given at start). */
  private overlay(): Record<string, Primitive> {
    const x = this.extra();
    x.attributes ??= {};
    return x.attributes;
  }
}

/** An attribute value as the ring keeps it: primitives as they are, arrays as their string, none dropped. */
function putPrimitive(to: Record<string, Primitive>, key: string, value: AttributeValue | undefined): void {
  if (value !== undefined && value !== null) to[key] = typeof value === 'object' ? String(value) : value;
}

/** An OpenTelemetry TimeInput (default: now) as epoch milliseconds (numbers are epoch ms, as in the SDK). */
function timeMs(t: TimeInput | undefined): number {
  if (t === undefined) return performance.timeOrigin + performance.now();
  if (typeof t === 'number') return t;
  if (t instanceof Date) return t.getTime();
  return t[0] * 1e3 + t[1] / 1e6;
}

/**
 * An OpenTelemetry Context as a chain of (key, value) links: setting a value makes one small object. The API's
 * BaseContext copies its whole Map and makes three closures on every setValue, i.e. on every span started
 * (trace.setSpan), which was ~0.6 KB of short-lived garbage per span on the syscall path. Lookups walk the
 * chain, which is a few links deep (remote parent, server span, component span).
 */
class LinkedContext implements Context {
  constructor(
    private readonly parent: LinkedContext | undefined,
    private readonly key: symbol | undefined,
    private readonly value: unknown,
  ) {}

  getValue(key: symbol): unknown {
    for (let c: LinkedContext | undefined = this; c; c = c.parent) if (c.key === key) return c.value;
    return undefined;
  }

  setValue(key: symbol, value: unknown): Context {
    return new LinkedContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new LinkedContext(this, key, undefined);
  }
}

/** The empty context every kernel context grows from (the API's ROOT_CONTEXT, as a LinkedContext). */
const KERNEL_ROOT: Context = new LinkedContext(undefined, undefined, undefined);

export interface TracingOptions {
  capacity?: number;
  /**
   * Share of new traces recorded, 0 to 1 (default DEFAULT_TRACE_SAMPLE_RATIO). A call that arrives with a `traceparent` follows
   * its sampled flag instead; an unsampled call still gets a trace id (for its log lines and decisions)
   * but no spans, and costs almost nothing.
   */
  sampleRatio?: number;
}

export class Tracing {
  readonly ring: SpanRing;
  readonly sampleRatio: number;
  private readonly ids = new Ids();
  private readonly als = new AsyncLocalStorage<Context>();

  constructor(opts: TracingOptions = {}) {
    this.ring = new SpanRing(opts.capacity ?? DEFAULT_SPAN_CAPACITY);
    this.sampleRatio = opts.sampleRatio ?? DEFAULT_TRACE_SAMPLE_RATIO;
    if (!(this.sampleRatio >= 0 && this.sampleRatio <= 1))
      throw new Error(`trace sample ratio must be from 0 to 1, got ${opts.sampleRatio}`);
  }

  /** The context of the code running now (the empty root outside any span). */
  active(): Context {
    return this.als.getStore() ?? KERNEL_ROOT;
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
      const span = this.startSpan(name, opts.kind, opts.attributes, parent);
      return { span, ctx: trace.setSpan(parent, span) };
    }
    return {
      span: trace.wrapSpanContext(trace.getSpanContext(parent) ?? INVALID_SPAN_CONTEXT),
      ctx: undefined,
    };
  }

  /** A recorded span under `parent` (its trace, or a new one). */
  startSpan(
    name: string,
    kind = SpanKind.INTERNAL,
    attributes?: Attributes,
    parent = this.active(),
  ): KernelSpan {
    const sc = trace.getSpanContext(parent);
    return new KernelSpan(this.ring, name, kind, sc && isValid(sc) ? sc : undefined, this.ids, attributes);
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
    return sc ? trace.setSpanContext(KERNEL_ROOT, { ...sc, isRemote: true }) : undefined;
  }

  /** A remote parent from a trace id and span id in W3C form (lowercase hex, 32 and 16 digits). */
  parentFromIds(traceId: string, spanId: string): Context | undefined {
    const t = traceId.toLowerCase();
    const s = spanId.toLowerCase();
    if (!W3C_TRACE_ID.test(t) || !W3C_SPAN_ID.test(s) || /^0+$/.test(t) || /^0+$/.test(s)) return undefined;
    const sc: SpanContext = { traceId: t, spanId: s, traceFlags: 1, isRemote: true };
    return trace.setSpanContext(KERNEL_ROOT, sc);
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
    dispatcher.dispatch = (name, request, ctx) => {
      // A unary gRPC call's server span is its syscall span: one span per call, not a server span with a
      // dispatch span inside it of the same length (each span was ~8-10 us of a ContextRead under load).
      const server = trace.getSpan(this.active());
      if (server instanceof KernelSpan && server.claimSyscall(name, ctx.callerId)) {
        ctx.traceId ??= server.spanContext().traceId;
        return dispatch.call(dispatcher, name, request, ctx).catch((e: unknown) => {
          // The kernel's error (code and message) rather than the gRPC status the server span would get.
          failWith(server, e);
          throw e;
        });
      }
      return !this.samples()
        ? dispatch.call(dispatcher, name, request, ctx)
        : this.inSpan(dispatchSpanName(name), { kind: SpanKind.INTERNAL }, (span) => {
            if (span instanceof KernelSpan) span.forSyscall(name, ctx.callerId);
            ctx.traceId ??= span.spanContext().traceId;
            return dispatch.call(dispatcher, name, request, ctx);
          });
    };
    const call = kernel.call;
    // One name and one attribute object per (component, interface, function), shared by all its spans.
    const shapes = new Map<string, Map<string, Map<string, { name: string; attributes: Attributes }>>>();
    const shape = (component: string, iface: string, fn: string) => {
      const byFn = innerMap(innerMap(shapes, component), iface);
      let s = byFn.get(fn);
      if (!s) {
        s = {
          name: `component ${component} ${fn}`,
          attributes: { 'cam.component': component, 'cam.interface': iface, 'cam.function': fn },
        };
        byFn.set(fn, s);
      }
      return s;
    };
    kernel.call = (component, iface, fn, args, opts) => {
      if (!this.recording()) return call.call(kernel, component, iface, fn, args, opts);
      const s = shape(component, iface, fn);
      return this.inSpan(s.name, { kind: SpanKind.CLIENT, attributes: s.attributes }, () =>
        call.call(kernel, component, iface, fn, args, opts),
      );
    };
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
    const als = this.als;
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
            if (span instanceof KernelSpan) span.syscallSlot = true;
            h(call, (err, value, trailer, flags) => {
              if (err) {
                if (span instanceof KernelSpan && span.failed) span.end();
                else endWith(span, err);
              } else {
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
              // Stream events fire in grpc's context, not the handler's: emit them in the stream span's
              // context so the calls a session makes are its children. (Wrapping the listeners instead, as
              // this once did, broke `once`: its self-removal looks for the unwrapped function, so every
              // `once('drain')` of a session that backed up stayed registered for the stream's life.)
              const streamCtx = this.active();
              const emit = call.emit;
              call.emit = function (this: typeof call, ...args: Parameters<typeof emit>) {
                return als.run(streamCtx, () => emit.apply(this, args));
              } as typeof call.emit;
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
}

const dispatchSpanName = memoized((syscall) => `dispatch ${syscall}`, 256);

function isValid(sc: SpanContext): boolean {
  return sc.traceId !== INVALID_SPAN_CONTEXT.traceId && sc.spanId !== INVALID_SPAN_CONTEXT.spanId;
}

function failWith(span: Span, e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: msg.slice(0, 500) });
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' || typeof code === 'number') span.setAttribute('cam.error_code', code);
}

function endWith(span: Span, e: unknown): void {
  failWith(span, e);
  span.end();
}
