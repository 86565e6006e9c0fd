/**
 * Per-agent token buckets. Each identity has `burst` tokens refilled at `perSecond`; a call takes one.
 * Buckets live in memory (a restart forgives everyone) and idle full buckets are dropped so the map
 * stays bounded by the number of recently active agents.
 */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 20_000, burst: 40_000 };
const SWEEP_ABOVE = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new RangeError('rate limit needs perSecond > 0 and burst >= 1');
    }
  }

  /** Take one token for `id`: 0 when granted, else the milliseconds until a token is available. */
  take(id: string): number {
    const t = this.now();
    let b = this.buckets.get(id);
    if (!b) {
      if (this.buckets.size >= SWEEP_ABOVE) this.sweep(t);
      b = { tokens: this.limit.burst, at: t };
      this.buckets.set(id, b);
    } else {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((t - b.at) / 1000) * this.limit.perSecond);
      b.at = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.limit.perSecond) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    for (const [id, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(id);
    }
  }
}
