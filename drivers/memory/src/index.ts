/**
 * The memory component (world `cam:kernel/memory-component@0.1.0`): versioned context memory over the
 * host's kv, with sha-256 from the host's digest interface. Layout and rules: layout.ts.
 *
 * Every operation is one kv batch in the namespace's partition, so a write, a snapshot, a restore or the
 * revert of one namespace happens entirely or not at all. The only exception is the task index (which
 * namespaces a task wrote in), written just before a task's first write in a namespace: if that write then
 * fails, the index names a namespace with nothing to revert, which revert-task tolerates.
 *
 * The component assumes it is the only writer of its partitions (concurrency 1, as its manifest says):
 * version numbers are read-increment-write, and the heads of recently used keys are cached, which saves a
 * host call on every read and write. During a hot-swap the new instance gets calls only after the old one
 * has drained, so its cache (empty at start) never misses a write.
 *
 * Configuration (`init`): `max-versions` — versions kept per key (1-1,000,000, default 100); older ones are
 * pruned as new ones are written, except versions that a snapshot or a restored/reverted version needs.
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { sha256 } from 'cam:kernel/digest@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import {
  appendVersion,
  checkAuthor,
  checkDescription,
  checkKey,
  checkMaxVersions,
  checkMetadata,
  checkNamespace,
  checkTaskId,
  DEFAULT_MAX_VERSIONS,
  dataKey,
  EMPTY_HEAD,
  fail,
  HEAD_PREFIX,
  type Head,
  headKey,
  type KvOp,
  LIMITS,
  type Meta,
  markerKey,
  markerPrefix,
  metaKey,
  metaPrefix,
  parseSnapshotId,
  partitionOf,
  pin,
  planRestore,
  RESTORED_FROM_KEY,
  REVERTED_TASK_KEY,
  SNAPSHOT_COUNTER,
  type SnapshotRecord,
  type StringMap,
  snapshotId,
  snapshotKey,
  TASK_INDEX,
  TASK_METADATA_KEY,
  type TaskMarker,
  taskIndexKey,
} from './layout.js';
import {
  commitBatch,
  decodeJson,
  del,
  getJson,
  getManyRaw,
  getRaw,
  lastStorageError,
  putBytes,
  putJson,
  scanAll,
  scanPage,
  toHex,
} from './store.js';

const STATE_FORMAT = 1;

let initialized = false;
let maxVersions = DEFAULT_MAX_VERSIONS;
let writes = 0;
let reads = 0;

/** Heads by `<namespace>\0<key>`; `null` records a key known not to exist. Updated only after a commit. */
const headCache = new Map<string, Head | null>();
const HEAD_CACHE_MAX = 10_000;

function cacheHead(namespace: string, key: string, head: Head | null): void {
  const id = `${namespace}\0${key}`;
  if (!headCache.has(id) && headCache.size >= HEAD_CACHE_MAX) {
    headCache.delete(headCache.keys().next().value!);
  }
  headCache.set(id, head);
}

function cachedHead(namespace: string, key: string): Head | null | undefined {
  return headCache.get(`${namespace}\0${key}`);
}

/** A head safe to mutate: cached heads are shared and must only change once a batch has committed. */
function copyHead(h: Head | null | undefined): Head {
  if (!h) return { ...EMPTY_HEAD };
  const out: Head = { n: h.n, o: h.o, l: h.l, ld: h.ld };
  if (h.p) out.p = h.p.slice();
  return out;
}

/** The head of `key`, from the cache or from kv (and then cached). */
function loadHead(namespace: string, p: string, key: string): Head | null {
  const hit = cachedHead(namespace, key);
  if (hit !== undefined) return hit;
  const head = getJson<Head>(p, headKey(key)) ?? null;
  cacheHead(namespace, key, head);
  return head;
}

function now(): number {
  return Number(nowMs());
}

function notFound(message: string) {
  return fail('not-found', message);
}

function missing(what: string) {
  // Meta and data of a retained version are written in one batch; one without the other is a bug.
  return fail('internal', `${what} is missing from storage`);
}

/** Metadata for a version written on the system's behalf: no task tag (it is not that task's write). */
function provenance(md: StringMap, key: string, value: string): StringMap {
  const out: StringMap = [];
  for (const e of md) if (e[0] !== TASK_METADATA_KEY && e[0] !== key) out.push(e);
  out.push([key, value]);
  return out;
}

function entryOf(namespace: string, key: string, meta: Meta, data: Uint8Array) {
  return {
    namespace,
    key,
    data,
    version: BigInt(meta.v),
    hash: meta.h,
    timestampMs: BigInt(meta.t),
    metadata: meta.m,
    author: meta.a,
  };
}

