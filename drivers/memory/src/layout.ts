/**
 * How versioned context lives in kv, and the pure decisions on top of it (new version, retention, restore,
 * task revert). index.ts does the I/O; this module only computes keys, records and batches, so that every
 * rule is unit-testable in Node and every change is one atomic kv batch.
 *
 * One kv partition per namespace, `ns/<namespace>`, holding (NUL separates parts; context keys never
 * contain NUL, so prefixes cannot collide):
 *   h\0<key>                 head: highest version issued `n`, oldest version of the retention window `o`,
 *                            live version `l` (0 = removed from the latest view) and its data version `ld`,
 *                            pinned versions `p`
 *   m\0<key>\0<v as 16 hex>  version meta (JSON)
 *   d\0<key>\0<v as 16 hex>  version data (raw bytes)
 *   t\0<task>\0<key>         the key's state before task <task> first wrote it (for revert-task)
 *   s\0<seq as 16 hex>       snapshot record; c\0snap: last snapshot number
 * and one partition `task-index` with `<task>\0<namespace>` for every namespace a task wrote in.
 *
 * A version whose content equals an older one (written by restore or revert) does not copy the bytes: its
 * meta names the older version as its data version `dv`. Versions that snapshots or such references need
 * are pinned in the head and survive retention pruning (their meta and data stay readable).
 */

export type StringMap = Array<[string, string]>;

export interface Head {
  /** Highest version number issued (the next write gets n + 1). */
  n: number;
  /** Oldest version of the retention window: versions o..n exist, older ones only if pinned. */
  o: number;
  /** The live (latest) version; 0 when the key was removed from the latest view. */
  l: number;
  /** Data version of `l`. */
  ld: number;
  /** Pinned versions: never pruned. */
  p?: number[];
}

export interface Meta {
  v: number;
  /** Write time, unix ms. */
  t: number;
  /** Author (caller id). */
  a: string;
  /** sha-256, lowercase hex. */
  h: string;
  /** Size in bytes. */
  s: number;
  /** The write's metadata. */
  m: StringMap;
  /** Data version: where the bytes are stored (v itself unless restored or reverted). */
  dv: number;
  /** Task that wrote it (metadata `cam.task-id`). */
  task?: string;
}

/** What revert-task needs to put a key back: its state before the task's first write. */
export interface TaskMarker {
  /** Live version before the task wrote (0: the key was not live). */
  prev: number;
}

export interface SnapshotRecord {
  id: string;
  namespace: string;
  t: number;
  a: string;
  description: string;
  /** [key, highest version at snapshot time, live version, data version of the live version]. */
  keys: Array<[string, number, number, number]>;
}

export type KvOp = { tag: 'put'; val: { key: string; value: Uint8Array } } | { tag: 'delete'; val: string };

export const TASK_METADATA_KEY = 'cam.task-id';
export const RESTORED_FROM_KEY = 'cam.restored-from';
export const REVERTED_TASK_KEY = 'cam.reverted-task';
export const TASK_INDEX = 'task-index';
export const SNAPSHOT_COUNTER = 'c\0snap';

export const LIMITS = {
  namespaceBytes: 128,
  keyBytes: 512,
  dataBytes: 4 * 1024 * 1024,
  metadataEntries: 256,
  /** Keys + values of one write's metadata. */
  metadataBytes: 16 * 1024,
  authorBytes: 256,
  taskIdBytes: 256,
  descriptionBytes: 4096,
  /** Keys per snapshot: restore must fit in one kv batch (10,000 ops). */
  snapshotKeys: 2000,
  batchOps: 10_000,
  /** Versions pruned per write at most, after the retention limit was lowered. */
  prunePerWrite: 64,
} as const;

export const DEFAULT_MAX_VERSIONS = 100;

const NAMESPACE_RE = /^[A-Za-z0-9._-]+$/;

export type ErrorTag =
  | 'invalid-argument'
  | 'not-found'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'unimplemented'
  | 'internal';

export function fail(tag: ErrorTag, message: string): { tag: ErrorTag; val: string } {
  return { tag, val: message };
}

// ---------------------------------------------------------------------------------------------------------
// Keys

