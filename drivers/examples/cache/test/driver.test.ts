/**
 * The LRU cache in a real kernel, as a componentize-js component and on the dev path (the same tests).
 */
import { driverModes, startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe.each(driverModes())('cache (%s)', (mode) => {
  let d: TestDriver;
  const op = (name: string, value = '') => d.call<Uint8Array>('handler', 'handle', name, enc(value));
  const stats = async () => JSON.parse(dec(await op('stats')));

  beforeAll(async () => {
    d = await startDriver(new URL('..', import.meta.url), {
      mode,
      config: { 'max-entries': '3', 'max-bytes': '64' },
    });
  });
  afterAll(() => d?.stop());

  it('stores, hits and misses', async () => {
    await op('set:a', 'alpha');
    expect(dec(await op('get:a'))).toBe('alpha');
    await expect(op('get:zzz')).rejects.toMatchObject({
      code: 'KERNEL_ERR_GUEST_ERROR',
      detail: { tag: 'not-found' },
    });
    expect(await stats()).toMatchObject({ entries: 1, bytes: 5, hits: 1, misses: 1 });
  });

  it('evicts the least recently used entry by count and by bytes', async () => {
    await op('set:b', 'bravo');
    await op('set:c', 'charlie');
    await op('get:a'); // a is now the most recent; b the least
    await op('set:d', 'delta');
    await expect(op('get:b')).rejects.toMatchObject({ detail: { tag: 'not-found' } });
    expect(dec(await op('get:a'))).toBe('alpha');
    await op('set:big', 'x'.repeat(60));
    expect(await stats()).toMatchObject({ entries: 1, bytes: 60 });
    await expect(op('set:huge', 'x'.repeat(65))).rejects.toMatchObject({
      detail: { tag: 'resource-exhausted' },
    });
  });

  it('keeps entries, LRU order and counters across a hot-swap', async () => {
    await op('delete:big');
    await op('set:x', '1');
    await op('set:y', '2');
    await op('set:z', '3');
    await op('get:x');
    const before = await stats();
    expect((await d.reload()).result).toBe('swapped');
    expect(await stats()).toEqual(before);
    await op('set:w', '4'); // evicts y, the least recent after x was read
    await expect(op('get:y')).rejects.toMatchObject({ detail: { tag: 'not-found' } });
    expect(dec(await op('get:x'))).toBe('1');
  });

  it('refuses bad ops and bad config', async () => {
    await expect(op('get:')).rejects.toMatchObject({ detail: { tag: 'invalid-argument' } });
    await expect(op('flush')).rejects.toMatchObject({ detail: { tag: 'unimplemented' } });
    await expect(
      startDriver(new URL('..', import.meta.url), { mode, config: { 'max-entries': '0' } }),
    ).rejects.toThrow(/max-entries must be a positive integer/);
    await expect(
      startDriver(new URL('..', import.meta.url), { mode, config: { colour: 'blue' } }),
    ).rejects.toThrow(/unknown config key 'colour'/);
  });
});