function heads(partition: string): Map<string, Head> {
  const out = new Map<string, Head>();
  for (const e of scanAll(partition, HEAD_PREFIX))
    out.set(e.key.slice(HEAD_PREFIX.length), decodeJson<Head>(e.value)!);
  return out;
}

/** The checked arguments of one write. */
interface CheckedWrite {
  namespace: string;
  key: string;
  data: Uint8Array;
  md: StringMap;
  task: string | undefined;
  author: string;
}

interface WriteRequest {
  namespace: string;
  key: string;
  data: Uint8Array;
  metadata: StringMap;
  author: string;
}

/** write-many's limit on requests per call (the WIT's). */
const MAX_WRITES_PER_CALL = 10_000;
/** write-many stores a namespace's writes in batches of about this many ops / data bytes (kv caps a batch). */
const BATCH_FLUSH_OPS = 4_000;
const BATCH_FLUSH_BYTES = 32 * 1024 * 1024;

function checkWrite(
  namespace: string,
  key: string,
  data: Uint8Array,
  metadata: StringMap,
  author: string,
): CheckedWrite {
  checkNamespace(namespace);
  checkKey(key);
  checkAuthor(author);
  // Not `instanceof`: the bindings create byte lists in another realm of the engine.
  if (!ArrayBuffer.isView(data)) throw fail('invalid-argument', 'data must be bytes');
  if (data.length > LIMITS.dataBytes) {
    throw fail('resource-exhausted', `data is ${data.length} bytes, at most ${LIMITS.dataBytes} are allowed`);
  }
  const { metadata: md, task } = checkMetadata(metadata);
  return { namespace, key, data, md, task, author };
}

/**
 * Append one write's new version to `head` (mutated) and its kv ops to `ops`; nothing is stored yet. The
 * caller commits `ops` and then caches `head`.
 */
function stageWrite(w: CheckedWrite, head: Head, ops: KvOp[]) {
  const t = now();
  const hash = toHex(sha256(w.data));
  const meta: Omit<Meta, 'v' | 'dv'> = { t, a: w.author, h: hash, s: w.data.length, m: w.md };
  if (w.task !== undefined) meta.task = w.task;
  const appended = appendVersion(head, w.key, meta, w.data, maxVersions, putJson, putBytes);
  for (const op of appended.ops) ops.push(op);
  ops.push(putJson(headKey(w.key), head));
  return { version: BigInt(appended.version), hash, timestampMs: BigInt(t) };
}

export const lifecycle = {
  init(config: StringMap): void {
    if (initialized) throw fail('failed-precondition', 'init was already called');
    let max = DEFAULT_MAX_VERSIONS;
    for (const [key, value] of config) {
      if (key === 'max-versions') max = checkMaxVersions(value);
      else throw fail('invalid-argument', `unknown config key '${key}' (known: max-versions)`);
    }
    maxVersions = max;
    initialized = true;
  },

  health() {
    const checks: StringMap = [
      ['initialized', String(initialized)],
      ['max-versions', String(maxVersions)],
      ['writes', String(writes)],
      ['reads', String(reads)],
      ['kv', lastStorageError === undefined ? 'ok' : lastStorageError],
    ];
    return lastStorageError === undefined
      ? { status: 'serving', detail: '', checks }
      : { status: 'degraded', detail: `storage: ${lastStorageError}`, checks };
  },

  exportState(): Uint8Array {
    if (!initialized) throw fail('failed-precondition', 'export-state before init');
    // All context is durable in kv; only the operation counters live in memory.
    return new TextEncoder().encode(JSON.stringify({ format: STATE_FORMAT, writes, reads }));
  },

  importState(state: Uint8Array): void {
    let parsed: { format?: unknown; writes?: unknown; reads?: unknown };
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw fail('invalid-argument', 'state is not the JSON this component exports');
    }
    if (typeof parsed?.format !== 'number') throw fail('invalid-argument', 'state has no format number');
    if (parsed.format > STATE_FORMAT) {
      throw fail('unimplemented', `state format ${parsed.format} is newer than ${STATE_FORMAT}`);
    }
    writes += typeof parsed.writes === 'number' ? parsed.writes : 0;
    reads += typeof parsed.reads === 'number' ? parsed.reads : 0;
  },
};

