/**
 * Worker-local kv reads (kv-local.ts, runtime/local.ts) in a real worker thread over the same embedded store
 * the kernel writes: same answers and same errors as the kernel-thread functions, and every read sees what
 * the kernel committed before it (no stale snapshot in a worker that never returns to its event loop).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KvStore, openKv } from '../kv/index.js';
import { clockHostInterface } from './clock.js';
import { GuestFacingError } from './errors.js';
import { kvHostInterface } from './kv.js';

let dir: string;
let store: KvStore;
let worker: Worker;
let kv: ReturnType<typeof kvHostInterface>;

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: unknown) => new TextDecoder().decode(b as Uint8Array);
const put = (key: string, value: string) => ({ tag: 'put', val: { key, value: bytes(value) } });

// The worker serves one call per message, synchronously, exactly as a component's worker does.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(async (m) => {
  const fns = await m.bindLocal(workerData.data, workerData.caller);
  parentPort.on('message', ({ fn, args }) => {
    try { parentPort.postMessage({ ok: true, value: fns[fn](...args) }); }
    catch (e) { parentPort.postMessage({ ok: false, payload: e.payload, message: e.message }); }
  });
  parentPort.postMessage({ ready: Object.keys(fns).sort() });
});`;

function local(fn: string, ...args: unknown[]): Promise<{ ok: boolean; value?: unknown; payload?: unknown }> {
  return new Promise((resolve) => {
    worker.once('message', resolve);
    worker.postMessage({ fn, args });
  });
}

async function kernelPayload(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(GuestFacingError);
    return (e as GuestFacingError).payload;
  }
  throw new Error('expected a kernel-error');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cam-kv-local-'));
  store = await openKv({ backend: 'embedded', path: join(dir, 'kv') });
  kv = kvHostInterface(store);
  expect(kv.local).toBeDefined();
  worker = new Worker(WORKER, { eval: true, workerData: { ...kv.local, caller: 'alpha' } });
  const ready = await new Promise<{ ready: string[] }>((r) => worker.once('message', r));
  // Reads only: writes stay on the kernel thread.
  expect(ready.ready).toEqual(['get', 'getMany', 'scan']);
});

afterAll(async () => {
  await worker?.terminate();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('worker-local kv reads', () => {
  it('see every write the kernel committed before the read', async () => {
    for (let i = 0; i < 25; i++) {
      await kv.functions.batch!('alpha', 'p', [put('k', `v${i}`), put(`n${i}`, String(i))]);
      const r = await local('get', 'p', 'k');
      expect(r.ok).toBe(true);
      expect(text(r.value)).toBe(`v${i}`);
    }
    const many = await local('getMany', 'p', ['n3', 'missing', 'n24']);
    expect((many.value as Array<Uint8Array | undefined>).map((v) => (v ? text(v) : v))).toEqual([
      '3',
      undefined,
      '24',
    ]);
  });

  it('see each commit in a worker that never returns to its event loop (a new snapshot only when the store committed)', async () => {
    expect(kv.local!.data).toMatchObject({ commits: store.commits });
    // flag[0]: the round the kernel committed; flag[1]: the round the worker read.
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const blocked = new Worker(
      `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(async (m) => {
  const fns = await m.bindLocal(workerData.data, 'alpha');
  const flag = new Int32Array(workerData.flag);
  const seen = [];
  for (let i = 1; i <= 5; i++) {
    while (Atomics.load(flag, 0) < i) Atomics.wait(flag, 0, Atomics.load(flag, 0), 50);
    seen.push(new TextDecoder().decode(fns.get('blocked', 'k')));
    seen.push(new TextDecoder().decode(fns.getMany('blocked', ['k'])[0]));
    Atomics.store(flag, 1, i);
  }
  parentPort.postMessage(seen);
});`,
      { eval: true, workerData: { ...kv.local, caller: 'alpha', flag: flag.buffer } },
    );
    try {
      const seen = new Promise<string[]>((r) => blocked.once('message', r));
      for (let i = 1; i <= 5; i++) {
        await kv.functions.batch!('alpha', 'blocked', [put('k', `v${i}`)]);
        Atomics.store(flag, 0, i);
        Atomics.notify(flag, 0);
        while (Atomics.load(flag, 1) < i) await new Promise((r) => setTimeout(r, 2));
      }
      expect(await seen).toEqual(['v1', 'v1', 'v2', 'v2', 'v3', 'v3', 'v4', 'v4', 'v5', 'v5']);
    } finally {
      await blocked.terminate();
    }
  });

  it('answer exactly what the kernel-thread functions answer, scoped to the calling component', async () => {
    await kv.functions.batch!('beta', 'p', [put('k', 'from beta')]);
    const cases: Array<[string, unknown[]]> = [
      ['get', ['p', 'k']],
      ['get', ['../beta/p', 'k']],
      ['getMany', ['p', ['k', 'n1', 'n2']]],
      ['scan', ['p', 'n1', undefined, 5, false]],
      ['scan', ['p', '', 'n2', 3, true]],
    ];
    for (const [fn, args] of cases) {
      const fromKernel = await kv.functions[fn]!('alpha', ...args);
      const fromWorker = await local(fn, ...args);
      expect(fromWorker.ok).toBe(true);
      expect(fromWorker.value).toEqual(fromKernel);
    }
  });

  it('refuse bad guest values with the same kernel-errors', async () => {
    const cases: Array<[string, unknown[]]> = [
      ['get', ['', 'k']],
      ['get', ['p', 'x'.repeat(2000)]],
      ['getMany', ['p', 'not-a-list']],
      ['scan', ['p', '', undefined, 0, false]],
      ['scan', ['p', '', undefined, 5, 'yes']],
    ];
    for (const [fn, args] of cases) {
      const expected = await kernelPayload(() => kv.functions[fn]!('alpha', ...args));
      const r = await local(fn, ...args);
      expect(r.ok).toBe(false);
      expect(r.payload).toEqual(expected);
    }
  });

  it('are offered only where they behave like the kernel thread', () => {
    // A store that is not the embedded one (here: a wrapper without a path) is read on the kernel thread.
    const wrapped: KvStore = {
      kind: 'embedded',
      get: (p, k) => store.get(p, k),
      getMany: (p, ks) => store.getMany(p, ks),
      scan: (p, o) => store.scan(p, o),
      batch: (p, ops) => store.batch(p, ops),
      close: async () => {},
    };
    expect(kvHostInterface(wrapped).local).toBeUndefined();
    // An injected time source lives in the kernel thread; the wall clock can be read anywhere.
    expect(clockHostInterface({ now: () => 5 }).local).toBeUndefined();
    expect(clockHostInterface().local).toBeDefined();
  });
});
