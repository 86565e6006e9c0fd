/**
 * The kernel's observability, one object per kernel: Prometheus metrics, OpenTelemetry traces (kept in an
 * in-memory ring), structured JSON logs with trace ids, and the live rates the dashboard plots.
 *
 *   const obs = new Observability({ dispatcher, kernel });
 *   obs.attachTelemetry(store);   // EmitTrace spans -> the trace ring, EmitMetric series -> /metrics
 *
 * Served over HTTP by host/src/dashboard (`/metrics`, `/traces`, the dashboard page).
 */
import type { Dispatcher } from '../dispatcher/dispatcher.js';
import type { Kernel, KernelEvent } from '../kernel/kernel.js';
import type { TelemetryStore } from '../syscalls/telemetry.js';
import { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { LiveRates } from './rates.js';
import { Tracing } from './tracing.js';

export { type KernelLogLine, Logger, type LoggerOptions } from './log.js';
export { Metrics, SYSCALL_BUCKETS } from './metrics.js';
export { LiveRates, type RatePoint } from './rates.js';
export { type SpanRecord, SpanRing, Tracing } from './tracing.js';

export interface ObservabilityOptions {
  /** Sink for structured log lines (default stderr). */
  log?: (line: string) => void;
  /** Finished spans kept for /traces and the dashboard (default 5,000). */
  spanCapacity?: number;
  /** Share of new traces recorded, 0 to 1 (default 1). */
  traceSampleRatio?: number;
  /** Failed syscalls logged per second at most (default 50; the rest are counted in one line). */
  errorLogsPerSecond?: number;
}

export class Observability {
  readonly tracing: Tracing;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly rates: LiveRates;
  private telemetry: TelemetryStore | undefined;

  constructor(
    readonly src: { dispatcher: Dispatcher; kernel: Kernel },
    opts: ObservabilityOptions = {},
  ) {
    this.tracing = new Tracing({ capacity: opts.spanCapacity, sampleRatio: opts.traceSampleRatio });
    this.logger = new Logger({ sink: opts.log, ids: () => this.tracing.currentIds() });
    this.metrics = new Metrics(src);
    this.rates = new LiveRates(src.dispatcher);
    this.tracing.instrument(src.dispatcher, src.kernel);
    this.logFailedSyscalls(src.dispatcher, opts.errorLogsPerSecond ?? 50);
    src.kernel.events.push((e) => this.logKernelEvent(e));
  }

  /** One structured line per component lifecycle event (the kernel's event list, shared with the audit log). */
  private logKernelEvent(e: KernelEvent): void {
    switch (e.kind) {
      case 'load':
        this.logger.info(`loaded ${e.name}${e.version ? `@${e.version}` : ''}`, {
          component: e.name,
          version: e.version ?? '',
          digest: e.digest,
        });
        break;
      case 'unload':
        this.logger.info(`unloaded ${e.name}`, { component: e.name });
        break;
      case 'restart':
      case 'failed':
        this.logger.log(
          e.kind === 'failed' ? 'error' : 'warn',
          `${e.name} ${e.kind === 'failed' ? 'failed' : 'restarted'}`,
          {
            component: e.name,
            restarts: e.restarts,
            cause: e.cause ?? '',
          },
        );
        break;
      case 'swap': {
        const r = e.record;
        this.logger.log(r.result === 'swapped' ? 'info' : 'warn', `${r.kind} of ${r.name}: ${r.result}`, {
          component: r.name,
          kind: r.kind,
          result: r.result,
          from: r.from.version ?? r.from.digest,
          to: r.to.version ?? r.to.digest,
          reason: r.reason ?? '',
        });
        break;
      }
    }
  }

  /** Feed EmitTrace / EmitMetric into the trace ring and /metrics (once per store). */
  attachTelemetry(t: TelemetryStore): void {
    if (this.telemetry === t) return;
    this.telemetry = t;
    this.metrics.attachTelemetry(t);
    t.spanListeners.push((s) => this.tracing.recordAgentSpan(s));
  }

  start(): void {
    this.rates.start();
  }

  async stop(): Promise<void> {
    // Spans need no flushing: finished ones are already in the ring.
    this.rates.stop();
  }

  private logFailedSyscalls(dispatcher: Dispatcher, perSecond: number): void {
    let second = 0;
    let inSecond = 0;
    let dropped = 0;
    dispatcher.observers.push((e) => {
      if (!e.error) return;
      const now = Math.floor(Date.now() / 1000);
      if (now !== second) {
        if (dropped > 0)
          this.logger.warn(`${dropped} more failed syscall(s) not logged (over ${perSecond}/s)`, { dropped });
        second = now;
        inSecond = 0;
        dropped = 0;
      }
      if (++inSecond > perSecond) {
        dropped++;
        return;
      }
      this.logger.warn(`${e.name} failed: ${e.error.message}`, {
        syscall: e.name,
        code: e.error.code,
        caller: e.ctx.callerId,
        duration_us: Math.round(e.durationUs),
      });
    });
  }
}
