/**
 * The call channel between the kernel (main thread) and one component instance (its worker thread):
 * a SharedArrayBuffer with two sequence counters and one message slot.
 *
 * Why not postMessage: a worker message round trip costs ~70 us here; the shared-memory path costs
 * ~1-2 us, and a worker is what lets the kernel stop a runaway guest (worker.terminate()).
 * Why the main thread spins: Atomics.waitAsync never resolves on Node 20 while the event loop is idle,
 * and Atomics.wait would block every other component. So the kernel spins for a short budget (most
 * calls finish inside it), then sleeps until the worker posts a one-byte wake-up message.
 *
 * The protocol is strictly alternating, one message in flight:
 *   main  -> CALL | CALLS | REINIT | HOST_OK | HOST_ERR, then bumps REQ_SEQ
 *   worker-> OK | ERR | TRAP | EXIT | RESULTS | HOSTCALL | READY, then bumps RESP_SEQ (and wakes main if it
 *            sleeps)
 * A CALLS batch carries the calls that queued up for a busy component: one round trip (and, under load,
 * one wake-up of each thread) for all of them instead of one per call.
 * Values are encoded with v8.serialize (structured clone): it carries every JS shape jco produces for
 * WIT values (bigint for 64-bit ints, Uint8Array for list<u8>, nested objects for records/variants).
 */
import { deserialize, serialize } from 'node:v8';

export const CTL_REQ_SEQ = 0;
export const CTL_RESP_SEQ = 1;
export const CTL_MAIN_SLEEPING = 2;
/**
 * Outcomes of a batch (Msg.CALLS) published so far: the worker appends each call's outcome to the results
 * buffer before it starts the next call, then bumps this count. It is therefore also the index of the call
 * running now, and what the kernel can still deliver if it has to stop the worker mid-batch.
 */
export const CTL_BATCH_DONE = 3;
/** When the worker last published (Date.now() & TIME_MASK): how long an answer sat before the kernel took it. */
export const CTL_RESP_AT = 4;
/** The RESP_SEQ of the last answer the worker posted a wake-up for (it found the kernel's flag up). */
export const CTL_WOKEN_SEQ = 5;
export const TIME_MASK = 0x3fff_ffff;
const HEADER_BYTES = 64;
const MSG_KIND = HEADER_BYTES / 4;
const MSG_LEN = MSG_KIND + 1;
const PAYLOAD_OFFSET = HEADER_BYTES + 8;

export const Msg = {
  CALL: 1,
  OK: 2,
  /** The guest returned a typed error (a WIT `result` err). The instance stays healthy. */
  ERR: 3,
  /** The guest trapped or the bindings refused a value. The instance is poisoned. */
  TRAP: 4,
  /** The guest called wasi:cli/exit. The instance is poisoned. */
  EXIT: 5,
  HOSTCALL: 6,
  HOST_OK: 7,
  HOST_ERR: 8,
  /** Discard the instance and instantiate afresh (after a trap or exit). */
  REINIT: 9,
  READY: 10,
  /** Several calls for one round trip; the worker runs them in order (see serveBatch in worker.ts). */
  CALLS: 11,
  /**
   * A CALLS batch is over. The outcomes so far are in the results buffer (CTL_BATCH_DONE of them); the value
   * carries what did not go there: `{ fault?: outcome, overflow?: outcome }` — a trap or exit that ended the
   * batch, or an outcome too large for the space left. Calls after either did not run.
   */
  RESULTS: 12,
  /** In RESULTS: the call's deadline had passed when its turn came, so it did not run. */
  LATE: 13,
} as const;
export type MsgKind = (typeof Msg)[keyof typeof Msg];

/** Default per-call payload limit: 16 MiB. The buffer is virtual memory; pages are touched on use. */
export const DEFAULT_CHANNEL_BYTES = 16 * 1024 * 1024;

export class PayloadTooLarge extends Error {
  override name = 'PayloadTooLarge';
}

export class Channel {
  readonly ctl: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly results: Uint8Array;
  private resultsEnd = 0;

  constructor(
    readonly sab: SharedArrayBuffer,
    /** Where a batch's outcomes accumulate, one length-prefixed record per call (see CTL_BATCH_DONE). */
    readonly resultsSab: SharedArrayBuffer,
  ) {
    this.ctl = new Int32Array(sab, 0, HEADER_BYTES / 4 + 2);
    this.bytes = new Uint8Array(sab);
    this.results = new Uint8Array(resultsSab);
  }

  static create(size = DEFAULT_CHANNEL_BYTES): Channel {
    return new Channel(new SharedArrayBuffer(size), new SharedArrayBuffer(size - PAYLOAD_OFFSET));
  }

  get capacity(): number {
    return this.sab.byteLength - PAYLOAD_OFFSET;
  }

  write(kind: MsgKind, value: unknown): void {
    const data = value === undefined ? EMPTY : serialize(value);
    if (data.length > this.capacity) {
      throw new PayloadTooLarge(
        `payload of ${data.length} bytes exceeds the ${this.capacity}-byte call limit`,
      );
    }
    this.bytes.set(data, PAYLOAD_OFFSET);
    this.ctl[MSG_KIND] = kind;
    this.ctl[MSG_LEN] = value === undefined ? -1 : data.length;
  }

  read(): { kind: MsgKind; value: unknown } {
    const kind = this.ctl[MSG_KIND] as MsgKind;
    const len = this.ctl[MSG_LEN]!;
    if (len < 0) return { kind, value: undefined };
    // deserialize needs a non-shared buffer: copy the slot out (small next to the call itself).
    const copy = Buffer.allocUnsafe(len);
    copy.set(this.bytes.subarray(PAYLOAD_OFFSET, PAYLOAD_OFFSET + len));
    return { kind, value: deserialize(copy) };
  }

  /** Worker: start a batch's outcomes. */
  resetResults(): void {
    this.resultsEnd = 0;
    Atomics.store(this.ctl, CTL_BATCH_DONE, 0);
  }

  /**
   * Worker: append one outcome and publish it. False when it does not fit behind the earlier ones (the
   * batch then ends and this outcome travels in the final message instead).
   */
  appendResult(outcome: { kind: MsgKind; value: unknown }): boolean {
    const data = serialize(outcome);
    if (this.resultsEnd + 4 + data.length > this.results.length) return false;
    new DataView(this.resultsSab).setUint32(this.resultsEnd, data.length, true);
    this.results.set(data, this.resultsEnd + 4);
    this.resultsEnd += 4 + data.length;
    Atomics.add(this.ctl, CTL_BATCH_DONE, 1);
    return true;
  }

  /** Kernel: the first `count` published outcomes of the current batch. */
  readResults(count: number): Array<{ kind: MsgKind; value: unknown }> {
    const view = new DataView(this.resultsSab);
    const out: Array<{ kind: MsgKind; value: unknown }> = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      const len = view.getUint32(at, true);
      const copy = Buffer.allocUnsafe(len);
      copy.set(this.results.subarray(at + 4, at + 4 + len));
      out.push(deserialize(copy) as { kind: MsgKind; value: unknown });
      at += 4 + len;
    }
    return out;
  }

  /** Publish a message to the other side by bumping a sequence counter. */
  bump(index: number): number {
    const seq = Atomics.add(this.ctl, index, 1) + 1;
    Atomics.notify(this.ctl, index);
    return seq;
  }

  load(index: number): number {
    return Atomics.load(this.ctl, index);
  }
}

const EMPTY = Buffer.alloc(0);
