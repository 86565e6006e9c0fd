/**
 * `cam:kernel/kv@0.1.0` for components, over one KvStore shared by all of them.
 *
 * Isolation: the kernel names the calling component on every host call, and every partition a component
 * uses is stored as `<component>/<partition>`. Component names are `[a-z][a-z0-9-]*` (no `/`), so no two
 * components share a prefix, and nothing a guest passes can reach another component's data. The prefix is
 * the component NAME, not its digest: a hot-swapped new build of the same component sees the same data.
 *
 * The store limits a partition to 256 bytes including the prefix, while the WIT promises guests 256 bytes of
 * their own. A partition that would not fit (or that starts with `~`) is therefore stored as
 * `<component>/~<sha-256 hex of the partition>`: a guest can never spell a `~`-partition directly, so the
 * mapping stays one-to-one.
 *
 * Every guest value is checked here, before the store is touched, and every failure is a `kernel-error`
 * the guest can handle. Store failures reach the guest without host details (paths, addresses): those go to
 * `onBackendError` for the operator.
 */
import { createHash } from 'node:crypto';
import type { HostInterface } from '../kernel/kernel.js';
import type { EmbeddedReader } from '../kv/backend-embedded.js';
import { KvError } from '../kv/errors.js';
import type { KvOp, KvScanOptions, KvStore } from '../kv/types.js';
import { distModule } from '../runtime/local.js';
import { describeValue, type GuestFacingError, guestError, utf8Length } from './errors.js';

export const KV_INTERFACE = 'cam:kernel/kv@0.1.0';

/** The limits `cam:kernel/kv` documents (host.wit). */
export const KV_GUEST_LIMITS = {
  maxPartitionBytes: 256,
  maxKeyBytes: 1024,
  maxValueBytes: 16 * 1024 * 1024,
  maxOpsPerBatch: 10_000,
  maxKeysPerGetMany: 10_000,
  maxScanLimit: 10_000,
} as const;

/** The store's own partition limit (KV_LIMITS.maxPartitionBytes). */
const STORE_PARTITION_BYTES = 256;
const COMPONENT_RE = /^[a-z][a-z0-9-]{0,62}$/;

export interface KvHostOptions {
  /** Told about store failures (with full detail) before the guest gets a bare `unavailable`/`internal`. */
  onBackendError?: (component: string, operation: string, error: unknown) => void;
}

/** The store partition that holds `partition` of `component`. Exported for operators' tools and tests. */
export function scopedPartition(component: string, partition: string): string {
  if (!COMPONENT_RE.test(component)) {
    // Only the kernel passes `component`; a bad one is a kernel bug, so this traps rather than answers.
    throw new Error(`kv: invalid component name ${JSON.stringify(component)}`);
  }
  const prefix = `${component}/`;
  if (
    !partition.startsWith('~') &&
    prefix.length + Buffer.byteLength(partition, 'utf8') <= STORE_PARTITION_BYTES
  ) {
    return prefix + partition;
  }
  return `${prefix}~${createHash('sha256').update(partition, 'utf8').digest('hex')}`;
}

function checkPartition(v: unknown): string {
  utf8Length('partition', v, 1, KV_GUEST_LIMITS.maxPartitionBytes);
  if ((v as string).includes('\0')) throw guestError('invalid-argument', 'partition must not contain NUL');
  return v as string;
}

function checkKey(v: unknown, what = 'key'): string {
  utf8Length(what, v, 1, KV_GUEST_LIMITS.maxKeyBytes);
  return v as string;
}

function checkOps(v: unknown): KvOp[] {
  if (!Array.isArray(v)) throw guestError('invalid-argument', `ops must be a list, got ${describeValue(v)}`);
  if (v.length > KV_GUEST_LIMITS.maxOpsPerBatch) {
    throw guestError(
      'resource-exhausted',
      `a batch holds at most ${KV_GUEST_LIMITS.maxOpsPerBatch} ops, got ${v.length}`,
    );
  }
  const out: KvOp[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const op = v[i] as { tag?: unknown; val?: unknown } | null;
    if (op === null || typeof op !== 'object') {
      throw guestError('invalid-argument', `ops[${i}] must be put or delete, got ${describeValue(op)}`);
    }
    if (op.tag === 'delete') {
      out[i] = { op: 'delete', key: checkKey(op.val, `ops[${i}] key`) };
    } else if (op.tag === 'put') {
      const entry = op.val as { key?: unknown; value?: unknown } | null;
      if (entry === null || typeof entry !== 'object') {
        throw guestError('invalid-argument', `ops[${i}] put needs an entry, got ${describeValue(entry)}`);
      }
      const key = checkKey(entry.key, `ops[${i}] key`);
      if (!(entry.value instanceof Uint8Array)) {
        throw guestError(
          'invalid-argument',
          `ops[${i}] value must be bytes, got ${describeValue(entry.value)}`,
        );
      }
      if (entry.value.byteLength > KV_GUEST_LIMITS.maxValueBytes) {
        throw guestError(
          'resource-exhausted',
          `ops[${i}] value is ${entry.value.byteLength} bytes, more than the limit of ${KV_GUEST_LIMITS.maxValueBytes}`,
        );
      }
      out[i] = { op: 'put', key, value: entry.value };
    } else {
      throw guestError(
        'invalid-argument',
        `ops[${i}] must be put or delete, got tag ${describeValue(op.tag)}`,
      );
    }
  }
  return out;
}

