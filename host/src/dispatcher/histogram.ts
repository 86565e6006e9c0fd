/**
 * A fixed-memory latency histogram: log-linear buckets (16 per power of two) from 1 us to ~1,000 s,
 * so quantiles are within ~4.5% whatever the call volume. Used for per-syscall p50/p99 in status.
 */
const SUB = 16;
const MAX_EXP = 30;

export class LatencyHistogram {
  private readonly counts = new Float64Array((MAX_EXP + 1) * SUB);
  private total = 0;

  record(us: number): void {
    this.counts[index(us)]!++;
    this.total++;
  }

  get count(): number {
    return this.total;
  }

  /** Upper bound of the bucket holding quantile q (0..1), in microseconds; 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return upper(i);
    }
    return upper(this.counts.length - 1);
  }
}

function index(us: number): number {
  if (!(us >= 1)) return 0;
  const exp = Math.min(MAX_EXP, Math.floor(Math.log2(us)));
  const base = 2 ** exp;
  const sub = Math.min(SUB - 1, Math.floor(((us - base) / base) * SUB));
  return exp * SUB + sub;
}

function upper(i: number): number {
  const exp = Math.floor(i / SUB);
  const sub = i % SUB;
  const base = 2 ** exp;
  return Math.round((base + ((sub + 1) * base) / SUB) * 100) / 100;
}