export const partitionOf = (namespace: string) => `ns/${namespace}`;
export const vhex = (v: number) => v.toString(16).padStart(16, '0');
export const headKey = (key: string) => `h\0${key}`;
export const metaKey = (key: string, v: number) => `m\0${key}\0${vhex(v)}`;
export const metaPrefix = (key: string) => `m\0${key}\0`;
export const dataKey = (key: string, v: number) => `d\0${key}\0${vhex(v)}`;
export const markerKey = (task: string, key: string) => `t\0${task}\0${key}`;
export const markerPrefix = (task: string) => `t\0${task}\0`;
export const snapshotKey = (seq: number) => `s\0${vhex(seq)}`;
export const HEAD_PREFIX = 'h\0';
export const taskIndexKey = (task: string, namespace: string) => `${task}\0${namespace}`;

export function snapshotId(namespace: string, seq: number): string {
  return `${namespace}@${seq}`;
}

export function parseSnapshotId(id: string): { namespace: string; seq: number } {
  const at = typeof id === 'string' ? id.lastIndexOf('@') : -1;
  const namespace = at > 0 ? id.slice(0, at) : '';
  const digits = at > 0 ? id.slice(at + 1) : '';
  if (!NAMESPACE_RE.test(namespace) || !/^[1-9][0-9]{0,15}$/.test(digits)) {
    throw fail(
      'invalid-argument',
      `snapshot id '${String(id).slice(0, 80)}' is not of the form <namespace>@<number>`,
    );
  }
  return { namespace, seq: Number(digits) };
}

// ---------------------------------------------------------------------------------------------------------
// Validation

export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function text(what: string, v: string, max: number, allowEmpty: boolean): number {
  if (typeof v !== 'string') throw fail('invalid-argument', `${what} must be a string`);
  if (!allowEmpty && v.length === 0) throw fail('invalid-argument', `${what} must not be empty`);
  const n = utf8Length(v);
  if (n > max) throw fail('invalid-argument', `${what} is longer than ${max} bytes`);
  return n;
}

export function checkNamespace(ns: string): string {
  text('namespace', ns, LIMITS.namespaceBytes, false);
  if (!NAMESPACE_RE.test(ns))
    throw fail('invalid-argument', `namespace '${ns}' may only contain A-Z a-z 0-9 . _ -`);
  return ns;
}

export function checkKey(key: string): string {
  text('key', key, LIMITS.keyBytes, false);
  if (key.indexOf('\0') >= 0) throw fail('invalid-argument', 'key must not contain NUL');
  return key;
}

export function checkAuthor(author: string): string {
  text('author', author, LIMITS.authorBytes, false);
  return author;
}

export function checkDescription(d: string): string {
  text('description', d, LIMITS.descriptionBytes, true);
  return d;
}

/** Validates a write's metadata; returns it with repeated keys collapsed (last wins) and its task id. */
export function checkMetadata(md: StringMap): { metadata: StringMap; task: string | undefined } {
  if (!Array.isArray(md)) throw fail('invalid-argument', 'metadata must be a list of pairs');
  if (md.length > LIMITS.metadataEntries) {
    throw fail(
      'resource-exhausted',
      `metadata has ${md.length} entries, at most ${LIMITS.metadataEntries} are allowed`,
    );
  }
  let bytes = 0;
  let repeated = false;
  const seen = new Map<string, string>();
  for (let i = 0; i < md.length; i++) {
    const pair = md[i]!;
    const k = pair[0];
    const v = pair[1];
    // No per-entry cap: only the total counts, and exceeding it is a size problem (resource-exhausted).
    bytes += text('metadata key', k, Number.POSITIVE_INFINITY, false);
    bytes += text(`metadata[${k}]`, v, Number.POSITIVE_INFINITY, true);
    if (seen.has(k)) repeated = true;
    seen.set(k, v);
  }
  if (bytes > LIMITS.metadataBytes) {
    throw fail(
      'resource-exhausted',
      `metadata is ${bytes} bytes, at most ${LIMITS.metadataBytes} are allowed`,
    );
  }
  const task = seen.get(TASK_METADATA_KEY);
  if (task !== undefined) {
    text(`metadata ${TASK_METADATA_KEY}`, task, LIMITS.taskIdBytes, false);
    if (task.indexOf('\0') >= 0)
      throw fail('invalid-argument', `metadata ${TASK_METADATA_KEY} must not contain NUL`);
  }
  return { metadata: repeated ? [...seen] : md, task };
}

