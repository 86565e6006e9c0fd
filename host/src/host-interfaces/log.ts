/**
 * `cam:kernel/log@0.1.0`: one structured JSON line per guest log call, tagged with the calling component.
 *
 * The WIT promises that logging never fails, so nothing here throws at the guest: oversized messages are
 * cut (at a UTF-8 character boundary, with `truncated: true`), fields beyond the limit are dropped (and
 * counted), and a component that logs faster than its token bucket loses lines; the next line it gets
 * through is preceded by a warning that says how many were dropped. A sink that throws loses that line
 * only. Values that do not match the WIT type (possible only from host code) are logged as what they are
 * rather than refused.
 */
import type { HostInterface } from '../kernel/kernel.js';

export const LOG_INTERFACE = 'cam:kernel/log@0.1.0';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogHostOptions {
  /** Receives each line (JSON, no trailing newline). Default: process.stderr. */
  sink?: (line: string) => void;
  /** Lines below this level are discarded. Default `debug` (the WIT says trace is off by default). */
  minLevel?: LogLevel;
  /** Default 8 KiB (host.wit). */
  maxMessageBytes?: number;
  /** Default 32 (host.wit). */
  maxFields?: number;
  /** Each field key and value is cut to this many bytes. Default 1 KiB. */
  maxFieldBytes?: number;
  /** Sustained lines per second per component. Default 1,000. */
  ratePerSecond?: number;
  /** Lines a component may log in a burst above the rate. Default 2,000. */
  burst?: number;
  /** Time source in ms (tests). Default Date.now. */
  now?: () => number;
}

export interface LogLine {
  time: string;
  level: LogLevel;
  component: string;
  msg: string;
  fields: Record<string, string>;
  truncated?: true;
  droppedFields?: number;
}

interface Bucket {
  tokens: number;
  last: number;
  dropped: number;
}

/** Cuts `s` to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): { text: string; cut: boolean } {
  if (s.length * 3 <= max) return { text: s, cut: false };
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length <= max) return { text: s, cut: false };
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return { text: bytes.subarray(0, end).toString('utf8'), cut: true };
}

export function logHostInterface(options: LogHostOptions = {}): HostInterface {
  const sink = options.sink ?? ((line: string) => process.stderr.write(`${line}\n`));
  const minRank = LOG_LEVELS.indexOf(options.minLevel ?? 'debug');
  const maxMessage = options.maxMessageBytes ?? 8 * 1024;
  const maxFields = options.maxFields ?? 32;
  const maxFieldBytes = options.maxFieldBytes ?? 1024;
  const rate = options.ratePerSecond ?? 1_000;
  const burst = options.burst ?? 2_000;
  const now = options.now ?? Date.now;
  const buckets = new Map<string, Bucket>();

  function emit(line: LogLine): void {
    try {
      sink(JSON.stringify(line));
    } catch {
      // A broken sink must not turn into a guest trap; the line is lost, as the WIT allows.
    }
  }

  function admit(component: string, t: number): boolean {
    let b = buckets.get(component);
    if (!b) {
      b = { tokens: burst, last: t, dropped: 0 };
      buckets.set(component, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((t - b.last) / 1000) * rate);
    b.last = t;
    if (b.tokens < 1) {
      b.dropped++;
      return false;
    }
    b.tokens -= 1;
    if (b.dropped > 0) {
      emit({
        time: new Date(t).toISOString(),
        level: 'warn',
        component,
        msg: `dropped ${b.dropped} log line(s) over the rate limit of ${rate}/s`,
        fields: {},
      });
      b.dropped = 0;
    }
    return true;
  }

  return {
    name: LOG_INTERFACE,
    // A line goes to the sink synchronously; a query replica on the kernel thread may log (runtime/replica.ts).
    inline: ['log'],
    functions: {
      log: (component, level, message, fields) => {
        const lvl: LogLevel = (LOG_LEVELS as readonly unknown[]).includes(level)
          ? (level as LogLevel)
          : 'info';
        if (LOG_LEVELS.indexOf(lvl) < minRank) return;
        const t = now();
        if (!admit(component, t)) return;
        const msg = truncateUtf8(typeof message === 'string' ? message : String(message), maxMessage);
        // No prototype: a guest field named `__proto__` must stay a field.
        const kept = Object.create(null) as Record<string, string>;
        const out: LogLine = {
          time: new Date(t).toISOString(),
          level: lvl,
          component,
          msg: msg.text,
          fields: kept,
        };
        let cut = msg.cut;
        let count = 0;
        let dropped = 0;
        if (Array.isArray(fields)) {
          for (const pair of fields) {
            if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
              dropped++;
              continue;
            }
            const k = truncateUtf8(pair[0], maxFieldBytes);
            const v = truncateUtf8(pair[1], maxFieldBytes);
            cut ||= k.cut || v.cut;
            // A repeated key keeps its last value (types.wit), and does not count twice.
            if (!Object.hasOwn(kept, k.text)) {
              if (count >= maxFields) {
                dropped++;
                continue;
              }
              count++;
            }
            kept[k.text] = v.text;
          }
        }
        if (cut) out.truncated = true;
        if (dropped > 0) out.droppedFields = dropped;
        emit(out);
      },
    },
  };
}
