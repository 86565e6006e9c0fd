/**
 * The embedded backend: LMDB (lmdb-js), one environment per store directory, no server.
 *
 * Why LMDB and not SQLite, measured with `bench/kv.bench.ts` (suite kv-engine) on this project's machine kind
 * (2 cores shared with other work, ext4 on virtio, write+fdatasync of 100 B ≈ 150 µs). Every candidate
 * implements this same KvStore contract and fsyncs before acknowledging: LMDB with sync commits; SQLite
 * (better-sqlite3) with WAL + synchronous=FULL and group commit (all batches queued in one event turn share
 * one transaction and one fsync), committing either on the main thread or in a worker thread. 100-byte
 * values, 10k keys for reads; medians of 3 runs (single runs vary by up to ±30 % under load):
 *
 *                                         LMDB        SQLite, main thread   SQLite, writer in a worker
 *   durable put, 1 in flight (latency)    309 µs      195 µs                316 µs
 *   durable put, 64 in flight             91k/s       79k/s                 53k/s
 *   batch of 3 puts, 64 in flight         68k/s       87k/s                 40k/s
 *   point read, 1 in flight (latency)     2.0 µs      4.6 µs                4.6 µs
 *   point read, 64 in flight              439k/s      199k/s                184k/s
 *   scan of 100, 1 in flight (latency)    115 µs      141 µs                150 µs
 *   scan of 100, 64 in flight             5.0k/s      3.7k/s                3.5k/s
 *
 * SQLite on the main thread wins writes: ~40 % lower single-writer latency (one WAL fsync per commit against
 * LMDB's two: data pages, then meta page) and typically 1.1-1.3x LMDB's concurrent write throughput (0.6-1.9x
 * across runs). But better-sqlite3 is synchronous: every commit's fsync runs on the event loop (~150-300 µs
 * each), stalling gRPC and component calls meanwhile.
 * lmdb-js commits on a background thread (strace: no fsync on the main thread). Given the same shape, a
 * worker-thread writer, SQLite is 1.7-2x slower at writes than LMDB, and it reads 2x slower in any shape.
 * LMDB also needs no group-commit code of ours (lmdb-js batches concurrent writes into one transaction and
 * resolves each promise after the shared commit) and ships prebuilt (better-sqlite3 compiles at install).
 * The cost: an LMDB file never shrinks (freed pages are reused, not returned to the file system).
 *
 * Durability: `overlappingSync: false` makes every commit fsync (data pages, then the meta page) before its
 * promise resolves, so an acknowledged batch survives kill -9 and power loss. lmdb-js's default
 * (overlappingSync) acknowledges before the fsync; it measured no faster here, so it buys nothing.
 *
 * Layout: one LMDB database, key = UTF-8(partition) 0x00 UTF-8(key). Partitions contain no NUL, so each
 * partition is one contiguous key range, and LMDB's memcmp order is the byte-lexicographic order of keys.
 * A batch is one `db.batch` block: one LMDB write transaction, so it applies entirely or not at all.
 */
import { mkdir } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { KvError } from './errors.js';
import type { KvEntry, KvOp, KvScanOptions, KvStore } from './types.js';
import { asUint8Array, checkKey, checkKeys, checkOps, checkPartition, checkScan } from './validate.js';

// lmdb-js shares one environment per path inside a process; a second store on the same path would be closed
// under the first one's feet, so it is refused instead.
const openPaths = new Set<string>();

