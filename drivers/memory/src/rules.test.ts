/**
 * The storage rules of context memory that index.test.ts does not reach, checked on the component through
 * `kernel.call` (they were unit tests of the TypeScript component's layout module): bounded pruning after
 * the retention limit is lowered, restore planning, argument checks and their limits, metadata collapsing,
 * snapshot ids and the retention setting, the stored key format. Also what is particular to the compiled
 * component: values at the size limits, the head cache past its 10,000 entries, and state import edge cases.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError } from '@cam-os/host/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import type { BuildResult } from '../../../sdk/src/build/index.js';
import { buildMemory } from './build.js';

const MEM = 'cam:kernel/memory';
const LIFE = 'cam:kernel/lifecycle';

interface Entry {
  data: Uint8Array;
  version: bigint;
  metadata: Array<[string, string]>;
}
interface Page {
  versions: Array<{ version: bigint }>;
  hasMore: boolean;
}

let outDir: string;
let built: BuildResult;
let h: ComponentHarness;
let loaded = 0;

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A fresh instance under its own name (so its own partitions), with `config`. */
async function instance(config: Record<string, string> = {}): Promise<string> {
  const name = `mem-${++loaded}`;
  await h.load({ name, wasmPath: built.wasmPath, imports: built.imports, config });
  return name;
}

const call = <T = unknown>(c: string, fn: string, ...args: unknown[]) =>
  h.kernel.call(c, MEM, fn, args) as Promise<T>;
const write = (c: string, ns: string, key: string, value: string, md: Array<[string, string]> = []) =>
  call<{ version: bigint }>(c, 'write', ns, key, enc(value), md, 'tester');
const read = (c: string, ns: string, key: string, version?: number) =>
  call<Entry>(c, 'read', ns, key, version === undefined ? undefined : BigInt(version));

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

const many = (ns: string, key: (i: number) => string, n: number, md: Array<[string, string]> = []) =>
  Array.from({ length: n }, (_, i) => ({
    namespace: ns,
    key: key(i),
    data: enc(`value ${i}`),
    metadata: md,
    author: 'tester',
  }));

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-mem-rules-'));
  built = await buildMemory(outDir);
  h = await ComponentHarness.start({ startTimeMs: 1_800_000_000_000 });
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await rm(outDir, { recursive: true, force: true });
});

describe('retention', () => {
  it('prunes at most 64 versions per write after the limit was lowered, and stores keys as 16 hex digits', async () => {
    const c = await instance({ 'max-versions': '1000' });
    await call(
      c,
      'write-many',
      many('p', () => 'k', 500),
    );
    await h.kernel.swap(c, {
      bytes: await readFile(built.wasmPath),
      imports: built.imports,
      memoryMaxPages: 2048,
      config: { 'max-versions': '1' },
      version: '0.1.1',
    });
    expect((await write(c, 'p', 'k', 'newest')).version).toBe(501n);
    expect((await failure(read(c, 'p', 'k', 64))).message).toBe(
      "version 64 of 'k' was pruned (retention keeps the newest 1)",
    );
    expect(dec((await read(c, 'p', 'k', 65)).data)).toBe('value 64');
    const metas = await h.kv.scan(`${c}/ns/p`, { prefix: 'm\0k\0', limit: 10_000 });
    expect(metas).toHaveLength(501 - 64);
    expect(metas[0]!.key).toBe(`m\0k\0${(65).toString(16).padStart(16, '0')}`);
    expect(metas.at(-1)!.key).toBe('m\0k\u0000' + '00000000000001f5');
    await write(c, 'p', 'k', 'one more');
    const page = await call<Page>(c, 'version-list', 'p', 'k', 1, undefined);
    expect(page.versions[0]!.version).toBe(129n);
  });

  it('keeps the bytes a restored version points at after its own version leaves the window', async () => {
    const c = await instance({ 'max-versions': '2' });
    await write(c, 'r', 'k', 'original');
    const id = await call<string>(c, 'snapshot', 'r', '', 'tester');
    for (let i = 0; i < 3; i++) await write(c, 'r', 'k', `churn ${i}`);
    await call(c, 'restore', id, true); // version 5, data of version 1
    for (let i = 0; i < 3; i++) await write(c, 'r', 'k', `more ${i}`); // version 5 is pruned
    expect((await failure(read(c, 'r', 'k', 5))).message).toContain('was pruned');
    expect(dec((await read(c, 'r', 'k', 1)).data)).toBe('original');
    const head = await h.kv.get(`${c}/ns/r`, 'h\0k');
    expect(JSON.parse(dec(head!))).toEqual({ n: 8, o: 7, l: 8, ld: 8, p: [1] });
  });
});

