/** The dev path's canonical-ABI value checks, on the real cam:kernel WIT (unit tests of one function). */
import { describe, expect, it } from 'vitest';
import { witSource } from '../wit/source.js';
import { CanonicalValueError, checkValue } from './values.js';
import { parseWitPackage, type WitType } from './wit-model.js';

const pkg = parseWitPackage(witSource('0.1.0'));
const ifaces = pkg.interfaces;
const ref = (iface: string, name: string): WitType => ({ k: 'ref', iface, name });
const check = (t: WitType, v: unknown) => checkValue(t, v, ifaces, 'export x#f returned');
const fails = (t: WitType, v: unknown) => {
  try {
    check(t, v);
  } catch (e) {
    expect(e).toBeInstanceOf(CanonicalValueError);
    return (e as Error).message;
  }
  throw new Error('expected the check to fail');
};

describe('checkValue', () => {
  it('checks integer ranges and refuses non-integers', () => {
    expect(check({ k: 'prim', name: 'u8' }, 255)).toBe(255);
    expect(fails({ k: 'prim', name: 'u8' }, 256)).toBe(
      'export x#f returned: expected u8 in 0..255, got number 256',
    );
    expect(fails({ k: 'prim', name: 's32' }, 1.5)).toContain('expected s32 (an integer)');
    expect(fails({ k: 'prim', name: 'u32' }, -1)).toContain('expected u32 in 0..4294967295');
  });

  it('wants bigint for 64-bit integers, in range', () => {
    expect(check({ k: 'prim', name: 'u64' }, 2n ** 64n - 1n)).toBe(2n ** 64n - 1n);
    expect(fails({ k: 'prim', name: 'u64' }, 5)).toBe(
      'export x#f returned: expected u64 (a bigint), got number 5',
    );
    expect(fails({ k: 'prim', name: 'u64' }, -1n)).toContain('expected u64 in 0..');
    expect(fails({ k: 'prim', name: 's64' }, 2n ** 63n)).toContain('expected s64 in');
  });

  it('wants a Uint8Array for list<u8> and arrays for other lists', () => {
    const bytes = { k: 'list', of: { k: 'prim', name: 'u8' } } as const;
    expect(check(bytes, new Uint8Array([1]))).toEqual(new Uint8Array([1]));
    expect(fails(bytes, [1, 2])).toBe('export x#f returned: expected list<u8> (a Uint8Array), got array');
    expect(fails({ k: 'list', of: { k: 'prim', name: 'string' } }, ['a', 3])).toBe(
      'export x#f returned [1]: expected string, got number 3',
    );
  });

  it('names the path into records, lists and variants', () => {
    const ranking = ref('scheduler', 'ranking');
    const good = {
      order: [
        {
          taskId: 't',
          score: 1,
          band: 'high',
          dimensions: { urgency: 0, importance: 0, efficiency: 0, energy: 0, trust: 0 },
        },
      ],
      preemptions: [],
    };
    expect(check(ranking, good)).toEqual(good);
    const bad = structuredClone(good);
    (bad.order[0] as Record<string, unknown>).score = 'high';
    expect(fails(ranking, bad)).toBe('export x#f returned .order[0].score: expected f64, got string "high"');
    const badBand = structuredClone(good);
    badBand.order[0]!.band = 'urgent';
    expect(fails(ranking, badBand)).toContain(
      ".order[0].band: expected enum band (one of 'high', 'medium', 'low')",
    );
    const missing = structuredClone(good) as Record<string, unknown>;
    delete missing.preemptions;
    expect(fails(ranking, missing)).toContain('.preemptions: missing field preemptions');
  });

  it('checks variants by tag and payload', () => {
    const err = ref('types', 'kernel-error');
    expect(check(err, { tag: 'not-found', val: 'x' })).toEqual({ tag: 'not-found', val: 'x' });
    expect(check(err, { tag: 'deadline-exceeded' })).toEqual({ tag: 'deadline-exceeded' });
    expect(fails(err, { tag: 'nope', val: 'x' })).toContain(
      "expected variant kernel-error with tag 'invalid-argument'",
    );
    expect(fails(err, { tag: 'not-found', val: 3 })).toBe(
      'export x#f returned <not-found>: expected string, got number 3',
    );
    expect(fails(err, new Error('boom'))).toContain('expected variant kernel-error');
  });

  it('maps options to undefined and checks tuples', () => {
    const opt = { k: 'option', of: { k: 'prim', name: 'u64' } } as const;
    expect(check(opt, null)).toBeUndefined();
    expect(check(opt, 3n)).toBe(3n);
    expect(fails(opt, 3)).toContain('expected u64 (a bigint)');
    const map = ref('types', 'string-map');
    expect(check(map, [['a', 'b']])).toEqual([['a', 'b']]);
    expect(fails(map, [['a']])).toBe(
      'export x#f returned [0]: expected tuple<string, string> (an array of 2), got array',
    );
  });

  it('checks nested results as tagged objects', () => {
    const r = { k: 'result', ok: { k: 'prim', name: 'string' }, err: ref('types', 'kernel-error') } as const;
    expect(check(r, { tag: 'ok', val: 's' })).toEqual({ tag: 'ok', val: 's' });
    expect(fails(r, 's')).toContain("expected { tag: 'ok' | 'err', val }");
  });
});
