/** Unit test of the dashboard's trace grouping (the HTTP routes are tested end to end in test/dashboard). */
import { describe, expect, it } from 'vitest';
import type { SpanRecord } from '../observability/index.js';
import { traceSummaries } from './server.js';

const span = (
  traceId: string,
  spanId: string,
  parent: string | undefined,
  start: number,
  ms: number,
  extra: Partial<SpanRecord> = {},
): SpanRecord => ({
  traceId,
  spanId,
  ...(parent ? { parentSpanId: parent } : {}),
  name: `s-${spanId}`,
  kind: 'internal',
  source: 'kernel',
  startMs: start,
  durationMs: ms,
  status: 'ok',
  attributes: {},
  ...extra,
});

describe('traceSummaries', () => {
  it('groups spans by trace, names the root, spans the whole trace, newest first', () => {
    const spans = [
      span('t1', 'a', 'agent-span-not-kept', 100, 10),
      span('t1', 'b', 'a', 101, 5, { status: 'error' }),
      span('t1', 'c', 'b', 102, 20),
      span('t2', 'x', undefined, 200, 1, { source: 'agent', kind: 'agent' }),
    ];
    expect(traceSummaries(spans, 10)).toEqual([
      { traceId: 't2', root: 's-x', spans: 1, startMs: 200, durationMs: 1, errors: 0, sources: ['agent'] },
      { traceId: 't1', root: 's-a', spans: 3, startMs: 100, durationMs: 22, errors: 1, sources: ['kernel'] },
    ]);
    expect(traceSummaries(spans, 1).map((t) => t.traceId)).toEqual(['t2']);
  });
});
