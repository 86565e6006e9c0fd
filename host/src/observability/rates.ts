/**
 * Live syscall rate and latency for the dashboard: a dispatcher observer adds each call to the current
 * one-second window (count, errors, a bounded latency sample); `tick()` closes the window into a ring of
 * the last few minutes. Unlike the dispatcher's histograms (cumulative since boot) this shows now.
 */
import type { Dispatcher } from '../dispatcher/dispatcher.js';

export interface RatePoint {
  /** End of the window, ms since epoch. */
  t: number;
  /** Calls per second over the window. */
  rate: number;
  errors: number;
  /** Latency percentiles of the window's calls, microseconds (0 when there were none). */
  p50Us: number;
  p99Us: number;
  bySyscall: Record<string, number>;
}

const MAX_SAMPLES_PER_WINDOW = 2_048;

export class LiveRates {
  private readonly points: RatePoint[] = [];
  private windowStart = Date.now();
  private count = 0;
  private errors = 0;
  private samples: number[] = [];
  private by: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    dispatcher: Dispatcher,
    readonly capacity = 300,
  ) {
    dispatcher.observers.push((e) => {
      this.count++;
      if (e.error) this.errors++;
      if (this.samples.length < MAX_SAMPLES_PER_WINDOW) this.samples.push(e.durationUs);
      this.by[e.name] = (this.by[e.name] ?? 0) + 1;
    });
  }

  /** Close the current window every `ms` (the timer does not keep the process alive). */
  start(ms = 1_000): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  tick(now = Date.now()): RatePoint {
    const secs = Math.max(0.001, (now - this.windowStart) / 1000);
    const sorted = this.samples.sort((a, b) => a - b);
    const q = (p: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0;
    const point: RatePoint = {
      t: now,
      rate: this.count / secs,
      errors: this.errors,
      p50Us: q(0.5),
      p99Us: q(0.99),
      bySyscall: this.by,
    };
    this.points.push(point);
    if (this.points.length > this.capacity) this.points.shift();
    this.windowStart = now;
    this.count = 0;
    this.errors = 0;
    this.samples = [];
    this.by = {};
    return point;
  }

  /** Closed windows, oldest first (at most `limit`). */
  list(limit = this.capacity): RatePoint[] {
    return this.points.slice(-limit);
  }
}
