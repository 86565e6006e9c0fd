import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../server/config.js';
import { TurnGate, UNARY_CALLS_PER_TURN } from './turn-gate.js';

/** Resolves after the gate's pending end-of-turn callback (scheduled earlier in the same check phase). */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('TurnGate', () => {
  it('starts up to N calls at once and the rest N per later turn, oldest first', async () => {
    const gate = new TurnGate(2);
    const ran: string[] = [];
    for (const c of ['a', 'b', 'c', 'd', 'e']) gate.run(() => ran.push(c));
    expect(ran).toEqual(['a', 'b']);
    expect(gate.pending).toBe(3);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    // A call that arrives while others wait goes behind them, even with quota left in its own turn.
    gate.run(() => ran.push('f'));
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(gate.pending).toBe(0);
  });

  it('starts a lone call at once, turn after turn', async () => {
    const gate = new TurnGate(1);
    for (let i = 0; i < 3; i++) {
      let ran = false;
      gate.run(() => {
        ran = true;
      });
      expect(ran).toBe(true);
      await nextTurn();
    }
  });

  it('with 0, starts every call at once', () => {
    const gate = new TurnGate(0);
    let n = 0;
    for (let i = 0; i < 1000; i++) gate.run(() => n++);
    expect(n).toBe(1000);
    expect(gate.pending).toBe(0);
  });

  it('refuses a quota that is not a whole number', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new TurnGate(bad)).toThrow(/whole number/);
    }
  });

  it('is configured by unaryCallsPerTurn in config.json', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cam-turns-'));
    try {
      expect(loadConfig({ dataDir }, {}).unaryCallsPerTurn).toBe(UNARY_CALLS_PER_TURN);
      writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ unaryCallsPerTurn: 0 }));
      expect(loadConfig({ dataDir }, {}).unaryCallsPerTurn).toBe(0);
      for (const bad of [-2, 2.5, '4', true]) {
        writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ unaryCallsPerTurn: bad }));
        expect(() => loadConfig({ dataDir }, {})).toThrow(
          /unaryCallsPerTurn must be a whole number, 0 or more/,
        );
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
