/**
 * The federation component as a real component: built by the SDK pipeline (cached), loaded into real
 * kernels (one per simulated node, each with its own embedded kv), driven through `kernel.call` only. The
 * updates it returns are real Yjs updates: the test also decodes them with the host's Yjs.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError } from '@cam-os/host/errors.js';
import { scopedPartition } from '@cam-os/host/host-interfaces/kv.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import { type BuildResult, buildComponent } from '../../../sdk/src/build/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FED = 'cam:kernel/federation';
/** What drivers/federation/driver.json gives the component in a kernel. */
const MEMORY_MAX_PAGES = 4096;

interface Change {
  namespace: string;
  key: string;
  hash: string;
  data: Uint8Array;
  metadata: Array<[string, string]>;
  author: string;
  timestampMs: bigint;
}
interface Entry {
  id: string;
  originNode: string;
  change: Change;
}
interface Applied {
  changes: KeyUpdate[];
  incomplete: boolean;
}
interface KeyUpdate {
  namespace: string;
  key: string;
  added: Entry[];
  currentId: string;
  current?: Entry;
  currentChanged: boolean;
}
/** The current value of a key update: sent on its own only when it is not one of `added`. */
function currentOf(u: KeyUpdate): Entry {
  expect(u.current === undefined).toBe(u.added.some((e) => e.id === u.currentId));
  const cur = u.current ?? u.added.find((e) => e.id === u.currentId)!;
  expect(cur.id).toBe(u.currentId);
  return cur;
}

let outDir: string;
let built: BuildResult;
const nodes: Record<string, ComponentHarness> = {};

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const clientIdOf = (node: string) => createHash('sha256').update(node).digest().readUInt32BE(0);
/** An entry of `e:<ns>` as the component stores it: u32 BE n, n bytes of JSON, then the data. */
function decodeEntry(v: Uint8Array): {
  k: string;
  h: string;
  m: Array<[string, string]>;
  o: string;
  d: Uint8Array;
} {
  const n = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0);
  const [k, h, m, , , o] = JSON.parse(dec(v.subarray(4, 4 + n)));
  return { k, h, m, o, d: v.subarray(4 + n) };
}

const call = <T>(node: string, fn: string, ...args: unknown[]) =>
  nodes[node]!.call<T>('federation', FED, fn, ...args);
const change = (ns: string, key: string, value: string, t = 1_800_000_000_000n): Change => ({
  namespace: ns,
  key,
  hash: sha(enc(value)),
  data: enc(value),
  metadata: [['k', 'v']],
  author: 'alice',
  timestampMs: t,
});
/** apply-update then commit-applied, as the kernel does after its memory writes succeed. */
async function apply(node: string, update: Uint8Array): Promise<Applied> {
  const r = await call<Applied>(node, 'apply-update', update);
  await call(node, 'commit-applied');
  return r;
}
/** A local write in a federated namespace: the update it produces for the peers. */
async function write(node: string, ns: string, key: string, value: string, t?: bigint): Promise<Uint8Array> {
  const u = await call<Uint8Array | undefined>(node, 'record-local-change', change(ns, key, value, t));
  if (!u) throw new Error(`${node}: a write in '${ns}' produced no update (is the namespace federated?)`);
  return u;
}

async function start(node: string, namespaces = 'shared,team-*'): Promise<void> {
  const h = await ComponentHarness.start();
  await h.load({
    name: 'federation',
    wasmPath: built.wasmPath,
    imports: built.imports,
    config: { 'node-id': node, namespaces },
    memoryMaxPages: MEMORY_MAX_PAGES,
  });
  nodes[node] = h;
}

/** A new instance of the component on the node's kv: the document is reloaded as after a crash. */
async function restart(node: string): Promise<void> {
  await nodes[node]!.swap('federation', {
    name: 'federation',
    wasmPath: built.wasmPath,
    imports: built.imports,
    config: { 'node-id': node, namespaces: 'shared,team-*' },
    memoryMaxPages: MEMORY_MAX_PAGES,
  });
}

/** Full anti-entropy between every pair of nodes. */
async function syncAll(): Promise<void> {
  const names = Object.keys(nodes);
  for (const from of names) {
    for (const to of names) {
      if (from === to) continue;
      const diff = await call<Uint8Array>(from, 'diff', await call<Uint8Array>(to, 'state-vector'));
      await apply(to, diff);
    }
  }
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-fed-build-'));
  built = await buildComponent({
    entry: join(ROOT, 'drivers/federation/src/index.ts'),
    world: 'federation-component',
    outDir,
    cacheDir: join(ROOT, 'drivers/.cache'),
    name: 'federation',
  });
  await Promise.all(['node-a', 'node-b', 'node-c'].map((n) => start(n)));
}, 240_000);

