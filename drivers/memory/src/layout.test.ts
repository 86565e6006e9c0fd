/** The storage rules of context memory, as plain functions (the component runs the same code in wasm). */
import { describe, expect, it } from 'vitest';
import {
  appendVersion,
  checkKey,
  checkMaxVersions,
  checkMetadata,
  checkNamespace,
  EMPTY_HEAD,
  type Head,
  type KvOp,
  metaKey,
  parseSnapshotId,
  planRestore,
  type SnapshotRecord,
  snapshotId,
} from './layout.js';

const put = (key: string, value: unknown): KvOp => ({
  tag: 'put',
  val: { key, value: new TextEncoder().encode(JSON.stringify(value)) },
});
const putBytes = (key: string, value: Uint8Array): KvOp => ({ tag: 'put', val: { key, value } });
const meta = { t: 1, a: 'me', h: 'ab', s: 1, m: [] as Array<[string, string]> };
const describeOps = (ops: KvOp[]) =>
  ops.map((o) => `${o.tag} ${(o.tag === 'put' ? o.val.key : o.val).replaceAll('\0', '|')}`);

function thrown(f: () => unknown): { tag: string; val: string } {
  try {
    f();
  } catch (e) {
    return e as { tag: string; val: string };
  }
  throw new Error('expected a kernel-error');
}

describe('appendVersion', () => {
  it('writes meta and data of version n+1 and prunes beyond the retention limit', () => {
    const head: Head = { ...EMPTY_HEAD };
    const a = appendVersion(head, 'k', meta, new Uint8Array([1]), 2, put, putBytes);
    expect(a.version).toBe(1);
    expect(describeOps(a.ops)).toEqual(['put m|k|0000000000000001', 'put d|k|0000000000000001']);
    appendVersion(head, 'k', meta, new Uint8Array([2]), 2, put, putBytes);
    const c = appendVersion(head, 'k', meta, new Uint8Array([3]), 2, put, putBytes);
    expect(describeOps(c.ops).slice(2)).toEqual([
      'delete m|k|0000000000000001',
      'delete d|k|0000000000000001',
    ]);
    expect(head).toEqual({ n: 3, o: 2, l: 3, ld: 3 });
  });

  it('keeps pinned versions, and pins the bytes a referencing version points at', () => {
    const head: Head = { n: 3, o: 1, l: 3, ld: 3, p: [1] };
    const r = appendVersion(head, 'k', { ...meta, dv: 2 }, undefined, 3, put, putBytes);
    // No data of its own; version 2's bytes are now needed by version 4.
    expect(describeOps(r.ops)).toEqual(['put m|k|0000000000000004']);
    expect(head).toEqual({ n: 4, o: 2, l: 4, ld: 2, p: [1, 2] });
    const s = appendVersion(head, 'k', meta, new Uint8Array([5]), 3, put, putBytes);
    // Version 2 leaves the window but is pinned: nothing is deleted.
    expect(describeOps(s.ops)).toEqual(['put m|k|0000000000000005', 'put d|k|0000000000000005']);
    expect(head.o).toBe(3);
  });

  it('prunes a bounded number of versions per write after the limit was lowered', () => {
    const head: Head = { n: 500, o: 1, l: 500, ld: 500 };
    const r = appendVersion(head, 'k', meta, new Uint8Array(), 1, put, putBytes);
    expect(r.ops.filter((o) => o.tag === 'delete')).toHaveLength(128);
    expect(head.o).toBe(65);
  });
});

