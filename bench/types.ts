/** One measured figure. `median`/`p99` are in `unit`; a baseline measured in the same run makes it a ratio. */
export interface BenchResult {
  suite: string;
  name: string;
  unit: string;
  median: number;
  p99?: number;
  baseline?: { name: string; median: number };
  /** An acceptance target, stated as text (e.g. "<= 1 us"), and whether this run met it. */
  target?: string;
  met?: boolean;
  notes?: string;
}

/** Sorted-sample statistics. */
export function stats(samples: number[]): { median: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { median: q(0.5), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
