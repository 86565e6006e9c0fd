/**
 * A scripted workload for comparing two builds of the memory component byte for byte: what each call
 * returns, what the component logs, and every kv entry it leaves behind. compat.test.ts runs it against
 * the AssemblyScript component and compares with `fixtures/ts-component.json`, which the same script
 * recorded from the TypeScript (componentize-js) component this one replaced.
 *
 * Phase 1 writes a history that exercises the stored format: several versions per key (pruned by a
 * retention of 3), metadata that needs JSON escapes, non-ASCII keys and authors, an empty value, a
 * snapshot (pinned versions), a forced restore (versions whose data version `dv` differs from `v`), a
 * reverted task (`cam.reverted-task`), and a task left unreverted (its markers and task-index entries).
 * Phase 2 runs on a fresh instance over phase 1's data, as after a hot-swap: reads of every kind,
 * version pages, writes and write-many on the stored heads, a snapshot, restores, task reverts, health
 * and state.
 */
import type { ComponentHarness } from '../../../sdk/src/build/harness.js';

export const COMPONENT = 'memory';
export const CONFIG = { 'max-versions': '3' };
/** Start of the virtual clock; each step runs one second after the previous one. */
export const T0 = 1_800_000_000_000;
/** The partitions the scenario writes, as the component names them (stored as `memory/<partition>`). */
export const PARTITIONS = ['ns/fx', 'ns/fx.b', 'ns/other_2', 'task-index'];

const MEM = 'cam:kernel/memory';
const LIFE = 'cam:kernel/lifecycle';

export interface Step {
  iface: typeof MEM | typeof LIFE;
  fn: string;
  args: unknown[];
}

const enc = (s: string) => new TextEncoder().encode(s);
type Md = Array<[string, string]>;
const write = (ns: string, key: string, value: string, md: Md = [], author = 'alice'): Step => ({
  iface: MEM,
  fn: 'write',
  args: [ns, key, enc(value), md, author],
});
const read = (ns: string, key: string, version?: number): Step => ({
  iface: MEM,
  fn: 'read',
  args: [ns, key, version === undefined ? undefined : BigInt(version)],
});
const mem = (fn: string, ...args: unknown[]): Step => ({ iface: MEM, fn, args });
const life = (fn: string, ...args: unknown[]): Step => ({ iface: LIFE, fn, args });
const req = (namespace: string, key: string, value: string, metadata: Md = [], author = 'wm') => ({
  namespace,
  key,
  data: enc(value),
  metadata,
  author,
});
const task = (id: string): Md => [['cam.task-id', id]];

export const PHASE1: Step[] = [
  write('fx', 'doc', 'v1 plain', [
    ['description', 'first'],
    ['quote', 'say "hi" \\ back\nslash'],
    ['ctl', '\u0001\u001f\t\b\f\r\u007f'],
    ['uni', 'ünï – 💾'],
    ['nul', 'a\u0000b'],
  ]),
  write(
    'fx',
    'doc',
    'v2',
    [
      ['a', '1'],
      ['b', 'x'],
      ['a', '2'],
    ],
    'bob',
  ),
  write('fx', 'doc', 'v3', [], 'ålice'),
  write('fx', 'doc', 'v4', [['description', 'fourth']]),
  write('fx', 'ключ/é', 'unicode key'),
  write('fx', 'gone', 'g1'),
  write('fx', 'cfg', 'stable'),
  write('fx', 'empty', ''),
  write('fx', 'meta', 'escapes kept', [
    ['quote', 'say "hi" \\ back\nslash'],
    ['ctl', '\u0001\u001f\t\b\f\r\u007f'],
    ['uni', 'ünï – 💾'],
    ['nul', 'a\u0000b'],
    ['description', 'kept'],
  ]),
  write('fx', 'q"uo\\te', 'quoted key', [['k"\\', 'v\n']], 'a "quoted" author'),
  mem('snapshot', 'fx', 'before "tasks"\n', 'carol'),
  write('fx', 'doc', 'v5'),
  write('fx', 'doc', 'v6'),
  write('fx', 'doc', 'v7'),
  write('fx', 'new', 'n1'),
  mem('restore', 'fx@1', false),
  mem('restore', 'fx@1', true),
  write('fx', 'cfg', 'task edit', task('t-1')),
  write('fx', 'fresh', 'task created', task('t-1')),
  write('other_2', 'x', 'elsewhere', [...task('t-1'), ['description', 'x']]),
  write('fx', 't2key', 'before'),
  write('fx', 't2key', 'by t-2', task('t-2')),
  mem('revert-task', 't-2'),
  mem('write-many', [
    req('fx', 'doc', 'wm1'),
    req('other_2', 'y', 'y1'),
    req('other_2', 'y', 'y2'),
    req('fx.b', 'z', 'z'),
    req('fx', 'wm-task', 'tagged', task('t-3')),
    req('fx', 'doc', 'wm2'),
  ]),
  read('fx', 'doc'),
  read('fx', 'doc', 4),
  mem('version-list', 'fx', 'doc', 0, undefined),
  life('health'),
  life('export-state'),
];

