/**
 * The dispatcher's own deadline (one timer for all calls in flight, see Deadlines in dispatcher.ts): a call
 * that outlives its deadline is refused with KERNEL_ERR_CALL_DEADLINE at that deadline, whatever else is in
 * flight, and a call that finishes first is not touched by it.
 */
import { describe, expect, it } from 'vitest';
import { KernelError } from '../errors.js';
import { type CallContext, Dispatcher } from './dispatcher.js';

function dispatcher(): { d: Dispatcher; release: (value: unknown) => void } {
  const d = new Dispatcher();
  let waiters: Array<(v: unknown) => void> = [];
  d.register<{ ms: number }, unknown>({
    name: 'Wait',
    group: 'observability',
    summary: 'Answers when released, or after `ms` if given.',
    validate: (req) => req as { ms: number },
    handle: (r) =>
      new Promise((resolve) => {
        waiters.push(resolve);
        if (r.ms > 0) setTimeout(() => resolve(`after ${r.ms} ms`), r.ms);
      }),
  });
  return {
    d,
    release: (v) => {
      for (const w of waiters) w(v);
      waiters = [];
    },
  };
}

const ctx = (inMs: number): CallContext => ({ callerId: 'c', deadlineAt: Date.now() + inMs });

async function outcome(p: Promise<unknown>): Promise<{ ok: unknown } | { code: string; atMs: number }> {
  const t0 = Date.now();
  try {
    return { ok: await p };
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    return { code: (e as KernelError).code, atMs: Date.now() - t0 };
  }
}

describe('Dispatcher deadlines', () => {
  it('refuse each call that outlives its deadline at that deadline, earliest first, whatever is in flight', async () => {
    const { d, release } = dispatcher();
    const long = outcome(d.dispatch('Wait', { ms: 0 }, ctx(400)));
    const short = outcome(d.dispatch('Wait', { ms: 0 }, ctx(60))); // armed after a later deadline
    const fast = outcome(d.dispatch('Wait', { ms: 5 }, ctx(300)));
    const [s, f] = await Promise.all([short, fast]);
    expect(s).toMatchObject({ code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect((s as { atMs: number }).atMs).toBeGreaterThanOrEqual(50);
    expect(f).toEqual({ ok: 'after 5 ms' });
    const l = await long;
    expect(l).toMatchObject({ code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect((l as { atMs: number }).atMs).toBeGreaterThanOrEqual(380);
    release('too late');
    const m = d.metrics().find((x) => x.name === 'Wait')!;
    expect(m.calls).toBe(3);
    expect(m.errors).toEqual({ KERNEL_ERR_CALL_DEADLINE: 2 });
  });

  it('answer a call released before its deadline, and still time out the next call once idle in between', async () => {
    const { d, release } = dispatcher();
    const first = outcome(d.dispatch('Wait', { ms: 0 }, ctx(10_000)));
    release('released');
    expect(await first).toEqual({ ok: 'released' });
    // Nothing in flight now; the armed timer (10 s away) must not hold back a shorter deadline.
    expect(await outcome(d.dispatch('Wait', { ms: 0 }, ctx(30)))).toMatchObject({
      code: 'KERNEL_ERR_CALL_DEADLINE',
    });
  });

  it('expire a call whose deadline is not a finite number at once', async () => {
    const { d, release } = dispatcher();
    for (const deadlineAt of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(await outcome(d.dispatch('Wait', { ms: 0 }, { callerId: 'c', deadlineAt }))).toMatchObject({
        code: 'KERNEL_ERR_CALL_DEADLINE',
      });
    }
    release('too late');
  });
});
