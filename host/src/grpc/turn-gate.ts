/**
 * At most N unary calls started per event-loop turn; the rest wait, in arrival order, for the next turns.
 *
 * Why: grpc-js hands the kernel every request that arrived in one socket read within a single macrotask,
 * and HTTP/2 writes what the handlers answered only when control returns to the event loop. A client with
 * 16 calls in flight therefore sent 16 requests, waited while the kernel ran all 16, then got 16 answers
 * in one write and sent 16 more while the kernel idled: client and kernel took turns instead of sharing
 * the two cores. Profiled at 16 in flight (perf, cpu-clock), throughput matched 1 / (kernel CPU + client
 * CPU per call) for the kernel and the bare echo alike. Starting a few calls per turn lets the first
 * answers leave while the kernel runs the next calls, and the client works on them at the same time.
 *
 * A call still runs at once when fewer than N have started in this turn, so a lone call waits for
 * nothing. N is `unaryCallsPerTurn` in the kernel configuration; 0 turns the pacing off.
 */
import { eventTurn } from '../event-turn.js';

/**
 * The default N. Measured with 2, 4, 8 and 16 (16 = no pacing at 16 in flight), ContextRead at 16 and 64
 * in flight against the bare echo, three to four interleaved rounds each, twice: the median throughput
 * ratio was 0.83-0.89 with 2, 0.88-1.01 with 4, 0.76-0.97 with 8 and 0.70-0.72 with 16.
 */
export const UNARY_CALLS_PER_TURN = 4;

/** The calls per turn a kernel with this configuration starts (what the gateway enforces, what status shows). */
export function unaryCallsPerTurn(config: { unaryCallsPerTurn?: number }): number {
  return config.unaryCallsPerTurn ?? UNARY_CALLS_PER_TURN;
}

export class TurnGate {
  /** The turn (event-turn.ts) `started` counts for. */
  private turn = -1;
  /** Calls started in that turn. */
  private started = 0;
  /** Whether a turn of the gate's own is scheduled to start waiting calls. */
  private armed = false;
  /** Waiting calls, oldest first, from `head` on (compacted when drained). */
  private waiting: Array<() => void> = [];
  private head = 0;
  /** Calls started per turn; Infinity (from 0) starts every call at once. */
  readonly perTurn: number;

  /** `perTurn`: calls per turn, a whole number; 0 means no limit. */
  constructor(perTurn: number) {
    if (!Number.isInteger(perTurn) || perTurn < 0) {
      throw new RangeError(`calls per turn must be a whole number, 0 or more, got ${perTurn}`);
    }
    this.perTurn = perTurn === 0 ? Number.POSITIVE_INFINITY : perTurn;
  }

  /** Calls waiting for a later turn. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** Run `start` in this turn if the quota allows, else in a later one. `start` must not throw. */
  run(start: () => void): void {
    if (this.perTurn === Number.POSITIVE_INFINITY) {
      start();
      return;
    }
    if (this.pending === 0 && this.take()) {
      start();
      return;
    }
    this.waiting.push(start);
    if (!this.armed) {
      this.armed = true;
      setImmediate(this.nextTurn);
    }
  }

  /** Count one more start in the current turn, if its quota allows. */
  private take(): boolean {
    const t = eventTurn();
    if (t !== this.turn) {
      this.turn = t;
      this.started = 0;
    }
    if (this.started >= this.perTurn) return false;
    this.started++;
    return true;
  }

  /**
   * In the check phase, after Node has run its native immediates (HTTP/2 writes): the oldest waiting calls,
   * as many as the new turn's quota allows. The turn has moved on by then: `take` read eventTurn() before
   * this was scheduled, so the clock's own immediate was queued first and has run.
   */
  private readonly nextTurn = (): void => {
    this.armed = false;
    while (this.pending > 0 && this.take()) {
      const start = this.waiting[this.head]!;
      this.waiting[this.head++] = undefined as unknown as () => void;
      start();
    }
    if (this.pending === 0) {
      this.waiting = [];
      this.head = 0;
    } else {
      this.armed = true;
      setImmediate(this.nextTurn);
    }
  };
}
