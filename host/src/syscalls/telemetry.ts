/**
 * The in-kernel store behind EmitTrace and EmitMetric: bounded rings of the latest spans and metric
 * samples plus per-series aggregates, readable back (tests, a metrics exporter). Bounds keep a chatty or
 * hostile agent from growing kernel memory: spans and samples are rings, and the number of distinct
 * metric series (name + tags) is capped — a new series beyond the cap is refused (RESOURCE_EXHAUSTED)
 * while existing series keep recording. The observability pipelines read it too: spans are passed on to
 * `spanListeners` (the OpenTelemetry ring), series are exported on every Prometheus scrape.
 */
import { KernelError } from '../errors.js';
import type { StringMap } from './codec.js';

export interface Span {
  traceId: string;
  spanId: string;
  operation: string;
  startMs: number;
  durationNs: number;
  tags: StringMap;
  callerId: string;
  receivedAtMs: number;
}

export interface MetricSample {
  name: string;
  value: number;
  unit: string;
  tags: StringMap;
  timestampMs: number;
  callerId: string;
}

export interface SeriesSummary {
  name: string;
  unit: string;
  tags: StringMap;
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
  lastAtMs: number;
}

export interface TelemetryLimits {
  maxSpans: number;
  maxSamples: number;
  maxSeries: number;
}

export const DEFAULT_TELEMETRY_LIMITS: TelemetryLimits = {
  maxSpans: 10_000,
  maxSamples: 10_000,
  maxSeries: 10_000,
};

class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;
  total = 0;

  constructor(private readonly capacity: number) {}

  push(v: T): void {
    this.total++;
    if (this.items.length < this.capacity) this.items.push(v);
    else {
      this.items[this.head] = v;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  values(): T[] {
    return [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }
}

export class TelemetryStore {
  private readonly spans: Ring<Span>;
  private readonly samples: Ring<MetricSample>;
  private readonly series = new Map<string, SeriesSummary>();
  /** Called with every recorded span (the tracing pipeline subscribes: see host/src/observability). */
  readonly spanListeners: Array<(s: Span) => void> = [];

  constructor(readonly limits: TelemetryLimits = DEFAULT_TELEMETRY_LIMITS) {
    this.spans = new Ring(limits.maxSpans);
    this.samples = new Ring(limits.maxSamples);
  }

  addSpan(span: Span): void {
    this.spans.push(span);
    for (const l of this.spanListeners) l(span);
  }

  addSample(s: MetricSample): void {
    const key = seriesKey(s.name, s.tags);
    let sum = this.series.get(key);
    if (!sum) {
      if (this.series.size >= this.limits.maxSeries) {
        throw new KernelError(
          'KERNEL_ERR_PAYLOAD_TOO_LARGE',
          `EmitMetric: the kernel already tracks ${this.limits.maxSeries} metric series; a new name/tag combination is refused`,
          undefined,
          'RESOURCE_EXHAUSTED',
        );
      }
      sum = {
        name: s.name,
        unit: s.unit,
        tags: s.tags,
        count: 0,
        sum: 0,
        min: s.value,
        max: s.value,
        last: s.value,
        lastAtMs: 0,
      };
      this.series.set(key, sum);
    }
    sum.count++;
    sum.sum += s.value;
    sum.min = Math.min(sum.min, s.value);
    sum.max = Math.max(sum.max, s.value);
    sum.last = s.value;
    sum.lastAtMs = s.timestampMs;
    this.samples.push(s);
  }

  /** Recorded spans, oldest first; filtered by trace id when given. */
  listSpans(traceId?: string): Span[] {
    const all = this.spans.values();
    return traceId ? all.filter((s) => s.traceId === traceId) : all;
  }

  listSamples(name?: string): MetricSample[] {
    const all = this.samples.values();
    return name ? all.filter((s) => s.name === name) : all;
  }

  listSeries(name?: string): SeriesSummary[] {
    const all = [...this.series.values()].map((s) => ({ ...s }));
    return name ? all.filter((s) => s.name === name) : all;
  }

  counts(): { spans: number; samples: number; series: number } {
    return { spans: this.spans.total, samples: this.samples.total, series: this.series.size };
  }
}

function seriesKey(name: string, tags: StringMap): string {
  return JSON.stringify([name, [...tags].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))]);
}
