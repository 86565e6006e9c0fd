/**
 * Hot-swap with a real stateful componentize-js driver (cam:kernel `driver` world): state moves through
 * lifecycle export-state -> import-state, calls under steady load never fail, and a bad new version (init
 * error, init trap, refused state, unhealthy) rolls back while the old one keeps serving.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addCustomSection } from '../component/wasm-binary.js';
import { KernelError } from '../errors.js';
import { buildCounterDriver } from '../testing/js-fixture.js';
import { Kernel, type LoadSpec } from './kernel.js';

const HANDLER = 'cam:kernel/handler';
const IMPORTS = ['cam:kernel/log@0.1.0', 'cam:kernel/kv@0.1.0'];

let dir: string;
let kernel: Kernel;
let buildA: Uint8Array;
let buildB: Uint8Array;

function spec(
  bytes: Uint8Array,
  config: Record<string, string> = {},
  version = '1.0.0',
): Omit<LoadSpec, 'name'> {
  return { bytes, imports: IMPORTS, memoryMaxPages: 2048, version, config };
}

async function count(op: 'incr' | 'get' = 'get'): Promise<bigint> {
  const out = (await kernel.call('counter', HANDLER, 'handle', [op, new Uint8Array()])) as Uint8Array;
  return BigInt(Buffer.from(out).toString());
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cam-swap-test-'));
  const bytes = await buildCounterDriver();
  // Two builds of the same driver: identical code, different bytes (and digests).
  buildA = addCustomSection(bytes, 'build', Buffer.from('A'));
  buildB = addCustomSection(bytes, 'build', Buffer.from('B'));
  kernel = new Kernel({ dataDir: dir });
  // The driver world imports log and kv; the kernel's real host interfaces live elsewhere — these two are
  // inert stand-ins for a test that never calls them (the counter keeps its state in memory).
  kernel.provide({ name: 'cam:kernel/log@0.1.0', functions: { log: () => {} } });
  kernel.provide({
    name: 'cam:kernel/kv@0.1.0',
    functions: {
      get: () => {
        throw new Error('not used by this test');
      },
    },
  });
  await kernel.load({ name: 'counter', ...spec(buildA, { build: 'A' }) });
}, 180_000);

afterAll(async () => {
  await kernel.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('hot-swap', () => {
  it('hands state over and loses no call during 20 swaps under steady load', async () => {
    const before = await count();
    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    const load = (async () => {
      while (!stop) {
        try {
          await count('incr');
          ok++;
        } catch (e) {
          failures.push(e);
        }
      }
    })();
    const load2 = (async () => {
      while (!stop) {
        try {
          await count('get');
        } catch (e) {
          failures.push(e);
        }
      }
    })();
    const records = [];
    for (let i = 0; i < 20; i++) {
      const [bytes, build] = i % 2 === 0 ? [buildB, 'B'] : [buildA, 'A'];
      records.push(await kernel.swap('counter', spec(bytes, { build }, `1.0.${i + 1}`)));
    }
    stop = true;
    await Promise.all([load, load2]);
    expect(failures).toEqual([]);
    expect(records.every((r) => r.result === 'swapped')).toBe(true);
    // Every acknowledged increment is in the state of the version now running.
    expect(await count()).toBe(before + BigInt(ok));
    expect(kernel.info('counter').version).toBe('1.0.20');
    expect(kernel.swapHistory('counter').filter((h) => h.result === 'swapped')).toHaveLength(20);
  }, 180_000);

  for (const [label, config] of [
    ['init returns an error', { 'fail-init': '1' }],
    ['init throws', { 'throw-init': '1' }],
    ['import-state refuses the state', { 'reject-state': '1' }],
    ['health is degraded', { unhealthy: '1' }],
  ] as const) {
    it(`rolls back when ${label}, and the old version keeps serving`, async () => {
      const digest = kernel.info('counter').digest;
      const before = await count('incr');
      let failed = 0;
      let stop = false;
      const load = (async () => {
        while (!stop) await count('incr').catch(() => failed++);
      })();
      const err = await kernel.swap('counter', spec(buildB, config, '9.9.9')).then(
        () => undefined,
        (e: unknown) => e,
      );
      stop = true;
      await load;
      expect(err).toBeInstanceOf(KernelError);
      expect(failed).toBe(0);
      expect(kernel.info('counter').digest).toBe(digest);
      expect(await count()).toBeGreaterThan(before);
      const last = kernel.swapHistory('counter').at(-1)!;
      expect(last.result).toBe('rolled-back');
      expect(last.reason).toBeTruthy();
    }, 60_000);
  }

  it('rolls back to the previous version on request, and refuses when there is none', async () => {
    const fresh = new Kernel({ dataDir: dir });
    fresh.provide({ name: 'cam:kernel/log@0.1.0', functions: { log: () => {} } });
    fresh.provide({ name: 'cam:kernel/kv@0.1.0', functions: {} });
    await fresh.load({ name: 'counter', ...spec(buildA, {}, '1.0.0') });
    await expect(fresh.rollback('counter')).rejects.toThrow(/no previous version/);
    await fresh.swap('counter', spec(buildB, {}, '2.0.0'));
    expect(fresh.info('counter').version).toBe('2.0.0');
    const r = await fresh.rollback('counter');
    expect(r.kind).toBe('rollback');
    expect(fresh.info('counter').version).toBe('1.0.0');
    await fresh.stop();
  }, 60_000);
});
