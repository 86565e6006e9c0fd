/**
 * Structured logs: one JSON object per line, in the same shape and to the same sink as the guest log lines
 * of `cam:kernel/log` (host-interfaces/log.ts) — `time`, `level`, `component` ('kernel' for the kernel's
 * own lines), `msg`, `fields` — plus `trace_id` / `span_id` of the span active when the line was written,
 * so a log line leads to its trace in `/traces` and the dashboard.
 */
import { LOG_LEVELS, type LogLevel } from '../host-interfaces/log.js';

export interface TraceIds {
  traceId: string;
  spanId: string;
}

export interface KernelLogLine {
  time: string;
  level: LogLevel;
  component: string;
  msg: string;
  fields: Record<string, string | number | boolean>;
  trace_id?: string;
  span_id?: string;
}

export interface LoggerOptions {
  /** Receives each line (JSON, no trailing newline). Default: process.stderr. */
  sink?: (line: string) => void;
  /** Lines below this level are discarded. Default `info`. */
  minLevel?: LogLevel;
  /** The active span's ids, if any. */
  ids?: () => TraceIds | undefined;
}

export class Logger {
  readonly sink: (line: string) => void;
  private readonly minRank: number;
  private readonly ids: () => TraceIds | undefined;

  constructor(opts: LoggerOptions = {}) {
    this.sink = opts.sink ?? ((line: string) => process.stderr.write(`${line}\n`));
    this.minRank = LOG_LEVELS.indexOf(opts.minLevel ?? 'info');
    this.ids = opts.ids ?? (() => undefined);
  }

  log(level: LogLevel, msg: string, fields: KernelLogLine['fields'] = {}): void {
    if (LOG_LEVELS.indexOf(level) < this.minRank) return;
    const line: KernelLogLine = { time: new Date().toISOString(), level, component: 'kernel', msg, fields };
    const ids = this.ids();
    if (ids) {
      line.trace_id = ids.traceId;
      line.span_id = ids.spanId;
    }
    try {
      this.sink(JSON.stringify(line));
    } catch {
      // A broken sink loses the line; logging never fails the operation that logs.
    }
  }

  info(msg: string, fields?: KernelLogLine['fields']): void {
    this.log('info', msg, fields);
  }

  warn(msg: string, fields?: KernelLogLine['fields']): void {
    this.log('warn', msg, fields);
  }

  error(msg: string, fields?: KernelLogLine['fields']): void {
    this.log('error', msg, fields);
  }

  /**
   * A sink for the guest log host interface that adds the active trace ids to each guest line (when a
   * span is active), then writes it where the kernel's lines go.
   */
  guestSink(): (line: string) => void {
    return (line: string) => {
      const ids = this.ids();
      if (ids && line.endsWith('}')) {
        this.sink(`${line.slice(0, -1)},"trace_id":"${ids.traceId}","span_id":"${ids.spanId}"}`);
      } else this.sink(line);
    };
  }
}
