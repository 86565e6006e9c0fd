/** cam:kernel/clock and cam:kernel/digest. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLOCK_INTERFACE, clockHostInterface, ManualClock } from './clock.js';
import { DIGEST_INTERFACE, digestHostInterface } from './digest.js';

describe('clock host interface', () => {
  it('answers unix ms as a bigint from an injectable time source', () => {
    const clock = new ManualClock(1_800_000_000_123.7);
    const iface = clockHostInterface({ now: clock.now });
    expect(iface.name).toBe(CLOCK_INTERFACE);
    expect(iface.functions.nowMs!('c')).toBe(1_800_000_000_123n);
    clock.advance(1000);
    expect(iface.functions.nowMs!('c')).toBe(1_800_000_001_123n);
    const real = clockHostInterface().functions.nowMs!('c') as bigint;
    expect(Math.abs(Number(real) - Date.now())).toBeLessThan(60_000);
  });

  it('traps rather than answer with a broken time source', () => {
    expect(() => clockHostInterface({ now: () => Number.NaN }).functions.nowMs!('c')).toThrow(/time source/);
  });
});

describe('digest host interface', () => {
  it('computes sha-256 on the host', () => {
    const iface = digestHostInterface();
    expect(iface.name).toBe(DIGEST_INTERFACE);
    const data = new TextEncoder().encode('hello');
    const d = iface.functions.sha256!('c', data) as Uint8Array;
    expect(d).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(d).toString('hex')).toBe(createHash('sha256').update('hello').digest('hex'));
    expect(Buffer.from(iface.functions.sha256!('c', new Uint8Array()) as Uint8Array).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('traps on a value that is not bytes (sha256 has no error channel)', () => {
    expect(() => digestHostInterface().functions.sha256!('c', 'hello')).toThrow(TypeError);
  });
});
