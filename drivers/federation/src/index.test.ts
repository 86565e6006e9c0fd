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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import { type BuildResult, buildComponent } from '../../../sdk/src/build/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FED = 'cam:kernel/federation';

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
  current: Entry;
  currentChanged: boolean;
}

let outDir: string;
let built: BuildResult;
const nodes: Record<string, ComponentHarness> = {};

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const clientIdOf = (node: string) => createHash('sha256').update(node).digest().readUInt32BE(0);

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
  });
  nodes[node] = h;
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
    const entries = d.getMap<{ k: string; d: Uint8Array; o: string }>('e:shared');
    expect(entries.size).toBe(1);
    const [id, stored] = [...entries.entries()][0]!;
    expect(id).toBe(`${clientIdOf('node-a')}.0`);
    expect(stored.k).toBe('greeting');
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
    expect(out[0]!.current.originNode).toBe('node-a');
    expect(out[0]!.current.change.metadata).toEqual([['k', 'v']]);
    // Applying the same update again changes nothing.
    expect(await apply('node-b', update)).toEqual({ changes: [], incomplete: false });
  });

  it('resolves concurrent writes of one key the same way on every node, in any order', async () => {
    await syncAll();
    const ua = await write('node-a', 'shared', 'race', 'from-a');
    const ub = await write('node-b', 'shared', 'race', 'from-b');
    const uc = await write('node-c', 'shared', 'race', 'from-c');
    await apply('node-a', uc);
    await apply('node-a', ub);
    await apply('node-b', ua);
    await apply('node-b', uc);
    await apply('node-c', ub);
    await apply('node-c', ua);
    const winner = ['node-a', 'node-b', 'node-c'].sort((x, y) => clientIdOf(y) - clientIdOf(x))[0]!;
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
      expect(dec(out.changes[0]!.current.change.data)).toBe('after');
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
});
