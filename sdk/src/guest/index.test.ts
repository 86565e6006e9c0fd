/** The guest-side lifecycle helper enforces the cam:kernel/lifecycle contract (unit tests of one module). */
import { describe, expect, it } from 'vitest';
import { decodeJson, encodeJson, kernelError, lifecycle } from './index.js';

describe('lifecycle()', () => {
  it('runs init once, refuses unknown config keys, reports not-serving before init', () => {
    const seen: Array<Record<string, string>> = [];
    const l = lifecycle({ configKeys: ['a'], init: (c) => void seen.push(c) });
    expect(l.health()).toMatchObject({ status: 'not-serving' });
    expect(() => l.init([['b', '1']])).toThrow(
      expect.objectContaining({ tag: 'invalid-argument', val: "unknown config key 'b' (known: a)" }),
    );
    l.init([['a', '1']]);
    expect(seen).toEqual([{ a: '1' }]);
    expect(l.health()).toEqual({ status: 'serving', detail: '', checks: [] });
    expect(() => l.init([])).toThrow(expect.objectContaining({ tag: 'failed-precondition' }));
  });

  it('exports versioned state and refuses a newer format on import', () => {
    let state = { n: 1n, bytes: new Uint8Array([1, 2]) };
    const older = lifecycle({ stateVersion: 1, exportState: () => state, importState: (s) => (state = s) });
    const newer = lifecycle({ stateVersion: 2, exportState: () => state });
    expect(() => older.exportState()).toThrow(expect.objectContaining({ tag: 'failed-precondition' }));
    older.init([]);
    newer.init([]);
    const bytes = older.exportState();
    state = { n: 0n, bytes: new Uint8Array() };
    older.importState(bytes);
    expect(state).toEqual({ n: 1n, bytes: new Uint8Array([1, 2]) });
    expect(() => older.importState(newer.exportState())).toThrow(
      expect.objectContaining({
        tag: 'unimplemented',
        val: 'state format 2 is newer than this build reads (1)',
      }),
    );
    expect(() => older.importState(new TextEncoder().encode('garbage'))).toThrow(
      expect.objectContaining({ tag: 'invalid-argument' }),
    );
  });

  it('keeps bigint and bytes through JSON, and caps error messages at 500 characters', () => {
    expect(decodeJson(encodeJson({ a: [2n ** 64n - 1n, new Uint8Array([255])] }))).toEqual({
      a: [2n ** 64n - 1n, new Uint8Array([255])],
    });
    expect(kernelError('internal', 'x'.repeat(600))).toEqual({ tag: 'internal', val: 'x'.repeat(500) });
  });
});
