/**
 * The memory component as a real component: built by the SDK pipeline (cached), loaded into a real Kernel
 * with the host interfaces over an embedded KvStore, and driven through `kernel.call` only.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError } from '@cam-os/host/errors.js';
import { KvError, type KvStore } from '@cam-os/host/kv/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import type { BuildResult } from '../../../sdk/src/build/index.js';
import { buildMemory } from './build.js';

const MEM = 'cam:kernel/memory';
const LIFE = 'cam:kernel/lifecycle';
const T0 = 1_800_000_000_000;

interface Entry {
  namespace: string;
  key: string;
  data: Uint8Array;
  version: bigint;
  hash: string;
  timestampMs: bigint;
  metadata: Array<[string, string]>;
  author: string;
}
interface Receipt {
  version: bigint;
  hash: string;
  timestampMs: bigint;
}
interface Page {
  versions: Array<{ version: bigint; author: string; description: string; hash: string; size: bigint }>;
  hasMore: boolean;
  nextToken?: string;
}

let outDir: string;
let built: BuildResult;
let h: ComponentHarness;
/** When set, every kv batch fails as if the backend were down. */
let storageDown = false;

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const mem = <T = unknown>(fn: string, ...args: unknown[]) => h.call<T>('memory', MEM, fn, ...args);
const write = (
  ns: string,
  key: string,
  value: string,
  metadata: Array<[string, string]> = [],
  author = 'alice',
) => mem<Receipt>('write', ns, key, enc(value), metadata, author);
const read = (ns: string, key: string, version?: number) =>
  mem<Entry>('read', ns, key, version === undefined ? undefined : BigInt(version));
const text = async (ns: string, key: string, version?: number) => dec((await read(ns, key, version)).data);

async function failure(p: Promise<unknown>): Promise<KernelError> {
  const e = await p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KernelError);
  return e as KernelError;
}

function flakyKv(kv: KvStore): KvStore {
  return {
    kind: kv.kind,
    get: (p, k) => kv.get(p, k),
    getMany: (p, ks) => kv.getMany(p, ks),
    scan: (p, o) => kv.scan(p, o),
    close: () => kv.close(),
    batch: (p, ops) => {
      if (storageDown)
        return Promise.reject(new KvError('KV_ERR_UNAVAILABLE', 'connection refused by 10.0.0.7'));
      return kv.batch(p, ops);
    },
  };
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-mem-build-'));
  built = await buildMemory(outDir);
  h = await ComponentHarness.start({ startTimeMs: T0, wrapKv: flakyKv });
  await h.load({
    name: 'memory',
    wasmPath: built.wasmPath,
    imports: built.imports,
    config: { 'max-versions': '5' },
  });
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await rm(outDir, { recursive: true, force: true });
});