describe('planRestore', () => {
  const snap: SnapshotRecord = {
    id: 'ns@1',
    namespace: 'ns',
    t: 0,
    a: 'me',
    description: '',
    keys: [
      ['same', 2, 2, 2],
      ['changed', 3, 3, 3],
      ['gone-later', 1, 1, 1],
      ['was-removed', 4, 0, 0],
    ],
  };

  it('rewrites changed keys, removes keys not live at snapshot time, and skips identical ones', () => {
    const now = new Map<string, Head>([
      ['same', { n: 2, o: 1, l: 2, ld: 2 }],
      ['changed', { n: 5, o: 1, l: 5, ld: 5 }],
      ['gone-later', { n: 1, o: 1, l: 0, ld: 0 }],
      ['was-removed', { n: 4, o: 1, l: 0, ld: 0 }],
      ['new', { n: 1, o: 1, l: 1, ld: 1 }],
    ]);
    expect(planRestore(snap, now, true)).toEqual({
      rewrite: [
        ['changed', 3, 3],
        ['gone-later', 1, 1],
      ],
      remove: ['new'],
    });
    const conflict = planRestore(snap, now, false);
    expect(conflict).toEqual({ conflict: "key 'changed' is at version 5, newer than the snapshot's 3" });
  });

  it('does not call a key newer when its content already equals the snapshot (restoring twice)', () => {
    const restored = new Map<string, Head>([
      ['same', { n: 2, o: 1, l: 2, ld: 2 }],
      ['changed', { n: 6, o: 1, l: 6, ld: 3 }],
      ['gone-later', { n: 2, o: 1, l: 2, ld: 1 }],
      ['was-removed', { n: 4, o: 1, l: 0, ld: 0 }],
    ]);
    expect(planRestore(snap, restored, false)).toEqual({ rewrite: [], remove: [] });
  });
});

describe('validation', () => {
  it('checks namespaces and keys', () => {
    expect(checkNamespace('agents.ctx-1_A')).toBe('agents.ctx-1_A');
    expect(thrown(() => checkNamespace('a/b')).tag).toBe('invalid-argument');
    expect(thrown(() => checkNamespace('')).tag).toBe('invalid-argument');
    expect(thrown(() => checkNamespace('n'.repeat(129))).val).toContain('128 bytes');
    expect(checkKey('any key/with ünïcode')).toBe('any key/with ünïcode');
    expect(thrown(() => checkKey('a\0b')).val).toContain('NUL');
    expect(thrown(() => checkKey('é'.repeat(257))).val).toContain('512 bytes');
  });

  it('collapses repeated metadata keys, extracts the task id, and bounds metadata', () => {
    const r = checkMetadata([
      ['a', '1'],
      ['cam.task-id', 't-7'],
      ['a', '2'],
    ]);
    expect(r).toEqual({
      metadata: [
        ['a', '2'],
        ['cam.task-id', 't-7'],
      ],
      task: 't-7',
    });
    const many = Array.from({ length: 257 }, (_, i): [string, string] => [`k${i}`, 'v']);
    expect(thrown(() => checkMetadata(many)).tag).toBe('resource-exhausted');
    expect(thrown(() => checkMetadata([['big', 'x'.repeat(17_000)]])).tag).toBe('resource-exhausted');
    expect(thrown(() => checkMetadata([['', 'x']])).tag).toBe('invalid-argument');
    expect(thrown(() => checkMetadata([['cam.task-id', '']])).tag).toBe('invalid-argument');
    const wide = Array.from({ length: 5 }, (_, i): [string, string] => [`k${i}`, 'x'.repeat(4000)]);
    expect(thrown(() => checkMetadata(wide)).tag).toBe('resource-exhausted');
  });

  it('parses snapshot ids and the retention setting', () => {
    expect(parseSnapshotId(snapshotId('a.b-c', 12))).toEqual({ namespace: 'a.b-c', seq: 12 });
    expect(thrown(() => parseSnapshotId('nope')).tag).toBe('invalid-argument');
    expect(thrown(() => parseSnapshotId('ns@0')).tag).toBe('invalid-argument');
    expect(checkMaxVersions(' 5 ')).toBe(5);
    expect(thrown(() => checkMaxVersions('0')).tag).toBe('invalid-argument');
    expect(thrown(() => checkMaxVersions('lots')).tag).toBe('invalid-argument');
    expect(metaKey('k', 255)).toBe('m\0k\u0000' + '00000000000000ff');
  });
});
