/**
 * `cam:kernel/clock@0.1.0`: wall-clock time in unix ms. The time source is injectable because the WIT lets
 * the host virtualize time (tests of deadline urgency, replay).
 */
import type { HostInterface } from '../kernel/kernel.js';
import { distModule } from '../runtime/local.js';

export const CLOCK_INTERFACE = 'cam:kernel/clock@0.1.0';

export interface ClockHostOptions {
  /** Unix ms. Default Date.now. */
  now?: () => number;
}

function nowMsFrom(now: () => number): bigint {
  const t = now();
  // u64 crosses as a bigint; a broken time source is a host bug and traps rather than lies.
  if (!Number.isFinite(t) || t < 0) throw new Error(`clock: time source returned ${t}`);
  return BigInt(Math.floor(t));
}

export function clockHostInterface(options: ClockHostOptions = {}): HostInterface {
  const now = options.now ?? Date.now;
  return {
    name: CLOCK_INTERFACE,
    functions: { nowMs: () => nowMsFrom(now) },
    // Synchronous and read-only, so a query replica on the kernel thread may ask it (runtime/replica.ts).
    inline: ['nowMs'],
    // The real wall clock reads the same in every thread, so workers read it themselves (runtime/local.ts);
    // an injected time source lives in the kernel thread and is asked there.
    local: options.now ? undefined : { module: distModule(new URL(import.meta.url)) },
  };
}

/** Worker side (runtime/local.ts): the wall clock. */
export function bindLocal(): Record<string, (...args: unknown[]) => unknown> {
  return { nowMs: () => nowMsFrom(Date.now) };
}

/** A clock tests can set and advance. */
export class ManualClock {
  constructor(private ms: number) {}
  readonly now = (): number => this.ms;
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
