/**
 * The host key-value interface behind versioned context memory. The context-memory component never sees a
 * backend: it stores through this interface, and the kernel picks the backend from config (`openKv`).
 *
 * A partition is the unit of atomicity and of co-location: one `batch` touches one partition, and every
 * backend keeps a partition's keys together (one LMDB key range, one Redis Cluster hash slot), so a batch
 * never needs a distributed transaction.
 */

export type KvBackendKind = 'embedded' | 'redis' | 'redis-cluster';

export type KvOp = { op: 'put'; key: string; value: Uint8Array } | { op: 'delete'; key: string };

export interface KvScanOptions {
  /** Only keys that start with these bytes (UTF-8). Empty or absent: the whole partition. */
  prefix?: string;
  /**
   * Exclusive cursor: forward scans return keys strictly greater than `after`, reverse scans keys strictly
   * smaller. Pass the last key of one page to get the next page. Empty or absent: from the start.
   */
  after?: string;
  /** 1..MAX_SCAN_LIMIT. */
  limit: number;
  /** Descending order. */
  reverse?: boolean;
}

export interface KvEntry {
  key: string;
  value: Uint8Array;
}

export interface KvStore {
  readonly kind: KvBackendKind;
  /** Embedded backend only: the store directory, which other threads of this process may read directly. */
  readonly path?: string;
  /**
   * Embedded backend only: a counter (one Int32 over a SharedArrayBuffer) bumped after every commit. Readers
   * on other threads take a new snapshot only when it has moved since their last one.
   */
  readonly commits?: Int32Array;
  get(partition: string, key: string): Promise<Uint8Array | undefined>;
  /** One result per key, in the order of `keys`; read from one consistent snapshot of the partition. */
  getMany(partition: string, keys: string[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Atomic: all ops apply together or not at all, in order (a later op on the same key wins). The promise
   * resolves only once the batch is durable (embedded: fsynced; Redis: as durable as the server's
   * persistence settings make it). Values are copied when `batch` is called, so the caller may reuse them.
   */
  batch(partition: string, ops: KvOp[]): Promise<void>;
  /** Keys in byte-lexicographic (UTF-8) order within one partition, read from one consistent snapshot. */
  scan(partition: string, opts: KvScanOptions): Promise<KvEntry[]>;
  /** Waits for writes already acknowledged or in flight, then releases the backend. Idempotent. */
  close(): Promise<void>;
}

export type KvConfig =
  | { backend: 'embedded'; path: string }
  | { backend: 'redis'; url: string }
  | { backend: 'redis-cluster'; nodes: string[] };

/** Limits shared by every backend so that data written through one can be moved to another. */
export const KV_LIMITS = {
  /** UTF-8 bytes. A partition becomes part of every stored key (LMDB key prefix, Redis key name). */
  maxPartitionBytes: 256,
  /** UTF-8 bytes. LMDB's compiled key limit (1978 bytes) must hold partition + separator + key. */
  maxKeyBytes: 1024,
  maxValueBytes: 16 * 1024 * 1024,
  maxOpsPerBatch: 10_000,
  /** Keys and values of one batch together: one batch is one transaction (LMDB) or one script call (Redis). */
  maxBatchBytes: 64 * 1024 * 1024,
  maxKeysPerGetMany: 10_000,
  maxScanLimit: 10_000,
} as const;