/** A store failure as the guest sees it: no host details (paths, addresses), which go to the operator. */
function storeFailure(operation: string, e: unknown): GuestFacingError {
  if (e instanceof KvError) {
    switch (e.code) {
      case 'KV_ERR_INVALID_ARGUMENT':
        // Everything a guest can get wrong is checked above; reaching this means the store is stricter than
        // the WIT, which the guest still deserves to hear about as its own mistake.
        return guestError('invalid-argument', `kv ${operation}: the store refused the request`);
      case 'KV_ERR_CLOSED':
        return guestError('unavailable', `kv ${operation}: storage is shutting down`);
      case 'KV_ERR_UNAVAILABLE':
        return guestError('unavailable', `kv ${operation}: storage backend unavailable, retry later`);
      default:
        return guestError('internal', `kv ${operation}: storage backend failed`);
    }
  }
  return guestError('internal', `kv ${operation}: storage backend failed`);
}

/** The checked, component-scoped arguments of each read; shared by the kernel-thread and worker paths. */
export const kvArgs = {
  get(component: string, partition: unknown, key: unknown): [string, string] {
    return [scopedPartition(component, checkPartition(partition)), checkKey(key)];
  },
  getMany(component: string, partition: unknown, keys: unknown): [string, string[]] {
    const p = scopedPartition(component, checkPartition(partition));
    if (!Array.isArray(keys)) {
      throw guestError('invalid-argument', `keys must be a list, got ${describeValue(keys)}`);
    }
    if (keys.length > KV_GUEST_LIMITS.maxKeysPerGetMany) {
      throw guestError(
        'resource-exhausted',
        `get-many takes at most ${KV_GUEST_LIMITS.maxKeysPerGetMany} keys, got ${keys.length}`,
      );
    }
    return [p, keys.map((k, i) => checkKey(k, `keys[${i}]`))];
  },
  scan(
    component: string,
    partition: unknown,
    prefix: unknown,
    after: unknown,
    limit: unknown,
    reverse: unknown,
  ): [string, KvScanOptions] {
    const p = scopedPartition(component, checkPartition(partition));
    utf8Length('prefix', prefix, 0, KV_GUEST_LIMITS.maxKeyBytes);
    if (after !== undefined && after !== null) utf8Length('after', after, 0, KV_GUEST_LIMITS.maxKeyBytes);
    if (
      typeof limit !== 'number' ||
      !Number.isInteger(limit) ||
      limit < 1 ||
      limit > KV_GUEST_LIMITS.maxScanLimit
    ) {
      throw guestError(
        'invalid-argument',
        `scan limit must be 1-${KV_GUEST_LIMITS.maxScanLimit}, got ${describeValue(limit)}`,
      );
    }
    if (typeof reverse !== 'boolean') {
      throw guestError('invalid-argument', `scan reverse must be a bool, got ${describeValue(reverse)}`);
    }
    return [
      p,
      { prefix: prefix as string, after: (after ?? undefined) as string | undefined, limit, reverse },
    ];
  },
};

export function kvHostInterface(store: KvStore, options: KvHostOptions = {}): HostInterface {
  /** Runs a store call and turns whatever it throws into a kernel-error without host details. */
  async function guarded<T>(component: string, operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      options.onBackendError?.(component, operation, e);
      throw storeFailure(operation, e);
    }
  }

  return {
    name: KV_INTERFACE,
    functions: {
      get: (component, partition, key) => {
        const [p, k] = kvArgs.get(component, partition, key);
        return guarded(component, 'get', () => store.get(p, k));
      },
      getMany: (component, partition, keys) => {
        const [p, ks] = kvArgs.getMany(component, partition, keys);
        return guarded(component, 'get-many', () => store.getMany(p, ks));
      },
      batch: async (component, partition, ops) => {
        const p = scopedPartition(component, checkPartition(partition));
        const checked = checkOps(ops);
        await guarded(component, 'batch', () => store.batch(p, checked));
      },
      scan: (component, partition, prefix, after, limit, reverse) => {
        const [p, opts] = kvArgs.scan(component, partition, prefix, after, limit, reverse);
        return guarded(component, 'scan', () => store.scan(p, opts));
      },
    },
    // On the embedded store, reads are served in the component's own worker (kv-local.ts): no round trip to
    // the kernel thread, which under gRPC load is busy and made each read wait 100-300 us. Writes stay here:
    // lmdb-js batches them on its write thread, and a worker that is terminated mid-transaction (a runaway
    // guest) would leave LMDB's write lock held.
    local:
      store.path === undefined
        ? undefined
        : { module: KV_LOCAL_MODULE, data: { path: store.path, commits: store.commits } },
  };
}

/** kv-local.js beside this module (in host/dist: the worker cannot load the TypeScript sources). */
const KV_LOCAL_MODULE = distModule(new URL('./kv-local.js', import.meta.url));

/**
 * Worker-side reads: the same checks, scoping and error mapping as the kernel-thread functions, over a
 * synchronous reader of the same store. A backend failure cannot reach `onBackendError` from here (another
 * thread); the guest gets the same sanitized error.
 */
export function bindLocalKv(
  reader: EmbeddedReader,
  component: string,
): Record<string, (...args: unknown[]) => unknown> {
  const run = <T>(operation: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw storeFailure(operation, e);
    }
  };
  return {
    get: (partition, key) => {
      const [p, k] = kvArgs.get(component, partition, key);
      return run('get', () => reader.get(p, k));
    },
    getMany: (partition, keys) => {
      const [p, ks] = kvArgs.getMany(component, partition, keys);
      return run('get-many', () => reader.getMany(p, ks));
    },
    scan: (partition, prefix, after, limit, reverse) => {
      const [p, opts] = kvArgs.scan(component, partition, prefix, after, limit, reverse);
      return run('scan', () => reader.scan(p, opts));
    },
  };
}
