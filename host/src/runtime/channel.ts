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
 *   main  -> CALL | REINIT | HOST_OK | HOST_ERR, then bumps REQ_SEQ
 *   worker-> OK | ERR | TRAP | EXIT | HOSTCALL | READY, then bumps RESP_SEQ (and wakes main if it sleeps)
 * Values are encoded with v8.serialize (structured clone): it carries every JS shape jco produces for
 * WIT values (bigint for 64-bit ints, Uint8Array for list<u8>, nested objects for records/variants).
 */
import { deserialize, serialize } from 'node:v8';

export const CTL_REQ_SEQ = 0;
export const CTL_RESP_SEQ = 1;
export const CTL_MAIN_SLEEPING = 2;
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

  constructor(readonly sab: SharedArrayBuffer) {
    this.ctl = new Int32Array(sab, 0, HEADER_BYTES / 4 + 2);
    this.bytes = new Uint8Array(sab);
  }

  static create(size = DEFAULT_CHANNEL_BYTES): Channel {
    return new Channel(new SharedArrayBuffer(size));
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
