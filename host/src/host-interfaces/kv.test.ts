/** cam:kernel/kv over a real embedded store: isolation, validation and error mapping. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KvStore, openKv } from '../kv/index.js';
import { GuestFacingError } from './errors.js';
import { KV_INTERFACE, kvHostInterface, scopedPartition } from './kv.js';

let dir: string;
let store: KvStore;
let kv: ReturnType<typeof kvHostInterface>['functions'];
const backendErrors: Array<[string, string]> = [];

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: unknown) => new TextDecoder().decode(b as Uint8Array);
const put = (key: string, value: string) => ({ tag: 'put', val: { key, value: bytes(value) } });

async function refusal(f: () => unknown): Promise<{ tag: string; val?: string }> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(GuestFacingError);
    expect(Object.hasOwn(e as object, 'payload')).toBe(true);
    return (e as GuestFacingError).payload as { tag: string; val?: string };
  }
  throw new Error('expected a kernel-error');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cam-kv-host-'));
  store = await openKv({ backend: 'embedded', path: join(dir, 'kv') });
  kv = kvHostInterface(store, { onBackendError: (c, op) => backendErrors.push([c, op]) }).functions;
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('kv host interface', () => {
  it('is the versioned cam:kernel/kv interface with jco function names', () => {
    const iface = kvHostInterface(store);
    expect(iface.name).toBe(KV_INTERFACE);
    expect(Object.keys(iface.functions).sort()).toEqual(['batch', 'get', 'getMany', 'scan']);
  });

  it('stores each component under its own name, so components never see each other', async () => {
    await kv.batch!('alpha', 'p', [put('k', 'from alpha'), put('j', 'other')]);
    await kv.batch!('beta', 'p', [put('k', 'from beta')]);
    expect(text(await kv.get!('alpha', 'p', 'k'))).toBe('from alpha');
    expect(text(await kv.get!('beta', 'p', 'k'))).toBe('from beta');
    expect(await kv.get!('beta', 'p', 'j')).toBeUndefined();
    expect(text(await store.get('alpha/p', 'k'))).toBe('from alpha');
    // A guest cannot climb out with a crafted partition name.
    expect(await kv.get!('beta', '../alpha/p', 'k')).toBeUndefined();
    expect(await kv.get!('alp', 'ha/p', 'k')).toBeUndefined();
  });

  it('reads many, scans with prefix, cursor and direction, and applies deletes', async () => {
    await kv.batch!('alpha', 's', [put('a1', '1'), put('a2', '2'), put('a3', '3'), put('b1', 'x')]);
    const many = (await kv.getMany!('alpha', 's', ['a2', 'zz', 'a1'])) as Array<Uint8Array | undefined>;
    expect(many.map((v) => (v ? text(v) : undefined))).toEqual(['2', undefined, '1']);
    const page = (await kv.scan!('alpha', 's', 'a', 'a1', 10, false)) as Array<{ key: string }>;
    expect(page.map((e) => e.key)).toEqual(['a2', 'a3']);
    const rev = (await kv.scan!('alpha', 's', '', undefined, 2, true)) as Array<{ key: string }>;
    expect(rev.map((e) => e.key)).toEqual(['b1', 'a3']);
    await kv.batch!('alpha', 's', [{ tag: 'delete', val: 'a2' }]);
    expect(await kv.get!('alpha', 's', 'a2')).toBeUndefined();
  });

  it('maps long partitions (and ones starting with ~) to a hash, one-to-one', async () => {
    const long = 'p'.repeat(256);
    expect(scopedPartition('alpha', long)).toMatch(/^alpha\/~[0-9a-f]{64}$/);
    expect(scopedPartition('alpha', '~x')).toMatch(/^alpha\/~[0-9a-f]{64}$/);
    expect(scopedPartition('alpha', '~x')).not.toBe(scopedPartition('alpha', 'x'));
    await kv.batch!('alpha', long, [put('k', 'long')]);
    expect(text(await kv.get!('alpha', long, 'k'))).toBe('long');
    expect(await kv.get!('alpha', 'p'.repeat(255), 'k')).toBeUndefined();
  });

  it('refuses bad names and values with invalid-argument, and sizes with resource-exhausted', async () => {
    expect(await refusal(() => kv.get!('alpha', '', 'k'))).toEqual({
      tag: 'invalid-argument',
      val: 'partition must not be empty',
    });
    expect((await refusal(() => kv.get!('alpha', 'p'.repeat(257), 'k'))).tag).toBe('invalid-argument');
    expect((await refusal(() => kv.get!('alpha', 'a\0b', 'k'))).tag).toBe('invalid-argument');
    expect((await refusal(() => kv.get!('alpha', 'p', 'k'.repeat(1025)))).tag).toBe('invalid-argument');
    expect((await refusal(() => kv.get!('alpha', 'p', '\ud800'))).val).toContain('not valid UTF-8');
    expect((await refusal(() => kv.get!('alpha', 'p', 7))).val).toBe('key must be a string, got number 7');
    expect(
      (await refusal(() => kv.batch!('alpha', 'p', [{ tag: 'put', val: { key: 'k', value: 'str' } }]))).val,
    ).toBe("ops[0] value must be bytes, got 'str'");
    expect((await refusal(() => kv.batch!('alpha', 'p', [{ tag: 'merge', val: 'k' }]))).tag).toBe(
      'invalid-argument',
    );
    const huge = { tag: 'put', val: { key: 'k', value: new Uint8Array(16 * 1024 * 1024 + 1) } };
    expect((await refusal(() => kv.batch!('alpha', 'p', [huge]))).tag).toBe('resource-exhausted');
    const tooMany = Array.from({ length: 10_001 }, (_, i) => put(`k${i}`, 'v'));
    expect((await refusal(() => kv.batch!('alpha', 'p', tooMany))).tag).toBe('resource-exhausted');
    const keys = Array.from({ length: 10_001 }, (_, i) => `k${i}`);
    expect((await refusal(() => kv.getMany!('alpha', 'p', keys))).tag).toBe('resource-exhausted');
    expect((await refusal(() => kv.scan!('alpha', 'p', '', undefined, 0, false))).tag).toBe(
      'invalid-argument',
    );
    expect((await refusal(() => kv.scan!('alpha', 'p', '', undefined, 10, 'yes'))).tag).toBe(
      'invalid-argument',
    );
    // A refused batch applied nothing, including its valid ops.
    expect(
      (await refusal(() => kv.batch!('alpha', 'p', [put('fresh', 'v'), { tag: 'put', val: null }]))).tag,
    ).toBe('invalid-argument');
    expect(await kv.get!('alpha', 'p', 'fresh')).toBeUndefined();
  });

  it('reports a closed or failing store as unavailable, without host paths', async () => {
    const other = await openKv({ backend: 'embedded', path: join(dir, 'closed') });
    await other.close();
    const closed = kvHostInterface(other, {
      onBackendError: (c, op) => backendErrors.push([c, op]),
    }).functions;
    const e = await refusal(() => closed.get!('alpha', 'p', 'k'));
    expect(e.tag).toBe('unavailable');
    expect(e.val).not.toContain(dir);
    expect(backendErrors).toContainEqual(['alpha', 'get']);
  });

  it('traps (plain Error, no payload) on a component name only the kernel could have got wrong', () => {
    expect(() => scopedPartition('Not A Name', 'p')).toThrow(/invalid component name/);
  });
});