describe('versions', () => {
  it('writes immutable versions with the host-computed sha-256 and reads latest or by number', async () => {
    expect(built.imports).toEqual([
      'cam:kernel/clock@0.1.0',
      'cam:kernel/digest@0.1.0',
      'cam:kernel/kv@0.1.0',
      'cam:kernel/log@0.1.0',
    ]);
    const r1 = await write('docs', 'readme', 'hello', [['description', 'first draft']]);
    expect(r1).toEqual({ version: 1n, hash: sha('hello'), timestampMs: BigInt(T0) });
    h.clock.advance(10);
    const r2 = await write('docs', 'readme', 'hello world', [], 'bob');
    expect(r2.version).toBe(2n);
    const latest = await read('docs', 'readme');
    expect(latest).toMatchObject({
      namespace: 'docs',
      key: 'readme',
      version: 2n,
      author: 'bob',
      hash: sha('hello world'),
    });
    expect(dec(latest.data)).toBe('hello world');
    expect(latest.timestampMs).toBe(BigInt(T0 + 10));
    const first = await read('docs', 'readme', 1);
    expect(first).toMatchObject({ version: 1n, author: 'alice', metadata: [['description', 'first draft']] });
    expect(dec(first.data)).toBe('hello');
    expect(await text('docs', 'readme', 0)).toBe('hello world');
  });

  it('reports missing keys and versions as not-found', async () => {
    expect((await failure(read('docs', 'nope'))).status).toBe('NOT_FOUND');
    const future = await failure(read('docs', 'readme', 9));
    expect(future.status).toBe('NOT_FOUND');
    expect(future.message).toContain('the latest is 2');
    expect((await failure(read('elsewhere', 'readme'))).status).toBe('NOT_FOUND');
  });

  it('pages through versions with next-token and has-more', async () => {
    for (let i = 3; i <= 5; i++) await write('docs', 'readme', `v${i}`);
    const p1 = await mem<Page>('version-list', 'docs', 'readme', 2, undefined);
    expect(p1.versions.map((v) => v.version)).toEqual([1n, 2n]);
    expect(p1.versions[0]).toMatchObject({
      description: 'first draft',
      hash: sha('hello'),
      size: 5n,
      author: 'alice',
    });
    expect(p1).toMatchObject({ hasMore: true, nextToken: '2' });
    const p2 = await mem<Page>('version-list', 'docs', 'readme', 2, BigInt(p1.nextToken!));
    expect(p2.versions.map((v) => v.version)).toEqual([3n, 4n]);
    const p3 = await mem<Page>('version-list', 'docs', 'readme', 2, BigInt(p2.nextToken!));
    expect(p3).toMatchObject({ hasMore: false, nextToken: undefined });
    expect(p3.versions.map((v) => v.version)).toEqual([5n]);
    const all = await mem<Page>('version-list', 'docs', 'readme', 0, undefined);
    expect(all.versions).toHaveLength(5);
    expect((await failure(mem('version-list', 'docs', 'ghost', 10, undefined))).status).toBe('NOT_FOUND');
  });

  it('keeps at most max-versions per key, pruning the oldest', async () => {
    await write('docs', 'readme', 'v6');
    await write('docs', 'readme', 'v7');
    const page = await mem<Page>('version-list', 'docs', 'readme', 0, undefined);
    expect(page.versions.map((v) => v.version)).toEqual([3n, 4n, 5n, 6n, 7n]);
    const pruned = await failure(read('docs', 'readme', 1));
    expect(pruned.status).toBe('NOT_FOUND');
    expect(pruned.message).toContain('pruned');
  });

  it('refuses malformed input with typed errors', async () => {
    expect((await failure(write('bad/ns', 'k', 'v'))).status).toBe('INVALID_ARGUMENT');
    expect((await failure(write('docs', 'a\0b', 'v'))).status).toBe('INVALID_ARGUMENT');
    expect((await failure(write('docs', 'k', 'v', [], ''))).status).toBe('INVALID_ARGUMENT');
    const big = await failure(mem('write', 'docs', 'k', new Uint8Array(4 * 1024 * 1024 + 1), [], 'alice'));
    expect(big.status).toBe('RESOURCE_EXHAUSTED');
    const tags = Array.from({ length: 257 }, (_, i): [string, string] => [`t${i}`, 'x']);
    expect((await failure(write('docs', 'k', 'v', tags))).status).toBe('RESOURCE_EXHAUSTED');
    expect((await failure(read('docs', 'k'))).status).toBe('NOT_FOUND');
  });

  it('traps on a value that does not match the WIT type, and serves again after the restart', async () => {
    await h.load({ name: 'memory-trap', wasmPath: built.wasmPath, imports: built.imports });
    const trap = await failure(h.kernel.call('memory-trap', MEM, 'write', [42, 'k', enc('x'), [], 'a']));
    expect(trap.code).toBe('KERNEL_ERR_COMPONENT_TRAP');
    const r = await h.kernel.call('memory-trap', MEM, 'write', ['docs', 'k', enc('bytes'), [], 'a']);
    expect(r).toMatchObject({ version: 1n });
    await h.kernel.unload('memory-trap');
  });

  it('leaves nothing behind when storage fails mid-write, and reports unavailable without host details', async () => {
    storageDown = true;
    const e = await failure(write('docs', 'readme', 'lost'));
    storageDown = false;
    expect(e.status).toBe('UNAVAILABLE');
    expect(e.message).not.toContain('10.0.0.7');
    expect(await text('docs', 'readme')).toBe('v7');
    const next = await write('docs', 'readme', 'v8');
    expect(next.version).toBe(8n);
  });
});

