/**
 * The WASI a guest may see: built per instance, and only for the interfaces its manifest grants.
 *
 * preview2-shim's defaults give a guest all of process.env, the host's argv and cwd, network access,
 * host stdio and a `wasi:cli/exit` that calls process.exit (../shared/notes/wasm-toolchain.md). The kernel
 * does not use them: it offers the small set below, each implemented here so that its reach is obvious,
 * and nothing else. A component importing any other WASI interface (filesystem, sockets, http, stdio) is
 * refused at load time with an error naming the interface.
 */
import { randomBytes } from 'node:crypto';

/** Thrown inside the worker when the guest calls wasi:cli/exit; it poisons the instance only. */
export class GuestExit extends Error {
  override name = 'GuestExit';
  constructor(readonly code: number) {
    super(`guest called wasi:cli/exit with code ${code}`);
  }
}

export interface WasiContext {
  /** Environment variables granted to this component (never the host's environment). */
  env: Record<string, string>;
}

/** One sleep primitive for pollables: Atomics.wait is a real, CPU-free sleep inside a worker. */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepNs(ns: bigint): void {
  if (ns <= 0n) return;
  Atomics.wait(sleepCell, 0, 0, Number(ns) / 1e6);
}

function monotonicNow(): bigint {
  return process.hrtime.bigint();
}

class Pollable {
  constructor(private readonly deadline: bigint) {}
  ready(): boolean {
    return monotonicNow() >= this.deadline;
  }
  block(): void {
    sleepNs(this.deadline - monotonicNow());
  }
  get at(): bigint {
    return this.deadline;
  }
}

type Provider = (ctx: WasiContext) => Record<string, unknown>;

/** Providers by unversioned interface name (jco keys imports without the version). */
const PROVIDERS: Record<string, Provider> = {
  'wasi:cli/exit': () => ({
    exit(status: { tag: 'ok' | 'err' }) {
      throw new GuestExit(status?.tag === 'ok' ? 0 : 1);
    },
    exitWithCode(code: number) {
      throw new GuestExit(code);
    },
  }),
  'wasi:cli/environment': (ctx) => ({
    getEnvironment: () => Object.entries(ctx.env),
    getArguments: () => [],
    initialCwd: () => undefined,
  }),
  'wasi:random/random': () => ({
    getRandomBytes: (len: bigint) => new Uint8Array(randomBytes(checkLen(len))),
    getRandomU64: () => randomBytes(8).readBigUInt64LE(),
  }),
  'wasi:random/insecure': () => ({
    getInsecureRandomBytes: (len: bigint) => new Uint8Array(randomBytes(checkLen(len))),
    getInsecureRandomU64: () => randomBytes(8).readBigUInt64LE(),
  }),
  'wasi:random/insecure-seed': () => {
    const seed: [bigint, bigint] = [randomBytes(8).readBigUInt64LE(), randomBytes(8).readBigUInt64LE()];
    return { insecureSeed: () => seed };
  },
  'wasi:clocks/wall-clock': () => ({
    now: () => {
      const ms = Date.now();
      return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1e6 };
    },
    resolution: () => ({ seconds: 0n, nanoseconds: 1e6 }),
  }),
  'wasi:clocks/monotonic-clock': () => ({
    now: monotonicNow,
    resolution: () => 1n,
    subscribeInstant: (when: bigint) => new Pollable(when),
    subscribeDuration: (d: bigint) => new Pollable(monotonicNow() + d),
  }),
  'wasi:io/poll': () => ({
    Pollable,
    poll(list: Pollable[]): Uint32Array {
      if (list.length === 0) throw new Error('wasi:io/poll.poll called with an empty list');
      let ready = list.flatMap((p, i) => (p.ready() ? [i] : []));
      if (ready.length === 0) {
        const earliest = list.reduce((a, b) => (a.at <= b.at ? a : b));
        earliest.block();
        ready = list.flatMap((p, i) => (p.ready() ? [i] : []));
      }
      return new Uint32Array(ready);
    },
  }),
};

const MAX_RANDOM = 1 << 20;
function checkLen(len: bigint): number {
  if (len > BigInt(MAX_RANDOM)) throw new Error(`random request of ${len} bytes exceeds ${MAX_RANDOM}`);
  return Number(len);
}

/** The WASI interfaces this kernel can provide (unversioned names). */
export const WASI_INTERFACES: readonly string[] = Object.keys(PROVIDERS);

export function isWasi(iface: string): boolean {
  return iface.startsWith('wasi:');
}

export function hasWasiProvider(iface: string): boolean {
  return iface in PROVIDERS;
}

export function buildWasi(iface: string, ctx: WasiContext): Record<string, unknown> {
  const p = PROVIDERS[iface];
  if (!p) throw new Error(`no WASI provider for ${iface}`);
  return p(ctx);
}