describe('restore planning', () => {
  it('rewrites changed keys, brings back keys removed since, leaves keys removed at snapshot time', async () => {
    const c = await instance();
    await write(c, 'ns', 'same', 's1');
    await write(c, 'ns', 'changed', 'c1');
    await write(c, 'ns', 'gone-later', 'g1', [['cam.task-id', 'later']]);
    await write(c, 'ns', 'was-removed', 'w1', [['cam.task-id', 'remover']]);
    await call(c, 'revert-task', 'remover'); // not live when the snapshot is taken
    const id = await call<string>(c, 'snapshot', 'ns', 'plan', 'tester');
    await write(c, 'ns', 'changed', 'c2');
    await call(c, 'revert-task', 'later'); // live in the snapshot, removed since
    await write(c, 'ns', 'new', 'n1');
    const conflict = await failure(call(c, 'restore', id, false));
    expect(conflict.message).toBe(
      `namespace 'ns' has newer data than snapshot ${id}: key 'changed' is at version 2, newer than the snapshot's 1; restore with force to overwrite`,
    );
    expect(await call(c, 'restore', id, true)).toEqual({ namespace: 'ns', restoredItems: 3n });
    expect(dec((await read(c, 'ns', 'changed')).data)).toBe('c1');
    expect(dec((await read(c, 'ns', 'gone-later')).data)).toBe('g1');
    expect((await read(c, 'ns', 'same')).version).toBe(1n);
    expect((await failure(read(c, 'ns', 'new'))).status).toBe('NOT_FOUND');
    expect((await failure(read(c, 'ns', 'was-removed'))).status).toBe('NOT_FOUND');
    expect(await call(c, 'restore', id, false)).toEqual({ namespace: 'ns', restoredItems: 0n });
  });

  it("names a key the snapshot does not have as newer than the snapshot's none", async () => {
    const c = await instance();
    await write(c, 'ns', 'a', 'a1');
    const id = await call<string>(c, 'snapshot', 'ns', '', 'tester');
    await write(c, 'ns', 'b', 'b1');
    expect((await failure(call(c, 'restore', id, false))).message).toContain(
      "key 'b' is at version 1, newer than the snapshot's none",
    );
  });
});