describe('snapshots', () => {
  it('restores a namespace, refusing newer data without force', async () => {
    await write('proj', 'a', 'a1');
    await write('proj', 'b', 'b1');
    await write('proj', 'gone', 'g1');
    const id = await mem<string>('snapshot', 'proj', 'before the refactor', 'carol');
    expect(id).toBe('proj@1');
    await write('proj', 'a', 'a2');
    await write('proj', 'new', 'n1');

    const refused = await failure(mem('restore', id, false));
    expect(refused.status).toBe('FAILED_PRECONDITION');
    expect(refused.message).toContain('newer than the snapshot');
    expect(await text('proj', 'a')).toBe('a2');

    const r = await mem<{ namespace: string; restoredItems: bigint }>('restore', id, true);
    expect(r).toEqual({ namespace: 'proj', restoredItems: 2n });
    const a = await read('proj', 'a');
    expect(dec(a.data)).toBe('a1');
    expect(a.version).toBe(3n);
    expect(a.hash).toBe(sha('a1'));
    expect(a.metadata).toContainEqual(['cam.restored-from', 'proj@1']);
    expect(await text('proj', 'b')).toBe('b1');
    expect((await failure(read('proj', 'new'))).message).toContain('removed from the latest view');
    expect(await text('proj', 'new', 1)).toBe('n1');
    // Restoring again changes nothing and is not refused.
    expect(await mem('restore', id, false)).toEqual({ namespace: 'proj', restoredItems: 0n });
    expect((await failure(mem('restore', 'proj@9', true))).status).toBe('NOT_FOUND');
    expect((await failure(mem('restore', 'garbage', true))).status).toBe('INVALID_ARGUMENT');
  });

  it('keeps snapshot versions through retention pruning', async () => {
    await write('keep', 'k', 'original');
    const id = await mem<string>('snapshot', 'keep', '', 'carol');
    for (let i = 0; i < 12; i++) await write('keep', 'k', `churn ${i}`);
    await mem('restore', id, true);
    expect(await text('keep', 'k')).toBe('original');
    // The snapshot's version is still readable by number although it is far outside the window.
    expect(await text('keep', 'k', 1)).toBe('original');
  });
});

describe('write-many', () => {
  const req = (
    ns: string,
    key: string,
    value: string,
    metadata: Array<[string, string]> = [],
    author = 'bob',
  ) => ({
    namespace: ns,
    key,
    data: enc(value),
    metadata,
    author,
  });

  it('stores each write as `write` would: own versions in order, across namespaces and repeated keys', async () => {
    const receipts = await mem<Receipt[]>('write-many', [
      req('batch-a', 'k', 'a1'),
      req('batch-a', 'k', 'a2'),
      req('batch-b', 'k', 'b1'),
      req('batch-a', 'j', 'j1'),
      req('batch-a', 'k', 'a3'),
    ]);
    expect(receipts.map((r) => r.version)).toEqual([1n, 2n, 1n, 1n, 3n]);
    expect(receipts.map((r) => r.hash)).toEqual(['a1', 'a2', 'b1', 'j1', 'a3'].map(sha));
    expect(await text('batch-a', 'k')).toBe('a3');
    expect(await text('batch-a', 'k', 2)).toBe('a2');
    expect(await text('batch-b', 'k')).toBe('b1');
    expect((await read('batch-a', 'j')).author).toBe('bob');
    // A later single write builds on the batch's versions.
    expect((await write('batch-a', 'k', 'a4')).version).toBe(4n);
    const page = await mem<Page>('version-list', 'batch-a', 'k', 10, undefined);
    expect(page.versions.map((v) => v.version)).toEqual([1n, 2n, 3n, 4n]);
  });

  it('checks every request before storing any, and names the bad one', async () => {
    const e = await failure(mem('write-many', [req('batch-c', 'k', 'ok'), req('bad/ns', 'k', 'v')]));
    expect(e.status).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('writes[1]');
    expect((await failure(read('batch-c', 'k'))).status).toBe('NOT_FOUND');
    expect(await mem<Receipt[]>('write-many', [])).toEqual([]);
  });

  it('stores a task-tagged write on its own path, in order, so revert-task undoes it', async () => {
    const tag: Array<[string, string]> = [['cam.task-id', 'job-77']];
    const receipts = await mem<Receipt[]>('write-many', [
      req('batch-d', 'cfg', 'stable'),
      req('batch-d', 'cfg', 'by task', tag),
      req('batch-d', 'other', 'plain'),
    ]);
    expect(receipts.map((r) => r.version)).toEqual([1n, 2n, 1n]);
    expect(await text('batch-d', 'cfg')).toBe('by task');
    expect((await mem<{ reverted: bigint }>('revert-task', 'job-77')).reverted).toBe(1n);
    expect(await text('batch-d', 'cfg')).toBe('stable');
  });

  it('reports a storage failure, and the next write numbers versions from what was stored', async () => {
    await mem('write-many', [req('batch-e', 'k', 'v1')]);
    storageDown = true;
    const e = await failure(
      mem('write-many', [req('batch-e', 'k', 'lost'), req('batch-e', 'k', 'lost too')]),
    );
    storageDown = false;
    expect(e.status).toBe('UNAVAILABLE');
    expect(await text('batch-e', 'k')).toBe('v1');
    const [next] = await mem<Receipt[]>('write-many', [req('batch-e', 'k', 'v2')]);
    expect(next!.version).toBe(2n);
  });
});

