/**
 * Runs against a real in-process kernel. `cam-os driver test` runs this file twice: against the built
 * component (componentize-js) and against the dev path, and both must pass.
 */
import { createHash } from 'node:crypto';
import { startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let driver: TestDriver;
const enc = (s: string) => new TextEncoder().encode(s);
const mem = <T = unknown>(fn: string, ...args: unknown[]) => driver.call<T>('memory', fn, ...args);
interface Entry {
  data: Uint8Array;
  version: bigint;
  hash: string;
}

beforeAll(async () => {
  driver = await startDriver(new URL('..', import.meta.url), { startTimeMs: 1_800_000_000_000 });
});
afterAll(() => driver?.stop());

describe('__NAME__', () => {
  it('writes versions and reads latest or a given one', async () => {
    expect(await mem('write', 'ns', 'k', enc('one'), [], 'alice')).toMatchObject({ version: 1n });
    const r2 = await mem<{ version: bigint; hash: string }>('write', 'ns', 'k', enc('two'), [], 'bob');
    expect(r2.version).toBe(2n);
    expect(r2.hash).toBe(createHash('sha256').update('two').digest('hex'));
    expect(new TextDecoder().decode((await mem<Entry>('read', 'ns', 'k', undefined)).data)).toBe('two');
    expect(new TextDecoder().decode((await mem<Entry>('read', 'ns', 'k', 1n)).data)).toBe('one');
    await expect(mem('read', 'ns', 'absent', undefined)).rejects.toMatchObject({
      detail: { tag: 'not-found' },
    });
  });

  it('lists versions page by page', async () => {
    const p1 = await mem<{ versions: Array<{ version: bigint }>; hasMore: boolean; nextToken?: string }>(
      'version-list',
      'ns',
      'k',
      1,
      undefined,
    );
    expect(p1.versions.map((v) => v.version)).toEqual([1n]);
    expect(p1.hasMore).toBe(true);
    const p2 = await mem<{ versions: Array<{ version: bigint }>; hasMore: boolean }>(
      'version-list',
      'ns',
      'k',
      10,
      BigInt(p1.nextToken!),
    );
    expect(p2.versions.map((v) => v.version)).toEqual([2n]);
    expect(p2.hasMore).toBe(false);
  });

  it('writes many in order, checking every request first', async () => {
    const req = (key: string, v: string) => ({
      namespace: 'many',
      key,
      data: enc(v),
      metadata: [],
      author: 'dan',
    });
    const r = await mem<Array<{ version: bigint }>>('write-many', [
      req('a', '1'),
      req('a', '2'),
      req('b', '1'),
    ]);
    expect(r.map((x) => x.version)).toEqual([1n, 2n, 1n]);
    await expect(mem('write-many', [req('c', '1'), req('bad/key', '1')])).rejects.toThrow(/writes\[1\]/);
    await expect(mem('read', 'many', 'c', undefined)).rejects.toThrow();
  });

  it('snapshots and restores a namespace; refuses to overwrite newer data without force', async () => {
    const id = await mem<string>('snapshot', 'ns', 'before three', 'alice');
    await mem('write', 'ns', 'k', enc('three'), [], 'carol');
    await expect(mem('restore', id, false)).rejects.toMatchObject({ detail: { tag: 'failed-precondition' } });
    expect(await mem('restore', id, true)).toEqual({ namespace: 'ns', restoredItems: 1n });
    expect((await mem<Entry>('read', 'ns', 'k', undefined)).version).toBe(2n);
  });

  it('reverts the writes of a task', async () => {
    await mem('write', 'ns', 't', enc('by task'), [['task-id', 'job-1']], 'agent');
    expect(await mem('revert-task', 'job-1')).toEqual({ reverted: 1n, skipped: [] });
    await expect(mem('read', 'ns', 't', undefined)).rejects.toMatchObject({ detail: { tag: 'not-found' } });
  });

  it('keeps data and state across a hot-swap', async () => {
    expect((await driver.reload()).result).toBe('swapped');
    expect((await mem<Entry>('read', 'ns', 'k', undefined)).version).toBe(2n);
  });
});
