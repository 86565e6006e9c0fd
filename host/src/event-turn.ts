/**
 * Which turn of the event loop this is: a number that moves on once per turn, in the check phase (one
 * setImmediate per turn, and only in turns where someone asked). What the kernel counts per turn uses this
 * one clock: the cap on synchronously answered calls before one yields (runtime/instance.ts, mustYield) and
 * the unary calls started per turn (grpc/turn-gate.ts).
 */
let turn = 0;
let ticking = false;

function advance(): void {
  turn++;
  ticking = false;
}

export function eventTurn(): number {
  if (!ticking) {
    ticking = true;
    setImmediate(advance);
  }
  return turn;
}