export const memory = {
  read(namespace: string, key: string, version: bigint | null | undefined) {
    checkNamespace(namespace);
    checkKey(key);
    const p = partitionOf(namespace);
    reads++;
    if (version === undefined || version === null || version === 0n) {
      const head = loadHead(namespace, p, key);
      if (!head) throw notFound(`no key '${key}' in namespace '${namespace}'`);
      if (head.l === 0) {
        throw notFound(
          `key '${key}' in namespace '${namespace}' was removed from the latest view (by a restore or a task revert); its versions 1-${head.n} can still be read by number`,
        );
      }
      const [m, d] = getManyRaw(p, [metaKey(key, head.l), dataKey(key, head.ld)]);
      const meta = decodeJson<Meta>(m);
      if (!meta || !d) throw missing(`version ${head.l} of '${key}'`);
      return entryOf(namespace, key, meta, d);
    }
    const v = Number(version);
    const [m, d, h] = getManyRaw(p, [metaKey(key, v), dataKey(key, v), headKey(key)]);
    const meta = decodeJson<Meta>(m);
    if (!meta) {
      const head = decodeJson<Head>(h);
      if (!head) throw notFound(`no key '${key}' in namespace '${namespace}'`);
      if (v > head.n) throw notFound(`key '${key}' has no version ${version} (the latest is ${head.n})`);
      throw notFound(`version ${v} of '${key}' was pruned (retention keeps the newest ${maxVersions})`);
    }
    const data = meta.dv === v ? d : getRaw(p, dataKey(key, meta.dv));
    if (!data) throw missing(`data of version ${v} of '${key}'`);
    return entryOf(namespace, key, meta, data);
  },

  write(namespace: string, key: string, data: Uint8Array, metadata: StringMap, author: string) {
    const w = checkWrite(namespace, key, data, metadata, author);
    const p = partitionOf(namespace);
    let head: Head;
    let firstTaskWrite = false;
    const cached = cachedHead(namespace, key);
    if (w.task === undefined) {
      head = copyHead(loadHead(namespace, p, key));
    } else if (cached !== undefined) {
      head = copyHead(cached);
      firstTaskWrite = getRaw(p, markerKey(w.task, key)) === undefined;
    } else {
      const [h, marker] = getManyRaw(p, [headKey(key), markerKey(w.task, key)]);
      head = copyHead(decodeJson<Head>(h));
      firstTaskWrite = marker === undefined || marker === null;
    }
    const ops: KvOp[] = [];
    if (w.task !== undefined && firstTaskWrite) {
      const marker: TaskMarker = { prev: head.l };
      ops.push(putJson(markerKey(w.task, key), marker));
      // Before the write itself: an index entry without a write is harmless, a write without one is not.
      commitBatch(TASK_INDEX, [putJson(taskIndexKey(w.task, namespace), 1)]);
    }
    const receipt = stageWrite(w, head, ops);
    commitBatch(p, ops);
    cacheHead(namespace, key, head);
    writes++;
    return receipt;
  },

  writeMany(requests: WriteRequest[]) {
    if (!Array.isArray(requests)) throw fail('invalid-argument', 'writes must be a list');
    if (requests.length > MAX_WRITES_PER_CALL) {
      throw fail(
        'resource-exhausted',
        `write-many takes at most ${MAX_WRITES_PER_CALL} writes, got ${requests.length}`,
      );
    }
    // Every request is checked before anything is stored.
    const checked = requests.map((r, i) => {
      try {
        return checkWrite(r.namespace, r.key, r.data, r.metadata, r.author);
      } catch (e) {
        const err = e as { tag?: string; val?: string };
        if (typeof err?.tag === 'string') throw { tag: err.tag, val: `writes[${i}]: ${err.val ?? ''}` };
        throw e;
      }
    });
    const receipts: Array<ReturnType<typeof stageWrite>> = [];
    // The namespace being gathered: its ops, and the heads it changed (stored and cached after the commit).
    let ns: string | undefined;
    let ops: KvOp[] = [];
    let bytes = 0;
    const heads = new Map<string, Head>();
    let pendingWrites = 0;
    const flush = () => {
      if (ns === undefined) return;
      commitBatch(partitionOf(ns), ops);
      for (const [key, head] of heads) cacheHead(ns, key, head);
      writes += pendingWrites;
      ns = undefined;
      ops = [];
      bytes = 0;
      heads.clear();
      pendingWrites = 0;
    };
    for (let i = 0; i < checked.length; i++) {
      const w = checked[i]!;
      if (w.task !== undefined) {
        // Task-tagged writes keep their own path (task index, marker): stored alone, in order.
        flush();
        receipts.push(memory.write(w.namespace, w.key, w.data, requests[i]!.metadata, w.author));
        continue;
      }
      if (ns !== w.namespace || ops.length >= BATCH_FLUSH_OPS || bytes >= BATCH_FLUSH_BYTES) {
        flush();
        ns = w.namespace;
      }
      let head = heads.get(w.key);
      if (!head) {
        head = copyHead(loadHead(w.namespace, partitionOf(w.namespace), w.key));
        heads.set(w.key, head);
      }
      receipts.push(stageWrite(w, head, ops));
      bytes += w.data.length;
      pendingWrites++;
    }
    flush();
    return receipts;
  },

  snapshot(namespace: string, description: string, author: string): string {
    checkNamespace(namespace);
    checkDescription(description);
    checkAuthor(author);
    const p = partitionOf(namespace);
    const current = heads(p);
    if (current.size > LIMITS.snapshotKeys) {
      throw fail(
        'resource-exhausted',
        `namespace '${namespace}' has ${current.size} keys; a snapshot covers at most ${LIMITS.snapshotKeys}`,
      );
    }
    const seq = (getJson<number>(p, SNAPSHOT_COUNTER) ?? 0) + 1;
    const id = snapshotId(namespace, seq);
    const keys: SnapshotRecord['keys'] = [];
    const ops: KvOp[] = [];
    for (const [key, head] of current) {
      keys.push([key, head.n, head.l, head.ld]);
      if (head.l > 0) {
        // The snapshot's versions must outlive retention, or restore would have nothing to restore.
        const pinnedLive = pin(head, head.l);
        const pinnedData = pin(head, head.ld);
        if (pinnedLive || pinnedData) ops.push(putJson(headKey(key), head));
      }
    }
    const record: SnapshotRecord = { id, namespace, t: now(), a: author, description, keys };
    ops.push(putJson(snapshotKey(seq), record), putJson(SNAPSHOT_COUNTER, seq));
    commitBatch(p, ops);
    for (const [key, head] of current) cacheHead(namespace, key, head);
    log('info', 'context snapshot taken', [
      ['snapshot', id],
      ['keys', String(keys.length)],
      ['author', author],
    ]);
    return id;
  },

  restore(id: string, force: boolean) {
    const { namespace, seq } = parseSnapshotId(id);
    const p = partitionOf(namespace);
    const snap = getJson<SnapshotRecord>(p, snapshotKey(seq));
    if (!snap) throw notFound(`no snapshot ${id}`);
    const current = heads(p);
    const plan = planRestore(snap, current, force === true);
    if ('conflict' in plan) {
      throw fail(
        'failed-precondition',
        `namespace '${namespace}' has newer data than snapshot ${id}: ${plan.conflict}; restore with force to overwrite`,
      );
    }
    const metas =
      plan.rewrite.length > 0
        ? getManyRaw(
            p,
            plan.rewrite.map(([key, l]) => metaKey(key, l)),
          )
        : [];
    const t = now();
    const ops: KvOp[] = [];
    for (let i = 0; i < plan.rewrite.length; i++) {
      const [key, l, ld] = plan.rewrite[i]!;
      const meta = decodeJson<Meta>(metas[i]);
      if (!meta) throw missing(`version ${l} of '${key}' (pinned by snapshot ${id})`);
      const head = current.get(key)!;
      const appended = appendVersion(
        head,
        key,
        { t, a: meta.a, h: meta.h, s: meta.s, m: provenance(meta.m, RESTORED_FROM_KEY, id), dv: ld },
        undefined,
        maxVersions,
        putJson,
        putBytes,
      );
      for (const op of appended.ops) ops.push(op);
      ops.push(putJson(headKey(key), head));
    }
    for (const key of plan.remove) {
      const head = current.get(key)!;
      head.l = 0;
      head.ld = 0;
      ops.push(putJson(headKey(key), head));
    }
    if (ops.length > LIMITS.batchOps) {
      throw fail(
        'resource-exhausted',
        `restoring ${id} needs ${ops.length} storage operations, more than one batch holds`,
      );
    }
    if (ops.length > 0) commitBatch(p, ops);
    for (const [key, head] of current) cacheHead(namespace, key, head);
    const restoredItems = plan.rewrite.length + plan.remove.length;
    log('info', 'context snapshot restored', [
      ['snapshot', id],
      ['restored-items', String(restoredItems)],
      ['force', String(force === true)],
    ]);
    return { namespace, restoredItems: BigInt(restoredItems) };
  },

  versionList(namespace: string, key: string, limit: number, sinceVersion: bigint | null | undefined) {
    checkNamespace(namespace);
    checkKey(key);
    const n = limit === 0 ? 100 : Math.min(limit, 1000);
    const since = sinceVersion === undefined || sinceVersion === null ? 0 : Number(sinceVersion);
    const p = partitionOf(namespace);
    const page = scanPage(p, metaPrefix(key), since > 0 ? metaKey(key, since) : undefined, n + 1);
    if (page.length === 0 && !loadHead(namespace, p, key))
      throw notFound(`no key '${key}' in namespace '${namespace}'`);
    const versions = [];
    for (let i = 0; i < page.length && i < n; i++) {
      const m = decodeJson<Meta>(page[i]!.value)!;
      let description = '';
      for (const e of m.m) if (e[0] === 'description') description = e[1];
      versions.push({
        version: BigInt(m.v),
        timestampMs: BigInt(m.t),
        author: m.a,
        description,
        hash: m.h,
        size: BigInt(m.s),
        tags: m.m,
      });
    }
    const hasMore = page.length > n;
    return {
      versions,
      hasMore,
      nextToken: hasMore ? String(versions[versions.length - 1]!.version) : undefined,
    };
  },

  revertTask(taskId: string) {
    checkTaskId(taskId);
    const indexPrefix = `${taskId}\0`;
    const namespaces = scanAll(TASK_INDEX, indexPrefix).map((e) => e.key.slice(indexPrefix.length));
    let reverted = 0;
    const skipped: string[] = [];
    for (const namespace of namespaces) {
      const p = partitionOf(namespace);
      const prefix = markerPrefix(taskId);
      const markers = scanAll(p, prefix).map((e): [string, TaskMarker] => [
        e.key.slice(prefix.length),
        decodeJson<TaskMarker>(e.value)!,
      ]);
      const ops: KvOp[] = [];
      const touched: Array<[string, Head]> = [];
      if (markers.length > 0) {
        const headsNow = getManyRaw(
          p,
          markers.map(([key]) => headKey(key)),
        ).map((h) => decodeJson<Head>(h) ?? { ...EMPTY_HEAD });
        // The live version (to see who wrote it) and the pre-task version (to copy) of every key.
        const wanted: string[] = [];
        for (let i = 0; i < markers.length; i++) {
          const [key, marker] = markers[i]!;
          wanted.push(metaKey(key, headsNow[i]!.l), metaKey(key, marker.prev));
        }
        const metas = getManyRaw(p, wanted).map((m) => decodeJson<Meta>(m));
        const t = now();
        for (let i = 0; i < markers.length; i++) {
          const [key, marker] = markers[i]!;
          const head = headsNow[i]!;
          const live = head.l > 0 ? metas[2 * i] : undefined;
          const before = marker.prev > 0 ? metas[2 * i + 1] : undefined;
          ops.push(del(markerKey(taskId, key)));
          if (!live || live.task !== taskId) {
            skipped.push(
              `${namespace}/${key}: ${head.l === 0 ? 'removed from the latest view' : `version ${head.l} was written`} after the task's write`,
            );
            continue;
          }
          if (marker.prev === 0) {
            head.l = 0;
            head.ld = 0;
          } else if (!before) {
            skipped.push(
              `${namespace}/${key}: version ${marker.prev} from before the task was pruned by retention`,
            );
            continue;
          } else {
            const appended = appendVersion(
              head,
              key,
              {
                t,
                a: before.a,
                h: before.h,
                s: before.s,
                m: provenance(before.m, REVERTED_TASK_KEY, taskId),
                dv: before.dv,
              },
              undefined,
              maxVersions,
              putJson,
              putBytes,
            );
            for (const op of appended.ops) ops.push(op);
          }
          ops.push(putJson(headKey(key), head));
          touched.push([key, head]);
          reverted++;
        }
      }
      if (ops.length > LIMITS.batchOps) {
        throw fail(
          'resource-exhausted',
          `reverting task ${taskId} in namespace '${namespace}' needs ${ops.length} storage operations, more than one batch holds`,
        );
      }
      if (ops.length > 0) commitBatch(p, ops);
      for (let i = 0; i < touched.length; i++) cacheHead(namespace, touched[i]![0], touched[i]![1]);
      commitBatch(TASK_INDEX, [del(taskIndexKey(taskId, namespace))]);
    }
    if (namespaces.length > 0) {
      log('info', 'task context writes reverted', [
        ['task', taskId],
        ['reverted', String(reverted)],
        ['skipped', String(skipped.length)],
      ]);
    }
    return { reverted: BigInt(reverted), skipped };
  },
};
