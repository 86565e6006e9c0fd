/**
 * Prometheus metrics (prom-client), one registry per kernel:
 *
 * - syscalls: a latency histogram per syscall and outcome, fed by a dispatcher observer (the only work on
 *   the call path: two map lookups and three increments; see SyscallDurations);
 * - components: restarts, calls, failed calls, health, instances — read from the supervisors at scrape time;
 * - swaps and rollbacks: counted from the kernel's swap history at scrape time;
 * - memory: the process's (prom-client default metrics) and each component's memory cap;
 * - agent metrics from EmitMetric: every series the telemetry store keeps, exported at scrape time as
 *   `cam_os_agent_metric_*{metric="<name>", ...tags}`.
 */
import client from 'prom-client';
import type { Dispatcher } from '../dispatcher/dispatcher.js';
import type { Kernel } from '../kernel/kernel.js';
import { innerMap } from '../maps.js';
import type { TelemetryStore } from '../syscalls/telemetry.js';

/** Seconds; from 10 us (an in-kernel syscall) to 10 s (the default deadline). */
export const SYSCALL_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
  0.5, 1, 2.5, 5, 10,
];

const HEALTH_VALUES = ['starting', 'healthy', 'degraded', 'failed', 'stopped'] as const;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Sample = { labels: Record<string, string>; value: number };

/** A metric whose samples are computed when scraped (prom-client's registry only needs get()). */
function scraped(
  registry: client.Registry,
  name: string,
  help: string,
  type: 'counter' | 'gauge',
  values: () => Sample[],
): void {
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset() {},
  } as unknown as client.Metric);
}

interface DurationSeries {
  labels: { syscall: string; outcome: string };
  /** Per bucket (not cumulative); the last slot holds values above the largest bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * `cam_os_syscall_duration_seconds`: the same series and exposition as a prom-client Histogram labelled by
 * syscall and outcome, kept in typed arrays. prom-client's observe, even on a cached child, builds a label
 * object, validates and sorts the labels into a hash string and indexes its buckets by float-to-string
 * property keys: ~2 us and several objects on every syscall under load. Here an observe is two map lookups
 * and three increments; the cumulative buckets are built when scraped.
 */
export class SyscallDurations {
  static readonly NAME = 'cam_os_syscall_duration_seconds';
  static readonly HELP =
    'Syscall latency through the dispatcher (validation, deadline, handler, component), by outcome (ok or the error code)';
  private readonly series = new Map<string, Map<string, DurationSeries>>();

  observe(syscall: string, outcome: string, seconds: number): void {
    const byOutcome = innerMap(this.series, syscall);
    let s = byOutcome.get(outcome);
    if (!s) {
      s = {
        labels: { syscall, outcome },
        counts: new Float64Array(SYSCALL_BUCKETS.length + 1),
        sum: 0,
        count: 0,
      };
      byOutcome.set(outcome, s);
    }
    let i = 0;
    while (i < SYSCALL_BUCKETS.length && seconds > SYSCALL_BUCKETS[i]!) i++;
    s.counts[i]!++;
    s.sum += seconds;
    s.count++;
  }

  register(registry: client.Registry): void {
    const { NAME: name, HELP: help } = SyscallDurations;
    registry.registerMetric({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'histogram', aggregator: 'sum', values: this.samples() }),
      reset: () => this.series.clear(),
    } as unknown as client.Metric);
  }

  /** prom-client's histogram samples: cumulative `le` buckets, +Inf, sum and count per series. */
  private samples(): Array<{
    labels: Record<string, string | number>;
    sharedLabels: Record<string, string>;
    value: number;
    metricName: string;
  }> {
    const { NAME: name } = SyscallDurations;
    const out: ReturnType<SyscallDurations['samples']> = [];
    for (const byOutcome of this.series.values()) {
      for (const s of byOutcome.values()) {
        let acc = 0;
        SYSCALL_BUCKETS.forEach((le, i) => {
          acc += s.counts[i]!;
          out.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: `${name}_bucket` });
        });
        out.push({
          labels: { le: '+Inf' },
          sharedLabels: s.labels,
          value: s.count,
          metricName: `${name}_bucket`,
        });
        out.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${name}_sum` });
        out.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${name}_count` });
      }
    }
    return out;
  }
}

