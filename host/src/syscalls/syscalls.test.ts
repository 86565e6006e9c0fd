import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Dispatcher } from '../dispatcher/dispatcher.js';
import { Kernel } from '../kernel/kernel.js';
import { SnapshotIds } from './backend.js';
import { Fields, taskFromWire, timestampToMs } from './codec.js';
import { installSyscalls, SYSCALL_NAMES } from './index.js';
import { TelemetryStore } from './telemetry.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'cam-syscalls-unit-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('codec', () => {
  it('reads int64 timestamps in any common unit by magnitude', () => {
    const ms = 1_795_000_000_123;
    expect(timestampToMs(0)).toBe(0);
    expect(timestampToMs(1_795_000_000)).toBe(1_795_000_000_000);
    expect(timestampToMs(ms)).toBe(ms);
    expect(timestampToMs(ms * 1000)).toBe(ms);
    expect(timestampToMs(ms * 1_000_000)).toBe(ms);
  });

  it('names the syscall and field of a bad request', () => {
    const f = new Fields('X', { a: 5, m: { k: 1 }, s: 'x'.repeat(10) });
    expect(() => f.str('a')).toThrow('X: a must be a string');
    expect(() => f.map('m', { maxEntries: 4 })).toThrow("X: m entry 'k' must be a string");
    expect(() => f.str('s', { maxBytes: 5 })).toThrow('X: s is longer than 5 bytes');
    expect(() => new Fields('X', null)).toThrow('X: request must be a message');
    expect(f.str('missing')).toBe('');
  });

  it('turns a CAM-OS Task into the WIT task record', () => {
    const parent = new Fields('Arbitrate', {
      task: {
        id: 't',
        priority: 50,
        deadline: 1_800_000_000,
        type: 'TASK_TYPE_ROUTING',
        metadata: { a: 'b' },
        agent_id: '',
      },
    });
    expect(taskFromWire(parent, 'task')).toMatchObject({
      id: 't',
      priority: 50,
      deadline: 1_800_000_000n,
      taskType: 'routing',
      metadata: [['a', 'b']],
      agentId: undefined,
    });
    expect(() => taskFromWire(new Fields('A', { task: { id: 't', type: 99 } }), 'task')).toThrow(
      /not a known TaskType/,
    );
    expect(() => taskFromWire(new Fields('A', {}), 'task')).toThrow('A: task is required');
  });
});

describe('snapshot ids', () => {
  it('carry their namespace under a MAC that survives restarts and refuses tampering', () => {
    const dir = tmp();
    const ids = new SnapshotIds(dir);
    const id = ids.seal('agent-a', 'snap~1');
    expect(new SnapshotIds(dir).open(id)).toEqual({ namespace: 'agent-a', inner: 'snap~1' });
    expect(ids.open(id.replace('agent-a', 'agent-b'))).toBeUndefined();
    expect(ids.open('agent-a~snap~1~AAAAAAAAAAAAAAAAAAAAAA')).toBeUndefined();
    expect(new SnapshotIds(tmp()).open(id)).toBeUndefined();
  });
});

describe('telemetry store', () => {
  it('keeps bounded rings and refuses new series past the cap', () => {
    const t = new TelemetryStore({ maxSpans: 2, maxSamples: 2, maxSeries: 2 });
    for (let i = 0; i < 3; i++) {
      t.addSpan({
        traceId: 'a',
        spanId: String(i),
        operation: 'o',
        startMs: i,
        durationNs: 0,
        tags: [],
        callerId: 'c',
        receivedAtMs: 0,
      });
    }
    expect(t.listSpans().map((s) => s.spanId)).toEqual(['1', '2']);
    const sample = (name: string, value: number) => ({
      name,
      value,
      unit: '',
      tags: [],
      timestampMs: 1,
      callerId: 'c',
    });
    t.addSample(sample('a', 1));
    t.addSample(sample('b', 1));
    t.addSample(sample('a', 3));
    expect(() => t.addSample(sample('c', 1))).toThrow(/already tracks 2 metric series/);
    expect(t.listSeries('a')[0]).toMatchObject({ count: 2, sum: 4, max: 3 });
    expect(t.counts()).toEqual({ spans: 3, samples: 3, series: 2 });
  });
});

describe('the syscall table', () => {
  it('registers all 20 methods and reports the missing services as unavailable', async () => {
    const dir = tmp();
    const kernel = new Kernel({ dataDir: dir });
    const dispatcher = new Dispatcher();
    installSyscalls({
      kernel,
      dispatcher,
      dataDir: dir,
      status: () => ({ authMode: 'development', warnings: [], startedAt: Date.now(), version: 'test' }),
    });
    const m = dispatcher.metrics();
    expect(m.map((x) => x.name)).toEqual([...SYSCALL_NAMES]);
    const unavailable = Object.fromEntries(m.filter((x) => !x.available).map((x) => [x.name, x.missing]));
    expect(unavailable.ContextRead).toMatch(/cam:kernel\/memory/);
    expect(unavailable.Arbitrate).toMatch(/cam:kernel\/arbitration/);
    expect(unavailable.SystemTuning).toMatch(/cam:kernel\/scheduler/);
    expect(unavailable.EmitTrace).toBeUndefined();
    const ctx = { callerId: 'c', deadlineAt: Date.now() + 1000, scopes: ['group:context'] };
    await expect(dispatcher.dispatch('EmitMetric', { name: 'x', value: 1 }, ctx)).rejects.toMatchObject({
      status: 'PERMISSION_DENIED',
    });
    await expect(dispatcher.dispatch('HealthCheck', {}, ctx)).resolves.toMatchObject({ status: 'degraded' });
    await kernel.stop();
  });

  it('lets a delivered part replace a pending entry, with the same group check', async () => {
    const dir = tmp();
    const kernel = new Kernel({ dataDir: dir });
    const status = () => ({ authMode: 'development', warnings: [], startedAt: Date.now(), version: 'test' });
    const dispatcher = new Dispatcher();
    installSyscalls({
      kernel,
      dispatcher,
      dataDir: dir,
      status,
      overrides: () => [
        {
          name: 'TmpSign',
          group: 'security',
          summary: 'test signer',
          validate: (req) => req as never,
          handle: async () => ({ signature: Buffer.from('sig') }),
        },
      ],
    });
    const ctx = { callerId: 'c', deadlineAt: Date.now() + 1000 };
    await expect(dispatcher.dispatch('TmpSign', {}, ctx)).resolves.toMatchObject({
      signature: Buffer.from('sig'),
    });
    await expect(
      dispatcher.dispatch('TmpSign', {}, { ...ctx, scopes: ['group:context'] }),
    ).rejects.toMatchObject({
      status: 'PERMISSION_DENIED',
    });
    expect(() =>
      installSyscalls({
        kernel,
        dispatcher: new Dispatcher(),
        dataDir: dir,
        status,
        overrides: () => [
          {
            name: 'Nope',
            group: 'admin',
            summary: '',
            validate: (r) => r as never,
            handle: async () => ({}),
          },
        ],
      }),
    ).toThrow(/not a SyscallService method/);
    await kernel.stop();
  });
});
