/**
 * The AssemblyScript component against what the TypeScript (componentize-js) component it replaced did,
 * recorded in fixtures/ts-component.json by the scenario in compat.ts:
 *  - from an empty store, the same calls return the same results and leave the same kv bytes;
 *  - over the TypeScript component's stored data (the fixture's bytes seeded into kv, read by a fresh
 *    instance as after a hot-swap), reads, writes, snapshots, restores and task reverts behave the same.
 *
 * To record the fixture again from a build of the memory component (any build: apart from its `source`
 * line, which names the build, the file must not change):
 *   MEMORY_FIXTURE_WASM=<path to memory.wasm> [MEMORY_FIXTURE_SOURCE=<description>] \
 *     npx vitest run drivers/memory/src/compat.test.ts
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import { buildMemory } from './build.js';
import {
  COMPONENT,
  CONFIG,
  dumpKv,
  type Fixture,
  logsSince,
  PHASE1,
  PHASE2,
  runSteps,
  seedKv,
  T0,
} from './compat.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/ts-component.json', import.meta.url));
const IMPORTS = [
  'cam:kernel/clock@0.1.0',
  'cam:kernel/digest@0.1.0',
  'cam:kernel/kv@0.1.0',
  'cam:kernel/log@0.1.0',
];
const PHASE2_START = T0 + 1_000_000;

async function phase(
  wasmPath: string,
  steps: typeof PHASE1,
  startMs: number,
  seed?: Fixture['phase1']['kv'],
): Promise<Fixture['phase1']> {
  const h = await ComponentHarness.start({ startTimeMs: startMs });
  try {
    if (seed) await seedKv(h, seed);
    await h.load({ name: COMPONENT, wasmPath, imports: IMPORTS, config: CONFIG });
    const from = h.logs.length;
    const outcomes = await runSteps(h, steps, startMs);
    return { outcomes, logs: logsSince(h, from), kv: await dumpKv(h) };
  } finally {
    await h.stop();
  }
}

const recordFrom = process.env.MEMORY_FIXTURE_WASM;

// Declared only when recording: it is a tool, not a check, so a normal run neither runs nor counts it as skipped.
if (recordFrom)
  describe('recording the fixture', () => {
    it('runs the scenario against MEMORY_FIXTURE_WASM and writes fixtures/ts-component.json', {
      timeout: 300_000,
    }, async () => {
      const wasm = recordFrom!;
      const phase1 = await phase(wasm, PHASE1, T0);
      const phase2 = await phase(wasm, PHASE2, PHASE2_START, phase1.kv);
      const digest = createHash('sha256').update(readFileSync(wasm)).digest('hex');
      const fixture: Fixture = {
        source: process.env.MEMORY_FIXTURE_SOURCE ?? `the memory component sha256:${digest}`,
        config: CONFIG,
        phase1,
        phase2,
      };
      writeFileSync(FIXTURE, `${JSON.stringify(fixture, null, 2)}\n`);
    });
  });

// Skipped only while recording a new fixture (MEMORY_FIXTURE_WASM): the comparison would read the file being written.
describe.skipIf(recordFrom)('the AssemblyScript component and the TypeScript one', () => {
  let wasmPath: string;
  let fixture: Fixture;
  let outDir: string;

  beforeAll(async () => {
    fixture = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;
    outDir = await mkdtemp(join(tmpdir(), 'cam-mem-compat-'));
    const built = await buildMemory(outDir);
    wasmPath = built.wasmPath;
  }, 120_000);

  afterAll(() => rm(outDir, { recursive: true, force: true }));

  it('gives the same results and stores the same bytes, from an empty store', async () => {
    const got = await phase(wasmPath, PHASE1, T0);
    for (let i = 0; i < PHASE1.length; i++) expect(got.outcomes[i]).toEqual(fixture.phase1.outcomes[i]);
    expect(got.logs).toEqual(fixture.phase1.logs);
    for (const [p, entries] of Object.entries(fixture.phase1.kv)) expect(got.kv[p], p).toEqual(entries);
  });

  it('serves, extends, restores and reverts the data the TypeScript component stored', async () => {
    const got = await phase(wasmPath, PHASE2, PHASE2_START, fixture.phase1.kv);
    for (let i = 0; i < PHASE2.length; i++) expect(got.outcomes[i]).toEqual(fixture.phase2.outcomes[i]);
    expect(got.logs).toEqual(fixture.phase2.logs);
    for (const [p, entries] of Object.entries(fixture.phase2.kv)) expect(got.kv[p], p).toEqual(entries);
  });
});
