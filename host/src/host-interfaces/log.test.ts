/** cam:kernel/log: JSON lines, limits, rate limiting, and never failing the guest. */
import { describe, expect, it } from 'vitest';
import { LOG_INTERFACE, type LogHostOptions, type LogLine, logHostInterface, truncateUtf8 } from './log.js';

function logger(opts: LogHostOptions = {}) {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const iface = logHostInterface({
    sink: (l) => {
      raw.push(l);
      lines.push(JSON.parse(l) as LogLine);
    },
    ...opts,
  });
  return { log: iface.functions.log!, lines, raw, iface };
}

describe('log host interface', () => {
  it('writes one JSON line per call, tagged with the component', () => {
    const { log, lines, raw, iface } = logger({ now: () => Date.UTC(2026, 10, 22) });
    expect(iface.name).toBe(LOG_INTERFACE);
    log('memory', 'warn', 'disk is slow', [
      ['ms', '12'],
      ['op', 'write'],
    ]);
    expect(raw[0]!.includes('\n')).toBe(false);
    expect(lines).toEqual([
      {
        time: '2026-11-22T00:00:00.000Z',
        level: 'warn',
        component: 'memory',
        msg: 'disk is slow',
        fields: { ms: '12', op: 'write' },
      },
    ]);
  });

  it('truncates long messages at a character boundary and bounds fields', () => {
    const { log, lines } = logger({ maxMessageBytes: 10, maxFields: 2, maxFieldBytes: 4 });
    log('c', 'info', 'ééééééé', [
      ['a', '1'],
      ['a', '2'],
      ['long-key', 'value'],
      ['x', 'y'],
      ['__proto__', 'z'],
    ]);
    const line = lines[0]!;
    expect(line.msg).toBe('ééééé');
    expect(line.truncated).toBe(true);
    // Repeated keys keep the last value; 'long-key' is cut to 4 bytes; fields beyond 2 are counted.
    expect(Object.entries(line.fields)).toEqual([
      ['a', '2'],
      ['long', 'valu'],
    ]);
    expect(line.droppedFields).toBe(2);
  });

  it('filters by level and treats an unknown level as info', () => {
    const { log, lines } = logger({ minLevel: 'info' });
    log('c', 'debug', 'hidden', []);
    log('c', 'loud', 'shown', []);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([['info', 'shown']]);
  });

  it('drops lines over the rate limit and then says how many it dropped', () => {
    let t = 0;
    const { log, lines } = logger({ ratePerSecond: 10, burst: 2, now: () => t });
    for (let i = 0; i < 5; i++) log('noisy', 'info', `m${i}`, []);
    log('quiet', 'info', 'other component', []);
    expect(lines.map((l) => l.msg)).toEqual(['m0', 'm1', 'other component']);
    t = 1000;
    log('noisy', 'info', 'later', []);
    expect(lines.slice(3).map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'dropped 3 log line(s) over the rate limit of 10/s'],
      ['info', 'later'],
    ]);
  });

  it('never throws at the guest, even with a broken sink or values of the wrong type', () => {
    const log = logHostInterface({
      sink: () => {
        throw new Error('disk full');
      },
    }).functions.log!;
    expect(() => log('c', 'info', 'x', [])).not.toThrow();
    const { log: ok, lines } = logger();
    expect(() => ok('c', 3, 42, 'not a list')).not.toThrow();
    expect(lines[0]).toMatchObject({ level: 'info', msg: '42', fields: {} });
  });

  it('truncateUtf8 never splits a character', () => {
    expect(truncateUtf8('a€b', 3)).toEqual({ text: 'a', cut: true });
    expect(truncateUtf8('a€b', 4)).toEqual({ text: 'a€', cut: true });
    expect(truncateUtf8('abc', 3)).toEqual({ text: 'abc', cut: false });
  });
});
