/**
 * Policy decisions (issue 9): one authorization decision through the `authz` policy as the dispatcher hook
 * makes it — the built-in OPA-ABI module evaluated by @open-policy-agent/opa-wasm — with the decision
 * cache cold (cleared before every decision) and warm (the same caller and syscall again). Baselines from
 * the same run: a bare opa-wasm evaluate of the same module (cold floor) and a Map lookup of the same key
 * (warm floor). A dispatcher round trip with and without the authorizer shows the added cost per syscall.
 */
import { type CallContext, Dispatcher } from '../host/src/dispatcher/dispatcher.js';
import { AUTHZ_POLICY, PolicyEngine } from '../host/src/policy/engine.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'policy';
const COLD = 3_000;
const WARM = 30_000;

function us(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1000;
}

export async function run(): Promise<BenchResult[]> {
  const engine = await PolicyEngine.open();
  const callers = Array.from({ length: 64 }, (_, i) => `agent-${i}`);
  const syscalls = ['Arbitrate', 'ContextWrite', 'ContextRead', 'EmitMetric', 'QueryPolicy'];
  const groups = ['tasks', 'context', 'context', 'observability', 'policy'];

  // Warm-up (JIT, wasm tier-up).
  for (let i = 0; i < 2_000; i++) {
    engine.clearCache();
    engine.authorize('authenticated', 'agent', callers[i % 64]!, groups[i % 5]!, syscalls[i % 5]!);
  }

  const cold: number[] = [];
  for (let i = 0; i < COLD; i++) {
    engine.clearCache();
    const t = process.hrtime.bigint();
    const d = engine.authorize('authenticated', 'agent', callers[i % 64]!, groups[i % 5]!, syscalls[i % 5]!);
    cold.push(us(t));
    if (!d.allow) throw new Error(`bench policy unexpectedly denied: ${d.reason}`);
  }

  // Floor of the cold path: the same module evaluated by opa-wasm directly (no engine, no cache).
  const raw = engine as unknown as { active: Map<string, { policy: { evaluate(i: unknown): unknown } }> };
  const loaded = raw.active.get(AUTHZ_POLICY)!.policy;
  const bare: number[] = [];
  for (let i = 0; i < COLD; i++) {
    const input = {
      mode: 'authenticated',
      role: 'agent',
      caller: callers[i % 64],
      group: groups[i % 5],
      syscall: syscalls[i % 5],
    };
    const t = process.hrtime.bigint();
    loaded.evaluate(input);
    bare.push(us(t));
  }

  engine.clearCache();
  for (let i = 0; i < 1_000; i++)
    engine.authorize('authenticated', 'agent', callers[i % 64]!, groups[i % 5]!, syscalls[i % 5]!);
  const warm: number[] = [];
  for (let i = 0; i < WARM; i++) {
    const t = process.hrtime.bigint();
    engine.authorize('authenticated', 'agent', callers[i % 64]!, groups[i % 5]!, syscalls[i % 5]!);
    warm.push(us(t));
  }
  const map = new Map<string, object>();
  for (const c of callers)
    for (let j = 0; j < 5; j++)
      map.set(`authenticated\u0000agent\u0000${c}\u0000${groups[j]}\u0000${syscalls[j]}`, {});
  const lookup: number[] = [];
  for (let i = 0; i < WARM; i++) {
    const t = process.hrtime.bigint();
    map.get(`authenticated\u0000agent\u0000${callers[i % 64]}\u0000${groups[i % 5]}\u0000${syscalls[i % 5]}`);
    lookup.push(us(t));
  }

  // A no-op syscall dispatched with and without the policy hook (warm cache).
  const bareDispatcher = new Dispatcher();
  const guarded = new Dispatcher();
  for (const d of [bareDispatcher, guarded]) {
    d.register({
      name: 'Noop',
      group: 'observability',
      summary: 'bench',
      validate: (r) => r,
      handle: async () => ({}),
    });
  }
  guarded.authorizers.push((name, group, ctx) => {
    const dec = engine.authorize('authenticated', 'agent', ctx.callerId, group, name);
    if (!dec.allow) throw new Error(dec.reason);
  });
  const ctx: CallContext = { callerId: 'agent-1', deadlineAt: Date.now() + 3_600_000, scopes: [] };
  const dispatchUs = async (d: Dispatcher, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await d.dispatch('Noop', {}, ctx);
      out.push(us(t));
    }
    return out;
  };
  await dispatchUs(bareDispatcher, 2_000);
  await dispatchUs(guarded, 2_000);
  const dBare = stats(await dispatchUs(bareDispatcher, 10_000));
  const dGuarded = stats(await dispatchUs(guarded, 10_000));

  const c = stats(cold);
  const b = stats(bare);
  const w = stats(warm);
  const l = stats(lookup);
  return [
    {
      suite: SUITE,
      name: 'authz decision, cache cold',
      unit: 'us',
      median: round(c.median),
      p99: round(c.p99),
      baseline: { name: 'opa-wasm evaluate, same module, no engine', median: round(b.median) },
      target: 'p99 <= 1000 us',
      met: c.p99 <= 1000,
      notes: `${COLD} decisions, cache cleared before each; 64 callers x 5 syscalls; built-in policy (default-policy.wat)`,
    },
    {
      suite: SUITE,
      name: 'authz decision, cache warm',
      unit: 'us',
      median: round(w.median),
      p99: round(w.p99),
      baseline: { name: 'Map lookup of the same key', median: round(l.median) },
      target: 'p99 <= 50 us',
      met: w.p99 <= 50,
      notes: `${WARM} decisions over 320 cached keys`,
    },
    {
      suite: SUITE,
      name: 'dispatch of a no-op syscall with the policy hook (warm)',
      unit: 'us',
      median: round(dGuarded.median),
      p99: round(dGuarded.p99),
      baseline: { name: 'same dispatch without the hook', median: round(dBare.median) },
      notes: `added median ${round(dGuarded.median - dBare.median)} us per syscall`,
    },
  ];
}
