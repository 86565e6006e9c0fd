/**
 * The memory component's queries (`read`, `version-list`) answered by its query replica on the kernel thread
 * (host/src/runtime/replica.ts) must be exactly what its worker answers, whatever writes, snapshots and
 * restores came before: the replica keeps its own head cache, and only the kernel's rule (a replica older
 * than the last non-query call is never used) keeps that cache from going stale. A seeded random sequence of
 * operations checks it: after every step, each query is asked of both and the answers compared.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import type { BuildResult } from '../../../sdk/src/build/index.js';
import { buildMemory } from './build.js';

const MEM = 'cam:kernel/memory';

let outDir: string;
let built: BuildResult;
let h: ComponentHarness;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-mem-replica-'));
  built = await buildMemory(outDir);
  h = await ComponentHarness.start({ startTimeMs: 1_800_000_000_000 });
  await h.load({
    name: 'memory',
    wasmPath: built.wasmPath,
    imports: built.imports,
    config: { 'max-versions': '4' },
  });
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await rm(outDir, { recursive: true, force: true });
});

/** A call's outcome, comparable across the two paths. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (e) {
    return { err: e instanceof Error ? `${(e as { code?: string }).code}: ${e.message}` : String(e) };
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('query replica of the memory component', () => {
  it('answers every read and version list exactly as the worker does, across writes, snapshots and restores', async () => {
    const k = h.kernel;
    const status = () => k.info('memory').status.replica;
    const rand = rng(7);
    const keys = ['a', 'b', 'c', 'missing'];
    const snapshots: string[] = [];
    const queries = (ns: string, key: string, version: number | undefined) =>
      [
        ['read', [ns, key, version === undefined ? undefined : BigInt(version)]],
        ['version-list', [ns, key, 3, undefined]],
      ] as const;
    let compared = 0;
    for (let step = 0; step < 120; step++) {
      const ns = rand() < 0.8 ? 'proj' : 'other';
      const key = keys[Math.floor(rand() * keys.length)]!;
      const r = rand();
      if (r < 0.45 && key !== 'missing') {
        await k.call('memory', MEM, 'write', [
          ns,
          key,
          new TextEncoder().encode(`v${step}`),
          [['step', `${step}`]],
          'alice',
        ]);
        h.clock.advance(1);
      } else if (r < 0.5) {
        snapshots.push((await k.call('memory', MEM, 'snapshot', [ns, `s${step}`, 'bob'])) as string);
      } else if (r < 0.55 && snapshots.length > 0) {
        await outcome(
          k.call('memory', MEM, 'restore', [snapshots[Math.floor(rand() * snapshots.length)]!, true]),
        );
      }
      // The replica is rebuilt in the background after a write, started by a query (the kernel spaces builds
      // a little, so keep asking); wait for it so the queries below are its.
      const end = Date.now() + 10_000;
      while (status().state !== 'ready' && Date.now() < end) {
        await k.call('memory', MEM, 'read', ['proj', 'a', undefined], { query: true }).catch(() => undefined);
        await new Promise((res) => setTimeout(res, 2));
      }
      expect(status().state).toBe('ready');
      const version = rand() < 0.3 ? 1 + Math.floor(rand() * 6) : undefined;
      // Every replica answer first: a call without `query` finishing on the worker makes the replica stale.
      const fromReplica: unknown[] = [];
      for (const [fn, args] of queries(ns, key, version)) {
        const before = status().calls;
        const first = await outcome(k.call('memory', MEM, fn, [...args], { query: true }));
        // Asked again (the replica's cache now holds the key): the same answer. Enough queries also keep the
        // kernel rebuilding replicas promptly (it spaces builds for replicas that answer few queries).
        for (let again = 0; again < 20; again++) {
          expect(await outcome(k.call('memory', MEM, fn, [...args], { query: true }))).toEqual(first);
        }
        expect(status().calls).toBe(before + 21);
        fromReplica.push(first);
      }
      for (const [fn, args] of queries(ns, key, version)) {
        expect(fromReplica.shift()).toEqual(await outcome(k.call('memory', MEM, fn, [...args])));
        compared++;
      }
    }
    expect(compared).toBe(240);
    expect(status().fallbacks).toBe(0);
  }, 120_000);
});