export interface MetricsSources {
  dispatcher: Dispatcher;
  kernel: Kernel;
  telemetry?: TelemetryStore;
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly durations = new SyscallDurations();
  private telemetry: TelemetryStore | undefined;

  constructor(src: MetricsSources) {
    const { registry } = this;
    client.collectDefaultMetrics({ register: registry, prefix: 'cam_os_' });
    this.telemetry = src.telemetry;
    this.durations.register(registry);
    src.dispatcher.observers.push((e) => {
      this.durations.observe(e.name, e.error ? e.error.code : 'ok', e.durationUs / 1e6);
    });

    const k = src.kernel;
    const perComponent = (pick: (c: ReturnType<Kernel['list']>[number]) => number) => () =>
      k.list().map((c) => ({ labels: { component: c.name, version: c.version ?? '' }, value: pick(c) }));
    scraped(
      registry,
      'cam_os_component_restarts_total',
      'Instance restarts by the supervisor since the component was loaded',
      'counter',
      perComponent((c) => c.status.restarts),
    );
    scraped(
      registry,
      'cam_os_component_calls_total',
      'Calls into the component',
      'counter',
      perComponent((c) => c.status.calls),
    );
    scraped(
      registry,
      'cam_os_component_failed_calls_total',
      'Calls into the component that failed',
      'counter',
      perComponent((c) => c.status.failedCalls),
    );
    scraped(
      registry,
      'cam_os_component_instances',
      'Instances (worker threads) of the component',
      'gauge',
      perComponent((c) => c.status.instances.total),
    );
    scraped(
      registry,
      'cam_os_component_queued_calls',
      'Calls waiting for a free instance',
      'gauge',
      perComponent((c) => c.status.queued),
    );
    scraped(
      registry,
      'cam_os_component_memory_limit_bytes',
      'Cap on each linear memory of the component',
      'gauge',
      perComponent((c) => c.memoryMaxPages * 65536),
    );
    scraped(
      registry,
      'cam_os_component_health',
      'Health of each component (1 for its current state)',
      'gauge',
      () =>
        k.list().flatMap((c) =>
          HEALTH_VALUES.map((h) => ({
            labels: { component: c.name, state: h },
            value: c.status.health === h ? 1 : 0,
          })),
        ),
    );
    scraped(
      registry,
      'cam_os_component_swaps_total',
      'Hot-swaps and rollbacks, by kind and result',
      'counter',
      () => {
        const counts = new Map<string, Sample>();
        for (const r of k.swapHistory()) {
          const key = `${r.name}\0${r.kind}\0${r.result}`;
          const s = counts.get(key) ?? {
            labels: { component: r.name, kind: r.kind, result: r.result },
            value: 0,
          };
          s.value++;
          counts.set(key, s);
        }
        return [...counts.values()];
      },
    );
    scraped(registry, 'cam_os_components_loaded', 'Components loaded in the kernel', 'gauge', () => [
      { labels: {}, value: k.list().length },
    ]);

    const series = () => this.telemetry?.listSeries() ?? [];
    const agentLabels = (s: ReturnType<TelemetryStore['listSeries']>[number]) => {
      const labels: Record<string, string> = { metric: s.name, unit: s.unit };
      for (const [key, v] of s.tags) {
        const l = `tag_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`;
        if (LABEL_NAME.test(l) && !(l in labels)) labels[l] = v;
      }
      return labels;
    };
    scraped(registry, 'cam_os_agent_metric', 'Last value of each EmitMetric series', 'gauge', () =>
      series().map((s) => ({ labels: agentLabels(s), value: s.last })),
    );
    scraped(
      registry,
      'cam_os_agent_metric_sum',
      'Sum of the values of each EmitMetric series',
      'counter',
      () => series().map((s) => ({ labels: agentLabels(s), value: s.sum })),
    );
    scraped(
      registry,
      'cam_os_agent_metric_samples_total',
      'Samples recorded for each EmitMetric series',
      'counter',
      () => series().map((s) => ({ labels: agentLabels(s), value: s.count })),
    );
    scraped(registry, 'cam_os_agent_spans_total', 'Spans reported through EmitTrace', 'counter', () => [
      { labels: {}, value: this.telemetry?.counts().spans ?? 0 },
    ]);
  }

  /** Attach the store behind EmitTrace/EmitMetric (when the gateway is created after the metrics). */
  attachTelemetry(t: TelemetryStore): void {
    this.telemetry = t;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