export async function openEmbedded(path: string): Promise<KvStore> {
  const dir = resolvePath(path);
  if (openPaths.has(dir)) {
    throw new KvError('KV_ERR_CONFIG_INVALID', `embedded store at ${dir} is already open in this process`);
  }
  openPaths.add(dir);
  try {
    await mkdir(dir, { recursive: true });
    const db = open<Buffer, Buffer>({
      path: dir,
      keyEncoding: 'binary',
      encoding: 'binary',
      overlappingSync: false,
      noSync: false,
    });
    return new EmbeddedKv(db, dir);
  } catch (e) {
    openPaths.delete(dir);
    throw new KvError('KV_ERR_UNAVAILABLE', `cannot open embedded store at ${dir}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

class EmbeddedKv implements KvStore {
  readonly kind = 'embedded' as const;
  readonly #db: RootDatabase<Buffer, Buffer>;
  readonly #dir: string;
  #closing: Promise<void> | undefined;
  readonly commits = new Int32Array(new SharedArrayBuffer(4));

  /** The store directory: other threads of this process can read it through openEmbeddedReader. */
  get path(): string {
    return this.#dir;
  }

  constructor(db: RootDatabase<Buffer, Buffer>, dir: string) {
    this.#db = db;
    this.#dir = dir;
  }

  async get(partition: string, key: string): Promise<Uint8Array | undefined> {
    const k = composite(checkPartition(partition), checkKey(key));
    this.#checkOpen();
    return readOne(this.#db, k);
  }

  async getMany(partition: string, keys: string[]): Promise<(Uint8Array | undefined)[]> {
    const p = checkPartition(partition);
    const ks = checkKeys(keys).map((k) => composite(p, k));
    this.#checkOpen();
    return readMany(this.#db, ks);
  }

  async batch(partition: string, ops: KvOp[]): Promise<void> {
    const p = checkPartition(partition);
    const checked = checkOps(ops);
    this.#checkOpen();
    if (checked.length === 0) return;
    const db = this.#db;
    try {
      await db.batch(() => {
        for (const op of checked) {
          if (op.op === 'put') db.put(composite(p, op.key), op.value);
          else db.remove(composite(p, op.key));
        }
      });
      // Before the caller hears of the commit: a read started after that sees the counter moved.
      Atomics.add(this.commits, 0, 1);
    } catch (e) {
      throw new KvError(
        'KV_ERR_BACKEND',
        `embedded store at ${this.#dir}: batch failed: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }

  async scan(partition: string, opts: KvScanOptions): Promise<KvEntry[]> {
    const p = checkPartition(partition);
    const s = checkScan(opts);
    this.#checkOpen();
    return readRange(this.#db, p, s);
  }

  close(): Promise<void> {
    this.#closing ??= this.#db.close().finally(() => openPaths.delete(this.#dir));
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing) throw new KvError('KV_ERR_CLOSED', `embedded store at ${this.#dir} is closed`);
  }
}

/**
 * Synchronous reads of an embedded store from another thread of this process: a component's worker serves
 * its `cam:kernel/kv` reads through this instead of a round trip to the kernel thread (writes still go
 * through the kernel, whose lmdb-js write thread batches and fsyncs them). lmdb-js shares one environment per
 * path across the threads of a process, so both sides see the same data.
 *
 * Snapshot: lmdb-js renews its shared read transaction only on a new event turn, which a worker blocked in
 * its call loop never reaches. A read therefore takes a fresh snapshot (`resetReadTxn`) whenever the store's
 * `commits` counter has moved since the last one, so a guest reads what the kernel committed for it a moment
 * ago. The store bumps the counter before it acknowledges a commit, so a read that starts after the
 * acknowledgement sees it. Without a counter, every read takes a fresh snapshot. (Resetting on every read
 * cost a reset, a renew and an lmdb-js timer per read: two of each per memory `read`, under read-only load.)
 */
export interface EmbeddedReader {
  get(partition: string, key: string): Uint8Array | undefined;
  getMany(partition: string, keys: string[]): (Uint8Array | undefined)[];
  scan(partition: string, opts: KvScanOptions): KvEntry[];
}

export function openEmbeddedReader(path: string, commits?: Int32Array): EmbeddedReader {
  const db = open<Buffer, Buffer>({
    path: resolvePath(path),
    keyEncoding: 'binary',
    encoding: 'binary',
    overlappingSync: false,
    noSync: false,
  });
  let seen = -1;
  const fresh = (): void => {
    if (commits) {
      const c = Atomics.load(commits, 0);
      if (c === seen) return;
      seen = c;
    }
    db.resetReadTxn();
  };
  return {
    get(partition, key) {
      const k = composite(checkPartition(partition), checkKey(key));
      fresh();
      return readOne(db, k);
    },
    getMany(partition, keys) {
      const p = checkPartition(partition);
      const ks = checkKeys(keys).map((k) => composite(p, k));
      fresh();
      return readMany(db, ks);
    },
    scan(partition, opts) {
      const p = checkPartition(partition);
      const s = checkScan(opts);
      fresh();
      return readRange(db, p, s);
    },
  };
}

type Db = RootDatabase<Buffer, Buffer>;

function readOne(db: Db, k: Buffer): Uint8Array | undefined {
  const v = db.get(k);
  return v === undefined ? undefined : asUint8Array(v);
}

/**
 * One snapshot for all keys without an explicit transaction: lmdb-js reads through its shared read
 * transaction, which is renewed or reset only between event turns or by `resetReadTxn`, never inside this
 * synchronous loop. (`useReadTransaction` renewed the transaction natively on every call.)
 */
function readMany(db: Db, ks: Buffer[]): (Uint8Array | undefined)[] {
  const out: (Uint8Array | undefined)[] = new Array(ks.length);
  for (let i = 0; i < ks.length; i++) {
    const v = db.get(ks[i]!);
    out[i] = v === undefined ? undefined : asUint8Array(v);
  }
  return out;
}

function readRange(db: Db, p: Buffer, s: ReturnType<typeof checkScan>): KvEntry[] {
  if (s.empty) return [];
  const lo = s.lower ? composite(p, s.lower.bytes) : partitionStart(p);
  // partitionStart is never a stored key (keys are non-empty), so treating it as exclusive is exact.
  const loInclusive = s.lower ? s.lower.inclusive : false;
  const hi = s.upper ? composite(p, s.upper) : partitionEnd(p);
  const keyStart = p.length + 1;
  const out: KvEntry[] = [];
  const transaction = db.useReadTransaction();
  try {
    // Bounds are checked here rather than through getRange's start/end, whose inclusivity differs between
    // forward and reverse iteration.
    const range = db.getRange({ start: s.reverse ? hi : lo, reverse: s.reverse, transaction });
    for (const { key, value } of range) {
      if (s.reverse) {
        if (key.equals(hi)) continue;
        const c = Buffer.compare(key, lo);
        if (c < 0 || (c === 0 && !loInclusive)) break;
      } else {
        if (Buffer.compare(key, hi) >= 0) break;
        if (!loInclusive && key.equals(lo)) continue;
      }
      out.push({ key: key.toString('utf8', keyStart), value: asUint8Array(value) });
      if (out.length === s.limit) break;
    }
  } finally {
    transaction.done();
  }
  return out;
}

function composite(partition: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(partition.length + 1 + key.length);
  partition.copy(out, 0);
  out[partition.length] = 0;
  key.copy(out, partition.length + 1);
  return out;
}

function partitionStart(partition: Buffer): Buffer {
  return Buffer.concat([partition, Buffer.of(0)]);
}

function partitionEnd(partition: Buffer): Buffer {
  return Buffer.concat([partition, Buffer.of(1)]);
}