afterAll(async () => {
  await Promise.all(Object.values(nodes).map((h) => h.stop()));
  await rm(outDir, { recursive: true, force: true });
});

describe('federation component', () => {
  it('replicates only the configured namespaces and returns a real Yjs update', async () => {
    expect(await call('node-a', 'replicates', 'shared')).toBe(true);
    expect(await call('node-a', 'replicates', 'team-blue')).toBe(true);
    expect(await call('node-a', 'replicates', 'private')).toBe(false);
    expect(await call('node-a', 'record-local-change', change('private', 'k', 'x'))).toBeUndefined();
    const update = await write('node-a', 'shared', 'greeting', 'hello');
    expect(update).toBeInstanceOf(Uint8Array);
    // The host's Yjs reads it: one entry and the key's current id, from node-a's client id.
    const d = new Y.Doc();
    Y.applyUpdate(d, update!);
    const entries = d.getMap<Uint8Array>('e:shared');
    expect(entries.size).toBe(1);
    const [id, value] = [...entries.entries()][0]!;
    const stored = decodeEntry(value);
    expect(id).toBe(`${clientIdOf('node-a')}.0`);
    expect(stored.k).toBe('greeting');
    expect(stored.h).toBe(sha(enc('hello')));
    expect(stored.o).toBe('node-a');
    expect(stored.m).toEqual([['k', 'v']]);
    expect(dec(stored.d)).toBe('hello');
    expect(d.getMap('v:shared').get('greeting')).toBe(id);
  });

  it('applies a peer update: the key, its new entries and its current value', async () => {
    const update = await write('node-a', 'shared', 'k1', 'one');
    // node-b has not seen node-a's first write: Yjs keeps this update pending and says so.
    const early = await apply('node-b', update);
    expect(early).toEqual({ changes: [], incomplete: true });
    // Anti-entropy fills the gap; both writes arrive, in order.
    const diff = await call<Uint8Array>('node-a', 'diff', await call<Uint8Array>('node-b', 'state-vector'));
    const res = await apply('node-b', diff);
    expect(res.incomplete).toBe(false);
    const out = res.changes.filter((c) => c.key === 'k1');
    expect(out).toHaveLength(1);
    expect(out[0]!.key).toBe('k1');
    expect(out[0]!.currentChanged).toBe(true);
    expect(out[0]!.added.map((e) => dec(e.change.data))).toEqual(['one']);
    // The current value is the added entry: its data crossed the component boundary once.
    expect(out[0]!.current).toBeUndefined();
    expect(out[0]!.currentId).toBe(out[0]!.added[0]!.id);
    expect(currentOf(out[0]!).originNode).toBe('node-a');
    expect(currentOf(out[0]!).change.metadata).toEqual([['k', 'v']]);
    // Applying the same update again changes nothing.
    expect(await apply('node-b', update)).toEqual({ changes: [], incomplete: false });
  });

  it('resolves concurrent writes of one key the same way on every node, in any order', async () => {
    await syncAll();
    const ua = await write('node-a', 'shared', 'race', 'from-a');
    const ub = await write('node-b', 'shared', 'race', 'from-b');
    const uc = await write('node-c', 'shared', 'race', 'from-c');
    const winner = ['node-a', 'node-b', 'node-c'].sort((x, y) => clientIdOf(y) - clientIdOf(x))[0]!;
    for (const [n, u] of [
      ['node-a', uc],
      ['node-a', ub],
      ['node-b', ua],
      ['node-b', uc],
      ['node-c', ub],
      ['node-c', ua],
    ] as const) {
      const [k] = (await apply(n, u)).changes;
      // Whether the arriving write won or lost, the key update names the current value, and carries it
      // on its own exactly when it is not the added entry (a lost write: the current value is an older one).
      expect(k!.added).toHaveLength(1);
      expect(dec(currentOf(k!).change.data)).toBe(
        await call<Entry>(n, 'current', 'shared', 'race').then((e) => dec(e.change.data)),
      );
    }
    for (const n of ['node-a', 'node-b', 'node-c']) {
      const cur = await call<Entry>(n, 'current', 'shared', 'race');
      expect(cur.originNode).toBe(winner);
      expect(dec(cur.change.data)).toBe(`from-${winner.slice(-1)}`);
    }
    // A write that has seen the others wins over all of them, whatever its client id.
    const loser = ['node-a', 'node-b', 'node-c'].find((n) => n !== winner)!;
    const later = await write(loser, 'shared', 'race', 'after');
    for (const n of ['node-a', 'node-b', 'node-c'].filter((x) => x !== loser)) {
      const out = await apply(n, later);
      expect(dec(currentOf(out.changes[0]!).change.data)).toBe('after');
    }
  });

  it('anti-entropy: a state vector and a diff bring a lagging node up to date', async () => {
    for (let i = 0; i < 20; i++) await write('node-a', 'team-x', `k${i}`, `v${i}`);
    const svC = await call<Uint8Array>('node-c', 'state-vector');
    expect(Number(await call<bigint>('node-a', 'missing', svC))).toBeGreaterThanOrEqual(20);
    const diff = await call<Uint8Array>('node-a', 'diff', svC);
    const out = (await apply('node-c', diff)).changes;
    expect(out.filter((u) => u.namespace === 'team-x')).toHaveLength(20);
    const svC2 = await call<Uint8Array>('node-c', 'state-vector');
    expect(await call<bigint>('node-a', 'missing', svC2)).toBe(0n);
    const cur = await call<Entry>('node-c', 'current', 'team-x', 'k7');
    expect(dec(cur.change.data)).toBe('v7');
  });

  it('keeps the document across a restart (reloaded from kv) and continues its clock', async () => {
    const before = await call<{ localEntries: bigint; entries: bigint }>('node-a', 'info');
    const h = nodes['node-a']!;
    const svBefore = await call<Uint8Array>('node-a', 'state-vector');
    await h.swap('federation', {
      name: 'federation',
      wasmPath: built.wasmPath,
      imports: built.imports,
      config: { 'node-id': 'node-a', namespaces: 'shared,team-*' },
    });
    expect(await call<Uint8Array>('node-a', 'state-vector')).toEqual(svBefore);
    const after = await call<{ localEntries: bigint; entries: bigint }>('node-a', 'info');
    expect(after.entries).toBe(before.entries);
    const u = await write('node-a', 'shared', 'post-restart', 'x');
    const d = new Y.Doc();
    Y.applyUpdate(d, u!);
    const ids = [...d.getMap('e:shared').keys()];
    expect(ids).toEqual([`${clientIdOf('node-a')}.${Number(before.localEntries) * 2}`]);
  });

  it('a staged update that was never committed is gone after a restart, and anti-entropy brings it back', async () => {
    const u = await write('node-b', 'shared', 'staged', 'not yet durable on c');
    const r = await call<Applied>('node-c', 'apply-update', u);
    expect(r.changes.map((c) => c.key)).toEqual(['staged']);
    // A crash before commit-applied: the new instance reloads the document from kv.
    await nodes['node-c']!.swap('federation', {
      name: 'federation',
      wasmPath: built.wasmPath,
      imports: built.imports,
      config: { 'node-id': 'node-c', namespaces: 'shared,team-*' },
    });
    expect(await call('node-c', 'current', 'shared', 'staged')).toBeUndefined();
    const diff = await call<Uint8Array>('node-b', 'diff', await call<Uint8Array>('node-c', 'state-vector'));
    const again = await apply('node-c', diff);
    expect(again.changes.map((c) => c.key)).toContain('staged');
    // discard-applied drops what was staged.
    const u2 = await write('node-b', 'shared', 'discarded', 'memory refused it');
    await call('node-c', 'apply-update', u2);
    await call('node-c', 'discard-applied');
    expect(await call('node-c', 'current', 'shared', 'discarded')).toBeUndefined();
  });

  it('refuses bad input with the reason', async () => {
    const bad = { ...change('shared', 'k', 'x'), hash: 'nothex' };
    await expect(call('node-a', 'record-local-change', bad)).rejects.toThrow(/hash must be 64 lowercase hex/);
    const e = await call('node-a', 'diff', enc('\xff\xff\xff\xff\xff\xff\xff\xff\xff')).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(KernelError);
    expect(String((e as Error).message)).toMatch(/not a Yjs state vector/);
    const h = await ComponentHarness.start();
    try {
      await expect(
        h.load({
          name: 'federation',
          wasmPath: built.wasmPath,
          imports: built.imports,
          config: { 'node-id': 'a b' },
        }),
      ).rejects.toThrow(/node-id' must be 1-128 characters/);
    } finally {
      await h.stop();
    }
  });
  it('keeps the parts of an update that wait for an earlier one across a restart', async () => {
    await syncAll();
    const u1 = await write('node-b', 'team-wait', 'first', 'one');
    const u2 = await write('node-b', 'team-wait', 'second', 'two');
    // node-c gets the second write first: Yjs keeps it waiting, and commit-applied stores it as received.
    expect(await apply('node-c', u2)).toEqual({ changes: [], incomplete: true });
    await restart('node-c');
    // After the restart the first write arrives alone: the waiting second one is integrated with it.
    const r = await apply('node-c', u1);
    expect(r.incomplete).toBe(false);
    expect(r.changes.map((c) => c.key).sort()).toEqual(['first', 'second']);
  });

  it('reads documents written by the previous layout: object entries and a whole-document snapshot', async () => {
    // The previous version stored entries as objects and compacted into `s/` snapshot chunks.
    const old = new Y.Doc();
    old.clientID = clientIdOf('node-old');
    const data = enc('written by an earlier version');
    old.transact(() => {
      old.getMap('e:shared').set(`${old.clientID}.0`, {
        k: 'legacy',
        h: sha(data),
        d: data,
        m: [['k', 'v']],
        a: 'alice',
        t: 1_800_000_000_000,
        o: 'node-old',
      });
      old.getMap('v:shared').set('legacy', `${old.clientID}.0`);
    });
    const h = await ComponentHarness.start();
    try {
      await h.kv.batch(scopedPartition('federation', 'federation/node-old'), [
        { op: 'put', key: 's/0000', value: Y.encodeStateAsUpdate(old) },
      ]);
      await h.load({
        name: 'federation',
        wasmPath: built.wasmPath,
        imports: built.imports,
        config: { 'node-id': 'node-old', namespaces: 'shared' },
      });
      const cur = await h.call<Entry>('federation', FED, 'current', 'shared', 'legacy');
      expect(dec(cur.change.data)).toBe('written by an earlier version');
      expect(cur.change.metadata).toEqual([['k', 'v']]);
      // A new write continues the clock after the snapshot's.
      const u = await h.call<Uint8Array>(
        'federation',
        FED,
        'record-local-change',
        change('shared', 'new', 'n'),
      );
      const d = new Y.Doc();
      Y.applyUpdate(d, u);
      expect([...d.getMap('e:shared').keys()]).toEqual([`${old.clientID}.2`]);
      // And a peer that runs this version reads the old entry from an update.
      const r = await apply('node-a', Y.encodeStateAsUpdate(old));
      const legacy = r.changes.find((c) => c.key === 'legacy')!;
      expect(dec(currentOf(legacy).change.data)).toBe('written by an earlier version');
      expect(currentOf(legacy).originNode).toBe('node-old');
    } finally {
      await h.stop();
    }
  });

  it('turns its log into a segment in commit-applied, and reloads segment and log', async () => {
    await start('node-d');
    const kvKeys = async () =>
      (
        await nodes['node-d']!.kv.scan(scopedPartition('federation', 'federation/node-d'), { limit: 10_000 })
      ).map((e) => e.key);
    // 1,000 updates fill the log; record-local-change leaves it to commit-applied (off the write path).
    for (let i = 0; i < 1000; i++) await write('node-d', 'shared', `c${i % 50}`, `v${i}`);
    let keys = await kvKeys();
    expect(keys.filter((k) => k.startsWith('u/'))).toHaveLength(1000);
    await call('node-d', 'commit-applied');
    keys = await kvKeys();
    expect(keys.filter((k) => k.startsWith('g/'))).toEqual(['g/0000000000000001']);
    expect(keys.filter((k) => k.startsWith('u/'))).toEqual([]);
    // More writes go to the log again; a restart loads the segment, then the log.
    for (let i = 0; i < 3; i++) await write('node-d', 'shared', 'after', `a${i}`);
    expect((await kvKeys()).filter((k) => k.startsWith('u/'))).toHaveLength(3);
    const sv = await call<Uint8Array>('node-d', 'state-vector');
    await restart('node-d');
    expect(await call<Uint8Array>('node-d', 'state-vector')).toEqual(sv);
    expect(dec((await call<Entry>('node-d', 'current', 'shared', 'c7')).change.data)).toBe('v957');
    expect(dec((await call<Entry>('node-d', 'current', 'shared', 'after')).change.data)).toBe('a2');
    expect((await call<{ entries: bigint }>('node-d', 'info')).entries).toBe(1003n);
  });

  it('stores an update larger than a kv value in pieces and reloads it', async () => {
    await start('node-e');
    const big = new Uint8Array(9 * 1024 * 1024).map((_, i) => i % 253);
    const u = await call<Uint8Array>('node-e', 'record-local-change', {
      ...change('shared', 'big', ''),
      hash: sha(big),
      data: big,
    });
    expect(u.byteLength).toBeGreaterThan(8 * 1024 * 1024);
    const keys = (
      await nodes['node-e']!.kv.scan(scopedPartition('federation', 'federation/node-e'), { limit: 100 })
    ).map((e) => e.key);
    expect(keys).toEqual(['u/0000000000000001/0000', 'u/0000000000000001/0001']);
    await restart('node-e');
    const cur = await call<Entry>('node-e', 'current', 'shared', 'big');
    expect(cur.change.hash).toBe(sha(big));
    expect(sha(cur.change.data)).toBe(sha(big));
  });
});
