/**
 * A steady mixed load over gRPC: context writes and reads across several namespaces plus arbitrations,
 * each loop issuing its next call as soon as the previous one answers. Every call's outcome is kept:
 * failures (with the syscall and message), acknowledged writes, and per-call start/end times so a
 * benchmark can split latencies by what the kernel was doing at the time.
 */
import { performance } from 'node:perf_hooks';
import type { SyscallClient } from '../../sdk/src/client/index.js';
import type { AckedWrite } from './system-kernel.js';

export interface CallSample {
  method: 'ContextWrite' | 'ContextRead' | 'Arbitrate';
  start: number;
  end: number;
}

export interface LoadResult {
  /** performance.now() when the load started; failures name their send time relative to it. */
  t0: number;
  calls: number;
  failures: string[];
  acked: AckedWrite[];
  samples: CallSample[];
}

export interface LoadOptions {
  namespaces?: number;
  keysPerNamespace?: number;
  writers?: number;
  readers?: number;
  arbiters?: number;
  /** Prefix of namespaces and agent ids, so several loads can share a kernel. */
  tag?: string;
}

export interface RunningLoad {
  /** Resolves after at least `n` further calls have completed. */
  progress(n: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

export async function startLoad(client: SyscallClient, opts: LoadOptions = {}): Promise<RunningLoad> {
  const tag = opts.tag ?? 'load';
  const namespaces = Array.from({ length: opts.namespaces ?? 4 }, (_, i) => `${tag}-ns${i}`);
  const keys = Array.from({ length: opts.keysPerNamespace ?? 5 }, (_, i) => `key-${i}`);
  const agents = [`${tag}-agent-a`, `${tag}-agent-b`];
  for (const [i, agent_id] of agents.entries()) {
    await client.call('AgentRegister', {
      agent_id,
      capabilities: ['plan', i === 0 ? 'code' : 'review'],
      metadata: { provider: `provider-${i}` },
    });
  }
  const result: LoadResult = { calls: 0, failures: [], acked: [], samples: [], t0: performance.now() };
  const t0 = result.t0;
  // Latest acknowledged version per namespace/key: a read started after an ack must see at least that.
  const latest = new Map<string, number>();
  let running = true;
  let waiters: Array<{ at: number; resolve: () => void }> = [];
  let seq = 0;

  const timed = async <T>(method: CallSample['method'], what: string, f: () => Promise<T>) => {
    const start = performance.now();
    try {
      return await f();
    } catch (e) {
      const t = Math.round(start - t0);
      result.failures.push(`${method} ${what} (sent at +${t} ms): ${(e as Error).message}`);
      return undefined;
    } finally {
      result.samples.push({ method, start, end: performance.now() });
      result.calls++;
      if (waiters.length > 0) {
        const due = waiters.filter((w) => w.at <= result.calls);
        waiters = waiters.filter((w) => w.at > result.calls);
        for (const w of due) w.resolve();
      }
    }
  };

  const writer = async (w: number) => {
    while (running) {
      const n = seq++;
      const namespace = namespaces[n % namespaces.length]!;
      const key = keys[(n >> 2) % keys.length]!;
      const data = `writer ${w} call ${n} ${'x'.repeat(n % 200)}`;
      const r = await timed('ContextWrite', `${namespace}/${key}`, () =>
        client.call('ContextWrite', {
          namespace,
          key,
          data: Buffer.from(data),
          metadata: { writer: `${w}` },
        }),
      );
      if (!r) continue;
      const version = Number(r.version);
      result.acked.push({ namespace, key, version, hash: r.hash, data });
      const id = `${namespace}/${key}`;
      if ((latest.get(id) ?? 0) < version) latest.set(id, version);
    }
  };

  const reader = async () => {
    let i = 0;
    while (running) {
      const known = [...latest.keys()];
      if (known.length === 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      const id = known[i++ % known.length]!;
      const atLeast = latest.get(id)!;
      const [namespace, key] = id.split('/') as [string, string];
      const r = await timed('ContextRead', id, () => client.call('ContextRead', { namespace, key }));
      if (r && Number(r.version) < atLeast) {
        result.failures.push(`ContextRead ${id}: version ${r.version} is older than acknowledged ${atLeast}`);
      }
    }
  };

  const arbiter = async (a: number) => {
    let i = 0;
    while (running) {
      const task = {
        id: `${tag}-task-${a}-${i++}`,
        description: 'write code',
        requirements: ['code'],
        priority: 50,
        type: 'TASK_TYPE_ANALYSIS' as const,
      };
      const r = await timed('Arbitrate', task.id, () => client.call('Arbitrate', { task }));
      if (r && r.result?.assigned_agent !== agents[0]) {
        result.failures.push(`Arbitrate ${task.id}: assigned ${r.result?.assigned_agent}, want ${agents[0]}`);
      }
    }
  };

  const loops = [
    ...Array.from({ length: opts.writers ?? 3 }, (_, i) => writer(i)),
    ...Array.from({ length: opts.readers ?? 2 }, () => reader()),
    ...Array.from({ length: opts.arbiters ?? 1 }, (_, i) => arbiter(i)),
  ];
  return {
    progress(n) {
      return new Promise((resolve) => waiters.push({ at: result.calls + n, resolve }));
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const w of waiters) w.resolve();
      return result;
    },
  };
}