describe('argument checks', () => {
  it('checks namespaces and keys by their UTF-8 length', async () => {
    const c = await instance();
    expect((await write(c, 'agents.ctx-1_A', 'k', 'v')).version).toBe(1n);
    const bad = async (ns: string, key: string) => (await failure(write(c, ns, key, 'v'))).message;
    expect(await bad('a/b', 'k')).toBe("namespace 'a/b' may only contain A-Z a-z 0-9 . _ -");
    expect(await bad('', 'k')).toBe('namespace must not be empty');
    expect(await bad('ü', 'k')).toBe("namespace 'ü' may only contain A-Z a-z 0-9 . _ -");
    expect(await bad('n'.repeat(129), 'k')).toBe('namespace is longer than 128 bytes');
    expect((await write(c, 'n'.repeat(128), 'k', 'v')).version).toBe(1n);
    expect((await write(c, 'ns', 'any key/with ünïcode', 'v')).version).toBe(1n);
    expect(await bad('ns', 'a\0b')).toBe('key must not contain NUL');
    expect(await bad('ns', '')).toBe('key must not be empty');
    expect(await bad('ns', 'é'.repeat(257))).toBe('key is longer than 512 bytes');
    expect((await write(c, 'ns', 'é'.repeat(256), 'v')).version).toBe(1n);
    expect((await failure(call(c, 'write', 'ns', 'k', enc('v'), [], 'a'.repeat(257)))).message).toBe(
      'author is longer than 256 bytes',
    );
    expect((await failure(call(c, 'snapshot', 'ns', 'd'.repeat(4097), 'x'))).message).toBe(
      'description is longer than 4096 bytes',
    );
    expect((await failure(call(c, 'revert-task', 't\0x'))).message).toBe('task id must not contain NUL');
    expect((await failure(call(c, 'revert-task', 't'.repeat(257)))).message).toBe(
      'task id is longer than 256 bytes',
    );
  });

  it('accepts a value of exactly 4 MiB and refuses one byte more', async () => {
    const c = await instance();
    const big = new Uint8Array(4 * 1024 * 1024).fill(7);
    big[big.length - 1] = 9;
    await call(c, 'write', 'big', 'k', big, [], 'tester');
    const back = await read(c, 'big', 'k');
    expect(back.data.length).toBe(big.length);
    expect(back.data[big.length - 1]).toBe(9);
    const e = await failure(call(c, 'write', 'big', 'k', new Uint8Array(big.length + 1), [], 'tester'));
    expect(e.message).toBe('data is 4194305 bytes, at most 4194304 are allowed');
  });

  it('collapses repeated metadata keys (last value, first position) and takes the task id from them', async () => {
    const c = await instance();
    await write(c, 'md', 'k', 'before');
    await write(c, 'md', 'k', 'by t-7', [
      ['a', '1'],
      ['cam.task-id', 't-7'],
      ['a', '2'],
    ]);
    expect((await read(c, 'md', 'k')).metadata).toEqual([
      ['a', '2'],
      ['cam.task-id', 't-7'],
    ]);
    expect((await call<{ reverted: bigint }>(c, 'revert-task', 't-7')).reverted).toBe(1n);
    expect(dec((await read(c, 'md', 'k')).data)).toBe('before');
  });

  it('bounds metadata by entries and bytes, and checks the task id in it', async () => {
    const c = await instance();
    const refuse = async (md: Array<[string, string]>) => {
      const e = await failure(write(c, 'md', 'k', 'v', md));
      return `${e.status} ${e.message}`;
    };
    const entries = Array.from({ length: 257 }, (_, i): [string, string] => [`k${i}`, 'v']);
    expect(await refuse(entries)).toBe(
      'RESOURCE_EXHAUSTED metadata has 257 entries, at most 256 are allowed',
    );
    expect(await refuse([['big', 'x'.repeat(17_000)]])).toBe(
      'RESOURCE_EXHAUSTED metadata is 17003 bytes, at most 16384 are allowed',
    );
    const wide = Array.from({ length: 5 }, (_, i): [string, string] => [`k${i}`, 'x'.repeat(4000)]);
    expect(await refuse(wide)).toContain('RESOURCE_EXHAUSTED metadata is 20010 bytes');
    expect(await refuse([['', 'x']])).toBe('INVALID_ARGUMENT metadata key must not be empty');
    expect(await refuse([['cam.task-id', '']])).toBe(
      'INVALID_ARGUMENT metadata cam.task-id must not be empty',
    );
    expect(await refuse([['cam.task-id', 'a\0b']])).toBe(
      'INVALID_ARGUMENT metadata cam.task-id must not contain NUL',
    );
    expect(await refuse([['cam.task-id', 't'.repeat(257)]])).toBe(
      'INVALID_ARGUMENT metadata cam.task-id is longer than 256 bytes',
    );
    expect((await write(c, 'md', 'k', 'v', entries.slice(0, 256))).version).toBe(1n);
  });

  it('parses snapshot ids as <namespace>@<number>', async () => {
    const c = await instance();
    const message = async (id: string) => (await failure(call(c, 'restore', id, true))).message;
    expect(await message('a.b-c@12')).toBe('no snapshot a.b-c@12');
    expect(await message('nope')).toBe("snapshot id 'nope' is not of the form <namespace>@<number>");
    expect(await message('ns@0')).toBe("snapshot id 'ns@0' is not of the form <namespace>@<number>");
    expect(await message('ns@01')).toContain('is not of the form');
    expect(await message('@1')).toContain('is not of the form');
    expect(await message('n/s@1')).toContain('is not of the form');
    expect(await message('ns@12345678901234567')).toContain('is not of the form');
    // At most 80 UTF-16 code units of the id are quoted; a cut surrogate pair becomes U+FFFD.
    expect(await message(`${'x'.repeat(79)}💾 and more`)).toBe(
      `snapshot id '${'x'.repeat(79)}\ufffd' is not of the form <namespace>@<number>`,
    );
  });

  it('takes max-versions from 1 to 1,000,000, with surrounding whitespace', async () => {
    const c = await instance({ 'max-versions': ' 5\u00a0' });
    const health = (await h.kernel.call(c, LIFE, 'health', [])) as { checks: Array<[string, string]> };
    expect(health.checks).toContainEqual(['max-versions', '5']);
    for (const [value, shown] of [
      ['0', '0'],
      ['lots', 'lots'],
      ['1000001', '1000001'],
      ['12345678901234567890123', '12345678901234567890'],
    ]) {
      const e = await failure(
        h.load({
          name: `bad-${++loaded}`,
          wasmPath: built.wasmPath,
          imports: built.imports,
          config: { 'max-versions': value! },
        }),
      );
      expect(e.message).toContain(`max-versions must be an integer from 1 to 1000000, got '${shown}'`);
    }
    const unknown = await failure(
      h.load({
        name: `bad-${++loaded}`,
        wasmPath: built.wasmPath,
        imports: built.imports,
        config: { x: '1' },
      }),
    );
    expect(unknown.message).toContain("unknown config key 'x' (known: max-versions)");
  });
});

