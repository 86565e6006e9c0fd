/**
 * The interrupt watchdog (runtime/interrupt.ts): a worker thread that stops inline guest calls past their
 * deadline by naming them in the shared interrupt word; the guest's instrumented checks then trap.
 *
 * It ticks every `tickMs` while inline calls are being made and sleeps (Atomics.wait without timeout) after
 * `idleMs` without one; the kernel wakes it when it starts a call and sees it asleep.
 */
import { workerData } from 'node:worker_threads';
import { INTERRUPT_SLOTS } from './interrupt.js';

const { SEQ, INTERRUPT, SLEEPING, WAKE, LATEST, DEADLINE_F64 } = INTERRUPT_SLOTS;
const { memory, tickMs, idleMs } = workerData as {
  memory: WebAssembly.Memory;
  tickMs: number;
  idleMs: number;
};
const i32 = new Int32Array(memory.buffer);
const f64 = new Float64Array(memory.buffer);

let latest = 0;
let lastActive = Date.now();
for (;;) {
  const now = Date.now();
  const seq = Atomics.load(i32, SEQ);
  if (seq !== 0) {
    lastActive = now;
    const deadline = f64[DEADLINE_F64]!;
    // The deadline read belongs to `seq` only if `seq` is still running after it was read (the kernel
    // writes a call's deadline before its sequence number, and clears the number when the call ends).
    if (now > deadline && Atomics.load(i32, SEQ) === seq) Atomics.store(i32, INTERRUPT, seq);
  } else if (Atomics.load(i32, LATEST) !== latest) {
    lastActive = now;
  }
  latest = Atomics.load(i32, LATEST);
  if (now - lastActive > idleMs) {
    Atomics.store(i32, SLEEPING, 1);
    const w = Atomics.load(i32, WAKE);
    // Dekker with the kernel's "store SEQ, then load SLEEPING": one of the two sees the other.
    if (Atomics.load(i32, SEQ) === 0) Atomics.wait(i32, WAKE, w);
    Atomics.store(i32, SLEEPING, 0);
    lastActive = Date.now();
    continue;
  }
  Atomics.wait(i32, WAKE, Atomics.load(i32, WAKE), tickMs);
}
