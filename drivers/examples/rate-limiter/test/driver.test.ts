/**
 * The rate limiter in a real kernel, as a componentize-js component and on the dev path (the same tests in
 * both: `driverModes()` is both when run by the repository's vitest, one when `cam-os driver test` asks).
 */
import { driverModes, startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const T = 1_800_000_000_000;

describe.each(driverModes())('rate-limiter (%s)', (mode) => {
  let d: TestDriver;
  const op = async (name: string, body: unknown) =>
    JSON.parse(
      new TextDecoder().decode(
        await d.call<Uint8Array>('handler', 'handle', name, new TextEncoder().encode(JSON.stringify(body))),
      ),
    );

  beforeAll(async () => {
    d = await startDriver(new URL('..', import.meta.url), {
      mode,
      config: { capacity: '3', 'refill-per-sec': '1' },
    });
  });
  afterAll(() => d?.stop());

  it('allows a burst up to capacity, then refuses with a retry time', async () => {
    for (let i = 0; i < 3; i++)
      expect(await op('take', { agent: 'a', nowMs: T })).toMatchObject({ allowed: true });
    expect(await op('take', { agent: 'a', nowMs: T })).toEqual({
      allowed: false,
      remaining: 0,
      retryAfterMs: 1000,
    });
    // Agents are independent.
    expect(await op('take', { agent: 'b', nowMs: T })).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('refills with time, up to capacity', async () => {
    expect(await op('take', { agent: 'a', nowMs: T + 1500 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(await op('peek', { agent: 'a', nowMs: T + 60_000 })).toEqual({ remaining: 3, capacity: 3 });
  });

  it('keeps per-agent limits durable and buckets across a hot-swap', async () => {
    await op('limit', { agent: 'c', capacity: 1, refillPerSec: 0.5 });
    expect(await op('take', { agent: 'c', nowMs: T })).toMatchObject({ allowed: true });
    expect((await d.reload()).result).toBe('swapped');
    // The bucket moved with the state: c is still empty after the swap.
    expect(await op('take', { agent: 'c', nowMs: T })).toEqual({
      allowed: false,
      remaining: 0,
      retryAfterMs: 2000,
    });
  });

  it('refuses bad requests and bad config with invalid-argument', async () => {
    await expect(op('take', { agent: '', nowMs: T })).rejects.toMatchObject({
      detail: { tag: 'invalid-argument' },
    });
    await expect(op('take', { agent: 'a', nowMs: -1 })).rejects.toMatchObject({
      detail: { tag: 'invalid-argument' },
    });
    await expect(op('fly', {})).rejects.toMatchObject({ detail: { tag: 'unimplemented' } });
    await expect(
      startDriver(new URL('..', import.meta.url), { mode, config: { capacity: 'lots' } }),
    ).rejects.toThrow(/capacity must be a number/);
  });
});
