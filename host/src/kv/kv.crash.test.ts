/**
 * kill -9 durability of the embedded backend: a child process (test-fixtures/crash-writer.mjs) writes in a
 * storm and prints each acknowledged batch; the test kills it with SIGKILL mid-storm, reopens the store and
 * requires every acknowledged batch, whole. Three rounds on the same store, so recovery after a crash is
 * itself crashed into.
 *
 * The child runs the compiled backend from host/dist (`npm test` builds first; alone: `npx tsc -b`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeDir } from '../../../test/harness/service.js';
import { type KvStore, openKv } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));
const writerScript = join(here, 'test-fixtures', 'crash-writer.mjs');
const distEntry = join(here, '..', '..', 'dist', 'kv', 'index.js');

/** Must match valueFor() in crash-writer.mjs. */
function valueFor(seq: number): Buffer {
  const v = Buffer.alloc(700 + (seq % 300), seq & 0xff);
  v.write(`seq=${seq};`, 0);
  return v;
}

const keyFor = (prefix: 'k' | 'm', seq: number) => `${prefix}${String(seq).padStart(9, '0')}`;

async function assertBuildIsCurrent(): Promise<void> {
  if (!existsSync(distEntry)) {
    throw new Error(
      `${distEntry} is missing: the crash test runs the compiled backend; run \`npx tsc -b\` first`,
    );
  }
  // tsc -b rewrites its build info on every build that saw a change, but not outputs whose text is unchanged.
  const built = statSync(join(here, '..', '..', 'dist', '.tsbuildinfo')).mtimeMs;
  for (const f of await readdir(here)) {
    if (f.endsWith('.ts') && !f.endsWith('.test.ts') && statSync(join(here, f)).mtimeMs > built) {
      throw new Error(
        `host/dist/kv is older than host/src/kv/${f}: run \`npx tsc -b\` before the crash test`,
      );
    }
  }
}

/** Runs the writer until it has acknowledged at least `minAcks` batches, then SIGKILLs it. */
async function crashRound(dir: string, firstSeq: number, minAcks: number): Promise<number[]> {
  const child: ChildProcess = spawn(process.execPath, [writerScript, dir, String(firstSeq), '32'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acked: number[] = [];
  let stderr = '';
  let partial = '';
  let killed = false;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const stdoutDone = new Promise<void>((resolve) => child.stdout!.on('end', resolve));
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('ack ')) acked.push(Number(line.slice(4)));
    }
    if (!killed && acked.length >= minAcks) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const { code, signal } = await exited;
  await stdoutDone;
  clearTimeout(timer);
  // Lines fully read after the kill still count: they were printed after their batch was acknowledged.
  if (partial.startsWith('ack ') && /^ack \d+$/.test(partial)) acked.push(Number(partial.slice(4)));
  if (signal !== 'SIGKILL' || acked.length < minAcks) {
    throw new Error(
      `writer did not run as expected (exit code ${code}, signal ${signal}, ${acked.length} acks)\n${stderr}`,
    );
  }
  return acked;
}

describe('kv embedded: kill -9 mid-storm loses no acknowledged write', () => {
  let dir: string;
  beforeAll(async () => {
    await assertBuildIsCurrent();
    dir = await makeTempDir('camos-kv-crash');
  });
  afterAll(async () => {
    if (dir) await removeDir(dir);
  });

  it('keeps every acknowledged batch, whole, across three crashes', async () => {
    const storeDir = join(dir, 'store');
    const allAcked = new Set<number>();
    let firstSeq = 0;
    for (let round = 0; round < 3; round++) {
      const acked = await crashRound(storeDir, firstSeq, 1500 + round * 500);
      for (const s of acked) allAcked.add(s);

      const store: KvStore = await openKv({ backend: 'embedded', path: storeDir });
      try {
        const seqs = [...allAcked];
        for (let i = 0; i < seqs.length; i += 1000) {
          const chunk = seqs.slice(i, i + 1000);
          const values = await store.getMany(
            'storm',
            chunk.map((s) => keyFor('k', s)),
          );
          values.forEach((v, j) => {
            const seq = chunk[j]!;
            if (v === undefined) throw new Error(`round ${round}: acknowledged batch ${seq} is missing`);
            expect(Buffer.from(v).equals(valueFor(seq)), `value of acknowledged batch ${seq}`).toBe(true);
          });
        }
        // Batches in flight at the kill may or may not have landed, but never half of one.
        const ks: string[] = [];
        const ms: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.scan('storm', { limit: 10_000, after });
          if (page.length === 0) break;
          for (const e of page) (e.key.startsWith('k') ? ks : ms).push(e.key.slice(1));
          after = page[page.length - 1]!.key;
        }
        expect(ms).toEqual(ks);
        expect(ks.length).toBeGreaterThanOrEqual(allAcked.size);
        firstSeq = Math.max(...ks.map(Number)) + 1;
      } finally {
        await store.close();
      }
    }
    expect(allAcked.size).toBeGreaterThanOrEqual(1500 + 2000 + 2500);
  });
});