describe('revert-task', () => {
  it('puts back what a task changed, leaves later writes of others alone, and is idempotent', async () => {
    await write('work', 'config', 'stable');
    await write('work', 'shared', 'base');
    const tag: Array<[string, string]> = [['cam.task-id', 'job-42']];
    await write('work', 'config', 'experimental', tag);
    await write('work', 'config', 'experimental 2', tag);
    await write('work', 'scratch', 'temp', tag);
    await write('work', 'shared', 'task edit', tag);
    await write('work', 'shared', 'someone else', [], 'dave');
    await write('other', 'x', 'task elsewhere', tag);

    const r = await mem<{ reverted: bigint; skipped: string[] }>('revert-task', 'job-42');
    expect(r.reverted).toBe(3n);
    expect(r.skipped).toEqual(["work/shared: version 3 was written after the task's write"]);
    expect(await text('work', 'config')).toBe('stable');
    const cfg = await read('work', 'config');
    expect(cfg.version).toBe(4n);
    expect(cfg.metadata).toContainEqual(['cam.reverted-task', 'job-42']);
    expect((await failure(read('work', 'scratch'))).status).toBe('NOT_FOUND');
    expect(await text('work', 'shared')).toBe('someone else');
    expect((await failure(read('other', 'x'))).status).toBe('NOT_FOUND');

    expect(await mem('revert-task', 'job-42')).toEqual({ reverted: 0n, skipped: [] });
    expect((await failure(mem('revert-task', ''))).status).toBe('INVALID_ARGUMENT');
  });
});

describe('isolation and hot-swap', () => {
  it('keeps each component to its own partitions', async () => {
    const stored = await h.kv.scan('memory/ns/docs', { prefix: 'h\0', limit: 10 });
    expect(stored.map((e) => e.key)).toEqual(['h\0readme']);
    await h.load({ name: 'memory-b', wasmPath: built.wasmPath, imports: built.imports });
    expect(
      (await failure(h.kernel.call('memory-b', MEM, 'read', ['docs', 'readme', undefined]))).status,
    ).toBe('NOT_FOUND');
    await h.kernel.unload('memory-b');
  });

  it('serves the same data after a hot-swap, and moves its counters across', async () => {
    const health = await h.call<{ checks: Array<[string, string]> }>('memory', LIFE, 'health');
    expect(health.checks).toContainEqual(['kv', 'ok']);
    const rec = await h.kernel.swap('memory', {
      bytes: await readFile(built.wasmPath),
      imports: built.imports,
      memoryMaxPages: 2048,
      config: { 'max-versions': '5' },
      version: '0.1.1',
    });
    expect(rec.result).toBe('swapped');
    expect(await text('docs', 'readme')).toBe('v8');
    const after = await h.call<{ checks: Array<[string, string]> }>('memory', LIFE, 'health');
    const writes = Number(after.checks.find(([k]) => k === 'writes')![1]);
    expect(writes).toBeGreaterThan(0);
    const tooNew = new TextEncoder().encode(JSON.stringify({ format: 7 }));
    expect((await failure(h.call('memory', LIFE, 'import-state', tooNew))).status).toBe('UNIMPLEMENTED');
  });
});