export function checkTaskId(task: string): string {
  text('task id', task, LIMITS.taskIdBytes, false);
  if (task.indexOf('\0') >= 0) throw fail('invalid-argument', 'task id must not contain NUL');
  return task;
}

export function checkMaxVersions(raw: string): number {
  const v = /^[0-9]{1,7}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!(v >= 1 && v <= 1_000_000)) {
    throw fail(
      'invalid-argument',
      `max-versions must be an integer from 1 to 1000000, got '${raw.slice(0, 20)}'`,
    );
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Versions

export const EMPTY_HEAD: Readonly<Head> = Object.freeze({ n: 0, o: 1, l: 0, ld: 0 });

export function isPinned(head: Head, v: number): boolean {
  return head.p !== undefined && head.p.indexOf(v) >= 0;
}

export function pin(head: Head, v: number): boolean {
  if (v <= 0 || isPinned(head, v)) return false;
  head.p = head.p ? [...head.p, v] : [v];
  return true;
}

/**
 * Appends version n+1 of `key` to `head` (mutated) and returns the ops: its meta, its data (unless `meta.dv`
 * points at older bytes, which then get pinned), and the pruning of versions that fall out of the newest
 * `maxVersions`. The caller adds the head put (after any other change to the head).
 */
export function appendVersion(
  head: Head,
  key: string,
  meta: Omit<Meta, 'v' | 'dv'> & { dv?: number },
  data: Uint8Array | undefined,
  maxVersions: number,
  put: (key: string, value: unknown) => KvOp,
  putBytes: (key: string, value: Uint8Array) => KvOp,
): { ops: KvOp[]; version: number } {
  const v = head.n + 1;
  const dv = meta.dv ?? v;
  const ops: KvOp[] = [put(metaKey(key, v), { ...meta, v, dv })];
  if (dv === v) {
    if (!data) throw fail('internal', `version ${v} of ${key} has neither data nor a data version`);
    ops.push(putBytes(dataKey(key, v), data));
  } else {
    pin(head, dv);
  }
  head.n = v;
  head.l = v;
  head.ld = dv;
  let pruned = 0;
  while (head.n - head.o + 1 > maxVersions && pruned < LIMITS.prunePerWrite) {
    const x = head.o;
    if (!isPinned(head, x)) {
      ops.push({ tag: 'delete', val: metaKey(key, x) }, { tag: 'delete', val: dataKey(key, x) });
    }
    head.o++;
    pruned++;
  }
  return { ops, version: v };
}

// ---------------------------------------------------------------------------------------------------------
// Restore

export interface RestorePlan {
  /** Keys whose live version must become the snapshot's: [key, snapshot live version, its data version]. */
  rewrite: Array<[string, number, number]>;
  /** Keys live now but not live in the snapshot: removed from the latest view. */
  remove: string[];
}

/**
 * Compares the namespace now with a snapshot. Without `force`, any key that holds data newer than the
 * snapshot (a version above the snapshot's highest for it) AND differs from the snapshot's content is a
 * conflict; keys whose content already matches are left alone either way, so restoring twice is harmless.
 */
export function planRestore(
  snapshot: SnapshotRecord,
  current: Map<string, Head>,
  force: boolean,
): RestorePlan | { conflict: string } {
  const inSnapshot = new Map<string, [number, number, number]>();
  for (const [key, n, l, ld] of snapshot.keys) inSnapshot.set(key, [n, l, ld]);
  const rewrite: Array<[string, number, number]> = [];
  const remove: string[] = [];
  for (const [key, head] of current) {
    const snap = inSnapshot.get(key);
    const snapLive = snap !== undefined && snap[1] > 0;
    const same = snapLive ? head.l > 0 && head.ld === snap[2] : head.l === 0;
    if (same) continue;
    if (!force && head.n > (snap?.[0] ?? 0)) {
      return {
        conflict: `key '${key}' is at version ${head.n}, newer than the snapshot's ${snap?.[0] ?? 'none'}`,
      };
    }
    if (snapLive) rewrite.push([key, snap[1], snap[2]]);
    else remove.push(key);
  }
  // Every key of the snapshot still has a head (heads are never deleted), so the loop above saw them all.
  return { rewrite, remove };
}