describe('write-many limits', () => {
  it('refuses more than 10,000 requests', async () => {
    const c = await instance();
    const e = await failure(
      call(
        c,
        'write-many',
        many('wm', (i) => `k${i}`, 10_001),
      ),
    );
    expect(`${e.status} ${e.message}`).toBe(
      'RESOURCE_EXHAUSTED write-many takes at most 10000 writes, got 10001',
    );
  });

  it('serves keys evicted from the head cache (10,000 entries) from storage', async () => {
    const c = await instance();
    for (let b = 0; b < 11; b++)
      await call(
        c,
        'write-many',
        many('cache', (i) => `k${b * 1000 + i}`, 1000),
      );
    // k0 was cached first and evicted by the 10,001st key: its head comes from kv again.
    expect((await write(c, 'cache', 'k0', 'second')).version).toBe(2n);
    expect(dec((await read(c, 'cache', 'k0', 1)).data)).toBe('value 0');
    expect(dec((await read(c, 'cache', 'k10999')).data)).toBe('value 999');
  });
});

describe('state', () => {
  it('imports what JSON.parse reads: the last of repeated keys, a byte order mark, numbers only', async () => {
    const c = await instance();
    const health = async () =>
      Object.fromEntries(
        ((await h.kernel.call(c, LIFE, 'health', [])) as { checks: Array<[string, string]> }).checks,
      );
    const load = (text: string | Uint8Array) =>
      h.kernel.call(c, LIFE, 'import-state', [typeof text === 'string' ? enc(text) : text]);
    await load('\ufeff {"format": 0.5, "writes": 2, "writes": 3, "reads": "7", "x": [{"y": null}]} ');
    expect(await health()).toMatchObject({ writes: '3', reads: '0' });
    await load('{"format":1,"writes":1.5e0,"reads":-2}');
    expect(await health()).toMatchObject({ writes: '4.5', reads: '-2' });
    const message = async (text: string | Uint8Array) => (await failure(load(text))).message;
    expect(await message('{"format":"1"}')).toBe('state has no format number');
    expect(await message('[1]')).toBe('state has no format number');
    expect(await message('{"format":1,}')).toBe('state is not the JSON this component exports');
    expect(await message(new Uint8Array([0x7b, 0xff, 0x7d]))).toBe(
      'state is not the JSON this component exports',
    );
    expect(await message('{"format":1e3}')).toBe('state format 1000 is newer than 1');
    expect(await message('{"format":1.25}')).toBe('state format 1.25 is newer than 1');
    expect(await message(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)).toBe('state has no format number');
    const exported = JSON.parse(dec((await h.kernel.call(c, LIFE, 'export-state', [])) as Uint8Array));
    expect(exported).toEqual({ format: 1, writes: 4.5, reads: -2 });
    // Beyond 2^53, numbers print as JavaScript prints them: shortest round-trip digits.
    await load('{"format":1,"writes":1152921504606846976,"reads":1e21}');
    expect(await health()).toMatchObject({ writes: '1152921504606847000', reads: '1e+21' });
  });
});
