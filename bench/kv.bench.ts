/**
 * Key-value backends behind context memory.
 *
 * Suite 'kv-engine': the measurement that chose the embedded engine. The shipped LMDB backend against two
 * SQLite (better-sqlite3) candidates implementing the same KvStore contract with the same durability (WAL +
 * synchronous=FULL: fsync before every acknowledgement) and the same group commit (every batch queued in one
 * event turn shares one transaction and one fsync): one committing on the main thread, one in a worker
 * thread (the shape comparable to lmdb-js, which commits on its own thread). `main-thread µs/op` in the notes
 * is event-loop time spent per operation, i.e. what the kernel cannot spend on anything else.
 *
 * Suites 'kv-embedded', 'kv-redis', 'kv-redis-aof', 'kv-redis-cluster': per backend, throughput (median of 3 runs)
 * and latency with one operation in flight (µs, median and p99). Baselines measured in the same run:
 * write+fdatasync of 100 bytes (the disk's floor) for embedded writes, plain SET/GET through the same
 * ioredis client mode for Redis.
 *
 * Redis suites need redis-server (skipped with a note otherwise). Run: `npm run bench`, or bundle this file
 * with esbuild (lmdb, better-sqlite3 and ioredis external) and call run().
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Cluster, Redis } from 'ioredis';
import { type KvEntry, type KvOp, type KvScanOptions, type KvStore, openKv } from '../host/src/kv/index.js';
import {
  asUint8Array,
  type CheckedOp,
  type CheckedScan,
  checkKey,
  checkKeys,
  checkOps,
  checkPartition,
  checkScan,
} from '../host/src/kv/validate.js';
import { startRedis, startRedisCluster } from '../test/harness/redis.js';
import { makeTempDir, removeDir } from '../test/harness/service.js';
import type { BenchResult } from './types.js';

const VALUE = new Uint8Array(100).fill(7);
const READ_KEYS = 10_000;
const CONCURRENCY = 64;
const REPEATS = 3;

// ---------------------------------------------------------------------------------------------------------
// Measurement

interface Throughput {
  opsPerSec: number;
  mainThreadUsPerOp: number;
}

async function throughput(
  n: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
): Promise<Throughput> {
  let next = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  return { opsPerSec: n / seconds, mainThreadUsPerOp: (elu.active * 1000) / n };
}

async function repeatedThroughput(
  n: number,
  concurrency: number,
  op: (i: number, run: number) => Promise<unknown>,
): Promise<Throughput> {
  const runs: Throughput[] = [];
  for (let r = 0; r < REPEATS; r++) runs.push(await throughput(n, concurrency, (i) => op(i, r)));
  runs.sort((a, b) => a.opsPerSec - b.opsPerSec);
  return runs[Math.floor(runs.length / 2)]!;
}

interface Latency {
  median: number;
  p99: number;
  mainThreadUsPerOp: number;
}

async function latency(n: number, op: (i: number) => Promise<unknown>): Promise<Latency> {
  const us: number[] = [];
  const elu0 = performance.eventLoopUtilization();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op(i);
    us.push((performance.now() - t) * 1000);
  }
  const elu = performance.eventLoopUtilization(elu0);
  us.sort((a, b) => a - b);
  return {
    median: us[Math.floor(us.length / 2)]!,
    p99: us[Math.min(us.length - 1, Math.floor(us.length * 0.99))]!,
    mainThreadUsPerOp: (elu.active * 1000) / n,
  };
}

const round = (x: number) => Math.round(x * 10) / 10;
const key = (i: number) => `key${String(i).padStart(8, '0')}`;

// ---------------------------------------------------------------------------------------------------------
// The workloads, identical for every store

interface Workload {
  putLatency: Latency;
  put: Throughput;
  batch3: Throughput;
  getLatency: Latency;
  get: Throughput;
  scanLatency: Latency;
  scan: Throughput;
}

async function workload(
  kv: KvStore,
  sizes: { seqWrites: number; writes: number; reads: number; scans: number },
) {
  const readPart = 'bench-read';
  for (let i = 0; i < READ_KEYS; i += 1000) {
    await kv.batch(
      readPart,
      Array.from({ length: 1000 }, (_, j) => ({ op: 'put' as const, key: key(i + j), value: VALUE })),
    );
  }
  const rnd = () => Math.floor(Math.random() * READ_KEYS);
  let tag = 0;
  const fresh = () => `w${tag++}`;

  const putLatencyPart = fresh();
  const putLatency = await latency(sizes.seqWrites, (i) =>
    kv.batch(putLatencyPart, [{ op: 'put', key: key(i), value: VALUE }]),
  );
  const putParts = [fresh(), fresh(), fresh()];
  const put = await repeatedThroughput(sizes.writes, CONCURRENCY, (i, r) =>
    kv.batch(putParts[r]!, [{ op: 'put', key: key(i), value: VALUE }]),
  );
  const batchParts = [fresh(), fresh(), fresh()];
  const batch3 = await repeatedThroughput(sizes.writes / 2, CONCURRENCY, (i, r) =>
    kv.batch(batchParts[r]!, [
      { op: 'put', key: key(3 * i), value: VALUE },
      { op: 'put', key: key(3 * i + 1), value: VALUE },
      { op: 'put', key: key(3 * i + 2), value: VALUE },
    ]),
  );
  const getLatency = await latency(sizes.reads / 4, () => kv.get(readPart, key(rnd())));
  const get = await repeatedThroughput(sizes.reads, CONCURRENCY, () => kv.get(readPart, key(rnd())));
  const scan100 = () => kv.scan(readPart, { after: key(rnd() % (READ_KEYS - 100)), limit: 100 });
  const scanLatency = await latency(sizes.scans / 4, scan100);
  const scan = await repeatedThroughput(sizes.scans, CONCURRENCY, scan100);
  return { putLatency, put, batch3, getLatency, get, scanLatency, scan } satisfies Workload;
}

function report(
  suite: string,
  w: Workload,
  opts: {
    put?: { name: string; median: number };
    get?: { name: string; median: number };
    /** The store fsyncs before acknowledging (embedded; Redis with appendfsync always). */
    durable?: boolean;
    notes?: string;
  } = {},
): BenchResult[] {
  const elu = (t: Throughput | Latency) =>
    [`main-thread ${round(t.mainThreadUsPerOp)} µs/op`, opts.notes].filter(Boolean).join('; ');
  const put = opts.durable === false ? 'put' : 'durable put';
  return [
    {
      suite,
      name: `${put}, 1 in flight`,
      unit: 'µs',
      median: round(w.putLatency.median),
      p99: round(w.putLatency.p99),
      baseline: opts.put,
      notes: elu(w.putLatency),
    },
    {
      suite,
      name: `${put}, ${CONCURRENCY} in flight`,
      unit: 'ops/s',
      median: Math.round(w.put.opsPerSec),
      notes: elu(w.put),
    },
    {
      suite,
      name: `batch of 3 puts, ${CONCURRENCY} in flight`,
      unit: 'batches/s',
      median: Math.round(w.batch3.opsPerSec),
      notes: elu(w.batch3),
    },
    {
      suite,
      name: 'point read, 1 in flight',
      unit: 'µs',
      median: round(w.getLatency.median),
      p99: round(w.getLatency.p99),
      baseline: opts.get,
      notes: elu(w.getLatency),
    },
    {
      suite,
      name: `point read, ${CONCURRENCY} in flight`,
      unit: 'ops/s',
      median: Math.round(w.get.opsPerSec),
      notes: elu(w.get),
    },
    {
      suite,
      name: 'scan of 100, 1 in flight',
      unit: 'µs',
      median: round(w.scanLatency.median),
      p99: round(w.scanLatency.p99),
      notes: elu(w.scanLatency),
    },
    {
      suite,
      name: `scan of 100, ${CONCURRENCY} in flight`,
      unit: 'scans/s',
      median: Math.round(w.scan.opsPerSec),
      notes: elu(w.scan),
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------
// SQLite candidates (kept here, not in host/: they lost; see the header of host/src/kv/backend-embedded.ts)

interface SqliteStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  pluck(): SqliteStatement;
  raw(): SqliteStatement;
}
interface SqliteDatabase {
  pragma(s: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}
const require = createRequire(import.meta.url);
const SQLITE_MODULE = require.resolve('better-sqlite3');
const openSqlite = (file: string, opts?: { readonly?: boolean }) =>
  new (require(SQLITE_MODULE) as new (f: string, o?: object) => SqliteDatabase)(file, opts);

const SCHEMA =
  'CREATE TABLE IF NOT EXISTS kv (p BLOB NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (p, k)) WITHOUT ROWID';

/** Reads shared by both SQLite candidates; keys are BLOBs so SQLite compares them with memcmp. */
class SqliteReads {
  readonly #get: SqliteStatement;
  readonly #db: SqliteDatabase;
  readonly #scans = new Map<string, SqliteStatement>();
  constructor(db: SqliteDatabase) {
    this.#db = db;
    this.#get = db.prepare('SELECT v FROM kv WHERE p = ? AND k = ?').pluck();
  }
  get(p: Buffer, k: Buffer): Uint8Array | undefined {
    const v = this.#get.get(p, k) as Buffer | undefined;
    return v === undefined ? undefined : asUint8Array(v);
  }
  getMany(p: Buffer, ks: Buffer[]): (Uint8Array | undefined)[] {
    this.#db.exec('BEGIN');
    try {
      return ks.map((k) => this.get(p, k));
    } finally {
      this.#db.exec('COMMIT');
    }
  }
  scan(p: Buffer, s: CheckedScan): KvEntry[] {
    if (s.empty) return [];
    const lo = s.lower ? (s.lower.inclusive ? ' AND k >= ?' : ' AND k > ?') : '';
    const hi = s.upper ? ' AND k < ?' : '';
    const sql = `SELECT k, v FROM kv WHERE p = ?${lo}${hi} ORDER BY k ${s.reverse ? 'DESC' : 'ASC'} LIMIT ?`;
    let stmt = this.#scans.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql).raw();
      this.#scans.set(sql, stmt);
    }
    const params: unknown[] = [p];
    if (s.lower) params.push(s.lower.bytes);
    if (s.upper) params.push(s.upper);
    params.push(s.limit);
    return (stmt.all(...params) as [Buffer, Buffer][]).map(([k, v]) => ({
      key: k.toString('utf8'),
      value: asUint8Array(v),
    }));
  }
}

/** SQLite committing on the main thread: group commit per event turn, one fsync per group. */
function sqliteMainThread(dir: string): KvStore {
  const db = openSqlite(join(dir, 'kv.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(SCHEMA);
  const put = db.prepare('INSERT OR REPLACE INTO kv (p, k, v) VALUES (?, ?, ?)');
  const del = db.prepare('DELETE FROM kv WHERE p = ? AND k = ?');
  const reads = new SqliteReads(db);
  let queue: Array<{ p: Buffer; ops: CheckedOp[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const group = queue;
    queue = [];
    try {
      db.exec('BEGIN IMMEDIATE');
      for (const b of group) {
        for (const op of b.ops) {
          if (op.op === 'put') put.run(b.p, op.key, op.value);
          else del.run(b.p, op.key);
        }
      }
      db.exec('COMMIT');
    } catch (e) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // no transaction left to roll back
      }
      for (const b of group) b.reject(e);
      return;
    }
    for (const b of group) b.resolve();
  };
  return {
    kind: 'embedded',
    async get(partition, k) {
      return reads.get(checkPartition(partition), checkKey(k));
    },
    async getMany(partition, ks) {
      return reads.getMany(checkPartition(partition), checkKeys(ks));
    },
    batch(partition: string, ops: KvOp[]) {
      const p = checkPartition(partition);
      const checked = checkOps(ops);
      return new Promise<void>((resolve, reject) => {
        queue.push({ p, ops: checked, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    async scan(partition: string, opts: KvScanOptions) {
      return reads.scan(checkPartition(partition), checkScan(opts));
    },
    async close() {
      db.close();
    },
  };
}

const SQLITE_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(workerData.schema);
const put = db.prepare('INSERT OR REPLACE INTO kv (p, k, v) VALUES (?, ?, ?)');
const del = db.prepare('DELETE FROM kv WHERE p = ? AND k = ?');
// Buffers arrive as plain Uint8Arrays after structured cloning; better-sqlite3 binds only Buffers as BLOBs.
const buf = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
let queue = [];
let scheduled = false;
function flush() {
  scheduled = false;
  const group = queue;
  queue = [];
  try {
    db.exec('BEGIN IMMEDIATE');
    for (const m of group) {
      const p = buf(m.p);
      for (const op of m.ops) op.put ? put.run(p, buf(op.k), buf(op.v)) : del.run(p, buf(op.k));
    }
    db.exec('COMMIT');
  } catch (e) {
    try { db.exec('ROLLBACK'); } catch {}
    parentPort.postMessage({ ids: group.map((m) => m.id), error: String(e) });
    return;
  }
  parentPort.postMessage({ ids: group.map((m) => m.id) });
}
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  queue.push(m);
  if (!scheduled) { scheduled = true; setImmediate(flush); }
});
parentPort.postMessage('ready');
`;

/** SQLite with the writer connection in a worker thread; reads on the main thread (WAL allows both). */
async function sqliteWorker(dir: string): Promise<KvStore> {
  const file = join(dir, 'kv.sqlite');
  const worker = new Worker(SQLITE_WORKER_SOURCE, {
    eval: true,
    workerData: { module: SQLITE_MODULE, file, schema: SCHEMA },
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const readDb = openSqlite(file, { readonly: true });
  const reads = new SqliteReads(readDb);
  const pending = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  worker.on('message', (m: { ids: number[]; error?: string }) => {
    for (const id of m.ids) {
      const p = pending.get(id)!;
      pending.delete(id);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve();
    }
  });
  return {
    kind: 'embedded',
    async get(partition, k) {
      return reads.get(checkPartition(partition), checkKey(k));
    },
    async getMany(partition, ks) {
      return reads.getMany(checkPartition(partition), checkKeys(ks));
    },
    batch(partition: string, ops: KvOp[]) {
      const p = checkPartition(partition);
      const checked = checkOps(ops).map((op) => ({
        put: op.op === 'put',
        k: op.key,
        v: op.op === 'put' ? op.value : null,
      }));
      return new Promise<void>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, p, ops: checked });
      });
    },
    async scan(partition: string, opts: KvScanOptions) {
      return reads.scan(checkPartition(partition), checkScan(opts));
    },
    async close() {
      readDb.close();
      worker.postMessage('close');
      await new Promise((r) => worker.once('exit', r));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Baselines

function fdatasyncFloor(dir: string, n: number): { median: number; p99: number } {
  const fd = openSync(join(dir, 'fsync-floor'), 'w');
  const us: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, VALUE);
      fdatasyncSync(fd);
      us.push((performance.now() - t) * 1000);
    }
  } finally {
    closeSync(fd);
  }
  us.sort((a, b) => a - b);
  return { median: us[Math.floor(n / 2)]!, p99: us[Math.floor(n * 0.99)]! };
}

async function rawRedisBaselines(client: Redis | Cluster): Promise<{ set: number; get: number }> {
  const v = Buffer.from(VALUE);
  const set = await latency(1000, (i) => client.set(`raw:{b}:${i}`, v));
  const get = await latency(5000, (i) => client.getBuffer(`raw:{b}:${i % 1000}`));
  return { set: round(set.median), get: round(get.median) };
}

// ---------------------------------------------------------------------------------------------------------

const EMBEDDED_SIZES = { seqWrites: 1000, writes: 20_000, reads: 200_000, scans: 10_000 };
const REDIS_SIZES = { seqWrites: 2000, writes: 20_000, reads: 100_000, scans: 5_000 };

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const root = await makeTempDir('camos-kv-bench');
  try {
    // Engine comparison: same workload, same contract, same durability.
    const floor = fdatasyncFloor(root, 500);
    const lmdbDir = join(root, 'lmdb');
    const lmdb = await openKv({ backend: 'embedded', path: lmdbDir });
    const lmdbW = await workload(lmdb, EMBEDDED_SIZES);
    await lmdb.close();
    const lmdbResults = report('kv-embedded', lmdbW, {
      put: { name: 'write+fdatasync 100 B', median: round(floor.median) },
      notes: 'lmdb, sync commits',
    });
    results.push(...lmdbResults);

    const engineRows: BenchResult[] = report('kv-engine', lmdbW).map((r) => ({
      ...r,
      name: `lmdb: ${r.name}`,
    }));
    const lmdbEngineRows = [...engineRows];
    for (const [label, open] of [
      ['sqlite main thread', async (d: string) => sqliteMainThread(d)],
      ['sqlite worker', sqliteWorker],
    ] as const) {
      const dir = join(root, label.replace(/ /g, '-'));
      mkdirSync(dir);
      const store = await open(dir);
      const w = await workload(store, EMBEDDED_SIZES);
      await store.close();
      report('kv-engine', w).forEach((r, i) => {
        const l = lmdbEngineRows[i]!;
        engineRows.push({
          ...r,
          name: `${label}: ${r.name}`,
          baseline: { name: `lmdb: ${l.name}`, median: l.median },
        });
      });
    }
    results.push(...engineRows);

    for (const aof of [false, true]) {
      const suite = aof ? 'kv-redis-aof' : 'kv-redis';
      const redis = await startRedis({ aof });
      if (!redis) {
        results.push(skipped(suite));
        continue;
      }
      try {
        const raw = new Redis(redis.url, { enableAutoPipelining: true });
        const base = await rawRedisBaselines(raw);
        raw.disconnect();
        const kv = await openKv({ backend: 'redis', url: redis.url });
        const w = await workload(kv, REDIS_SIZES);
        await kv.close();
        results.push(
          ...report(suite, w, {
            put: { name: 'ioredis SET, 1 in flight', median: base.set },
            get: { name: 'ioredis GET, 1 in flight', median: base.get },
            durable: aof,
            notes: aof ? 'appendonly yes, appendfsync always' : 'server without persistence',
          }),
        );
      } finally {
        await redis.stop();
      }
    }

    const cluster = await startRedisCluster();
    if (cluster) {
      try {
        const raw = new Cluster(
          cluster.nodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })),
          { enableAutoPipelining: true },
        );
        const base = await rawRedisBaselines(raw);
        raw.disconnect();
        const kv = await openKv({ backend: 'redis-cluster', nodes: cluster.nodes });
        const w = await workload(kv, REDIS_SIZES);
        await kv.close();
        results.push(
          ...report('kv-redis-cluster', w, {
            put: { name: 'ioredis Cluster SET, 1 in flight', median: base.set },
            get: { name: 'ioredis Cluster GET, 1 in flight', median: base.get },
            durable: false,
            notes: '3 masters, no persistence',
          }),
        );
      } finally {
        await cluster.stop();
      }
    } else {
      results.push(skipped('kv-redis-cluster'));
    }
  } finally {
    await removeDir(root);
  }
  return results;
}

function skipped(suite: string): BenchResult {
  return { suite, name: 'skipped', unit: '-', median: Number.NaN, notes: 'redis-server not installed' };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  for (const r of rows) {
    const p99 = r.p99 === undefined ? '' : ` p99 ${r.p99}`;
    const base = r.baseline ? `  [baseline ${r.baseline.name}: ${r.baseline.median}]` : '';
    console.log(
      `${r.suite.padEnd(17)} ${r.name.padEnd(50)} ${String(r.median).padStart(9)} ${r.unit}${p99}${base}${r.notes ? `  (${r.notes})` : ''}`,
    );
  }
}
