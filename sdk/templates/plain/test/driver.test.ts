/**
 * Runs against a real in-process kernel. `cam-os driver test` runs this file twice: against the built
 * component (componentize-js) and against the dev path, and both must pass.
 */
import { startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const dec = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));

let driver: TestDriver;
const handle = (op: string, body: unknown) => driver.call<Uint8Array>('handler', 'handle', op, enc(body));

beforeAll(async () => {
  driver = await startDriver(new URL('..', import.meta.url));
});
afterAll(() => driver?.stop());

describe('__NAME__', () => {
  it('is healthy after init', async () => {
    expect(await driver.call('lifecycle', 'health')).toMatchObject({ status: 'serving' });
  });

  it('echoes, stores and reads back', async () => {
    expect(dec(await handle('echo', { hi: 1 }))).toEqual({ hi: 1 });
    await handle('put', { key: 'a', value: 'one' });
    expect(dec(await handle('get', { key: 'a' }))).toEqual({ value: 'one' });
  });

  it('reports typed errors the caller can handle', async () => {
    await expect(handle('get', { key: 'missing' })).rejects.toMatchObject({
      code: 'KERNEL_ERR_GUEST_ERROR',
      detail: { tag: 'not-found' },
    });
    await expect(handle('put', 'not json')).rejects.toMatchObject({ detail: { tag: 'invalid-argument' } });
    await expect(handle('nope', {})).rejects.toMatchObject({ detail: { tag: 'unimplemented' } });
  });

  it('keeps its state across a hot-swap', async () => {
    const before = dec(await handle('stats', {})).calls as number;
    const swap = await driver.reload();
    expect(swap.result).toBe('swapped');
    expect(dec(await handle('stats', {})).calls).toBe(before + 1);
    expect(dec(await handle('get', { key: 'a' }))).toEqual({ value: 'one' });
  });
});
