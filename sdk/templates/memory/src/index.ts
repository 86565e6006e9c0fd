/**
 * __NAME__: a context-memory backend (world `cam:kernel/memory-component`) over the kernel's durable
 * key-value store. Every write creates a new version of (namespace, key); reads return the latest or a given
 * version; snapshots record the latest version of every key of a namespace and `restore` goes back to them;
 * `revert-task` undoes the writes whose metadata carried `task-id`, where nothing newer was written since.
 *
 * Layout in partition `mem`:
 *   head/<ns>/<key>          -> latest version number (decimal)
 *   v/<ns>/<key>/<version>   -> the entry (JSON; version zero-padded so scans are in order)
 *   snap/<id>                -> snapshot: namespace and [key, version] pairs
 *   task/<task-id>/<ns>/<key>/<version> -> marker for revert-task
 * Namespaces and keys may not contain '/'.
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { sha256 } from 'cam:kernel/digest@0.1.0';
import { batch, get, scan } from 'cam:kernel/kv@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import { decodeJson, encodeJson, kernelError, lifecycle as makeLifecycle, utf8 } from '@cam-os/sdk/guest';

const P = 'mem';
type StringMap = Array<[string, string]>;
interface Stored {
  data: Uint8Array;
  hash: string;
  timestampMs: bigint;
  metadata: StringMap;
  author: string;
}
interface Op {
  tag: 'put';
  val: { key: string; value: Uint8Array };
}

let snapshots = 0;

export const lifecycle = makeLifecycle<{ snapshots: number }>({
  configKeys: [],
  exportState: () => ({ snapshots }),
  importState(s) {
    snapshots = s.snapshots;
  },
});

const pad = (v: bigint) => v.toString().padStart(20, '0');
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function name(what: string, v: string): string {
  if (v.length === 0 || v.includes('/'))
    throw kernelError('invalid-argument', `${what} must be non-empty and must not contain '/'`);
  return v;
}

function head(ns: string, key: string): bigint {
  const h = get(P, `head/${ns}/${key}`);
  return h === undefined ? 0n : BigInt(new TextDecoder().decode(h));
}

function entry(ns: string, key: string, version: bigint) {
  const raw = get(P, `v/${ns}/${key}/${pad(version)}`);
  if (raw === undefined) throw kernelError('not-found', `${ns}/${key} has no version ${version}`);
  const s = decodeJson<Stored>(raw);
  return {
    namespace: ns,
    key,
    data: s.data,
    version,
    hash: s.hash,
    timestampMs: s.timestampMs,
    metadata: s.metadata,
    author: s.author,
  };
}

const put = (key: string, value: Uint8Array): Op => ({ tag: 'put', val: { key, value } });

export const memory = {
  read(namespace: string, key: string, version: bigint | undefined) {
    const ns = name('namespace', namespace);
    const k = name('key', key);
    const v = version ?? head(ns, k);
    if (v === 0n) throw kernelError('not-found', `${ns}/${k} was never written`);
    return entry(ns, k, v);
  },
  write(namespace: string, key: string, data: Uint8Array, metadata: StringMap, author: string) {
    const ns = name('namespace', namespace);
    const k = name('key', key);
    const version = head(ns, k) + 1n;
    const stored: Stored = { data, hash: hex(sha256(data)), timestampMs: nowMs(), metadata, author };
    const ops: Op[] = [
      put(`v/${ns}/${k}/${pad(version)}`, encodeJson(stored)),
      put(`head/${ns}/${k}`, utf8(version.toString())),
    ];
    const task = metadata.find(([m]) => m === 'task-id')?.[1];
    if (task) ops.push(put(`task/${name('task-id', task)}/${ns}/${k}/${pad(version)}`, new Uint8Array()));
    batch(P, ops);
    log('debug', 'write', [
      ['namespace', ns],
      ['key', k],
      ['version', version.toString()],
    ]);
    return { version, hash: stored.hash, timestampMs: stored.timestampMs };
  },
  /**
   * Several writes, in order. This template checks them all first, then stores each as `write` does (one kv
   * batch per write); a faster backend gathers a namespace's writes into one batch (see drivers/memory).
   */
  writeMany(
    writes: Array<{ namespace: string; key: string; data: Uint8Array; metadata: StringMap; author: string }>,
  ) {
    writes.forEach((w, i) => {
      try {
        name('namespace', w.namespace);
        name('key', w.key);
      } catch (e) {
        const err = e as { tag?: string; val?: string };
        throw typeof err.tag === 'string' ? { tag: err.tag, val: `writes[${i}]: ${err.val ?? ''}` } : e;
      }
    });
    return writes.map((w) => memory.write(w.namespace, w.key, w.data, w.metadata, w.author));
  },
  snapshot(namespace: string, description: string, author: string): string {
    const ns = name('namespace', namespace);
    const keys: Array<[string, bigint]> = [];
    for (const e of scan(P, `head/${ns}/`, undefined, 10_000, false)) {
      keys.push([e.key.slice(`head/${ns}/`.length), BigInt(new TextDecoder().decode(e.value))]);
    }
    snapshots++;
    const id = `${ns}-${nowMs()}-${snapshots}`;
    batch(P, [put(`snap/${id}`, encodeJson({ namespace: ns, keys, description, author }))]);
    return id;
  },
  restore(snapshotId: string, force: boolean) {
    const raw = get(P, `snap/${name('snapshot-id', snapshotId)}`);
    if (raw === undefined) throw kernelError('not-found', `no snapshot '${snapshotId}'`);
    const snap = decodeJson<{ namespace: string; keys: Array<[string, bigint]> }>(raw);
    const ops: Op[] = [];
    for (const [key, version] of snap.keys) {
      const now = head(snap.namespace, key);
      if (now > version && !force) {
        throw kernelError(
          'failed-precondition',
          `${snap.namespace}/${key} changed since the snapshot (version ${now} > ${version}); pass force`,
        );
      }
      ops.push(put(`head/${snap.namespace}/${key}`, utf8(version.toString())));
    }
    if (ops.length > 0) batch(P, ops);
    return { namespace: snap.namespace, restoredItems: BigInt(ops.length) };
  },
  versionList(namespace: string, key: string, limit: number, sinceVersion: bigint | undefined) {
    const ns = name('namespace', namespace);
    const k = name('key', key);
    if (limit < 1 || limit > 1000) throw kernelError('invalid-argument', 'limit must be 1..1000');
    const prefix = `v/${ns}/${k}/`;
    const after = sinceVersion === undefined ? undefined : prefix + pad(sinceVersion);
    const rows = scan(P, prefix, after, limit + 1, false);
    const versions = rows.slice(0, limit).map((r) => {
      const s = decodeJson<Stored>(r.value);
      return {
        version: BigInt(r.key.slice(prefix.length)),
        timestampMs: s.timestampMs,
        author: s.author,
        description: s.metadata.find(([m]) => m === 'description')?.[1] ?? '',
        hash: s.hash,
        size: BigInt(s.data.length),
        tags: s.metadata,
      };
    });
    const hasMore = rows.length > limit;
    return { versions, hasMore, nextToken: hasMore ? versions.at(-1)!.version.toString() : undefined };
  },
  revertTask(taskId: string) {
    const prefix = `task/${name('task-id', taskId)}/`;
    const ops: Array<Op | { tag: 'delete'; val: string }> = [];
    const skipped: string[] = [];
    let reverted = 0n;
    for (const e of scan(P, prefix, undefined, 10_000, true)) {
      const [ns, key, v] = e.key.slice(prefix.length).split('/') as [string, string, string];
      const version = BigInt(v);
      if (head(ns, key) !== version) {
        skipped.push(`${ns}/${key}`);
        continue;
      }
      ops.push(
        version > 1n
          ? put(`head/${ns}/${key}`, utf8((version - 1n).toString()))
          : { tag: 'delete', val: `head/${ns}/${key}` },
      );
      ops.push({ tag: 'delete', val: e.key });
      reverted++;
    }
    if (ops.length > 0) batch(P, ops);
    return { reverted, skipped };
  },
};