export const PHASE2: Step[] = [
  read('fx', 'doc'),
  read('fx', 'doc', 0),
  read('fx', 'doc', 4),
  read('fx', 'doc', 8),
  read('fx', 'doc', 1),
  read('fx', 'doc', 99),
  read('fx', 'new'),
  read('fx', 'new', 1),
  read('fx', 'ключ/é'),
  read('fx', 'empty'),
  read('fx', 'meta'),
  read('fx', 'q"uo\\te'),
  mem('version-list', 'fx', 'meta', 0, undefined),
  read('fx', 'nope'),
  read('other_2', 'x'),
  mem('version-list', 'fx', 'doc', 2, undefined),
  mem('version-list', 'fx', 'doc', 2, 9n),
  mem('version-list', 'fx', 'doc', 0, 0n),
  mem('version-list', 'fx', 'ghost', 0, undefined),
  write('fx', 'doc', 'phase 2', [['description', 'after the swap']], 'dave'),
  mem('write-many', [
    req('fx', 'doc', 'p2a'),
    req('fx', 'cfg', 'p2 cfg', task('t-4')),
    req('fx', 'doc', 'p2b'),
    req('other_2', 'y', 'y3'),
  ]),
  mem('snapshot', 'fx', 'phase 2', 'erin'),
  mem('restore', 'fx@1', false),
  mem('restore', 'fx@3', false),
  write('fx', 'gone', 'back'),
  mem('restore', 'fx@2', false),
  mem('restore', 'fx@1', true),
  mem('revert-task', 't-1'),
  mem('revert-task', 't-1'),
  mem('revert-task', 't-3'),
  mem('revert-task', 't-4'),
  read('fx', 'cfg'),
  read('fx', 'fresh'),
  read('other_2', 'x'),
  mem('version-list', 'fx', 'cfg', 0, undefined),
  write('bad/ns', 'k', 'v'),
  write('fx', 'k', 'v', [['', 'x']]),
  mem('write-many', [req('fx', 'ok', 'v'), req('fx', 'bad\u0000key', 'v')]),
  mem('restore', 'garbage@', false),
  life('import-state', enc('{"format":1,"writes":5,"reads":7}')),
  life('import-state', enc('not json')),
  life('import-state', enc('{"format":2}')),
  life('health'),
  life('export-state'),
];

/** JSON-safe form of a call's outcome: bigints and bytes tagged, errors as code, status and message. */
export function encode(value: unknown): unknown {
  if (typeof value === 'bigint') return { bigint: value.toString() };
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = encode(v);
    return out;
  }
  return value;
}

export interface Outcome {
  call: string;
  ok?: unknown;
  error?: { code: string; status: string; message: string };
}

export async function runSteps(h: ComponentHarness, steps: Step[], startMs: number): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    h.clock.set(startMs + i * 1000);
    const call = `${step.fn} ${JSON.stringify(encode(step.args))}`;
    try {
      out.push({ call, ok: encode(await h.kernel.call(COMPONENT, step.iface, step.fn, step.args)) });
    } catch (e) {
      const err = e as { code: string; status: string; message: string };
      out.push({ call, error: { code: err.code, status: err.status, message: err.message } });
    }
  }
  return out;
}

/** Every entry of the scenario's partitions: key -> base64 value, in key order. */
export async function dumpKv(h: ComponentHarness): Promise<Record<string, Array<[string, string]>>> {
  const out: Record<string, Array<[string, string]>> = {};
  for (const p of PARTITIONS) {
    const entries = await h.kv.scan(`${COMPONENT}/${p}`, { limit: 10_000 });
    out[p] = entries.map((e) => [e.key, Buffer.from(e.value).toString('base64')]);
  }
  return out;
}

/** Stores a dump into an empty store, as the component left it. */
export async function seedKv(
  h: ComponentHarness,
  dump: Record<string, Array<[string, string]>>,
): Promise<void> {
  for (const [p, entries] of Object.entries(dump)) {
    if (entries.length === 0) continue;
    await h.kv.batch(
      `${COMPONENT}/${p}`,
      entries.map(([key, value]) => ({ op: 'put', key, value: Buffer.from(value, 'base64') })),
    );
  }
}

/** The component's log lines since `from`, without their time. */
export function logsSince(
  h: ComponentHarness,
  from: number,
): Array<{ level: string; msg: string; fields: unknown }> {
  return h.logs
    .slice(from)
    .filter((l) => l.component === COMPONENT)
    .map((l) => ({ level: l.level, msg: l.msg, fields: l.fields }));
}

export interface Fixture {
  source: string;
  config: Record<string, string>;
  phase1: { outcomes: Outcome[]; logs: unknown[]; kv: Record<string, Array<[string, string]>> };
  phase2: { outcomes: Outcome[]; logs: unknown[]; kv: Record<string, Array<[string, string]>> };
}
