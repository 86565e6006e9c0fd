/**
 * The `cam:kernel/memory` operations: versioned context over the host's kv (layout.ts), with sha-256 from
 * the host's digest interface. Ported from the TypeScript component rule for rule: the same checks,
 * limits, error cases and messages, retention and pinning, snapshots, restore with force, task tagging and
 * revert, write-many batching, and head cache.
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
 * Each operation writes its result record straight into the export's return area (offsets from the
 * canonical ABI, see index.ts) and returns true, or returns false with the call's error set (host.ts).
 */
import {
  alloc,
  at,
  Buf,
  buf,
  bufStr,
  mapFind,
  markGcGarbage,
  mapSet,
  mapVal,
  push,
  putByte,
  putLit,
  putStr,
  putU64,
  room,
  Str,
  StrMap,
  str,
  strEq,
  strIs,
  strMap,
  trap,
  Vec,
  vec,
} from './abi';
import {
  entryKey,
  entryValue,
  errCase,
  errMessage,
  FAILED_PRECONDITION,
  fail,
  failed,
  INTERNAL,
  kvBatch,
  kvGet,
  kvGetMany,
  kvScan,
  kvScanAll,
  logInfo,
  msg,
  NOT_FOUND,
  nowMs,
  opDelete,
  opPut,
  opsCount,
  opsNew,
  pairPut,
  pairsNew,
  RESOURCE_EXHAUSTED,
  sha256Hex,
} from './host';
import { jsonBegin, jsonDone, jsonEat, jsonExpect, jsonInt, jsonSkip, jsonStr, jsonString } from './json';
import {
  after,
  appendVersion,
  BATCH_OPS,
  cachedHead,
  cacheGet,
  cacheHead,
  checkAuthor,
  checkDescription,
  checkKey,
  checkMetadata,
  checkNamespace,
  checkTaskId,
  copyHead,
  DATA_BYTES,
  DEFAULT_MAX_VERSIONS,
  dataKey,
  emptyHead,
  Head,
  headJson,
  headKey,
  headPrefix,
  markerKey,
  markerPrefix,
  Md,
  Meta,
  metaKey,
  metaPrefix,
  newMeta,
  Pairs,
  pairKey,
  pairs,
  pairValue,
  parseHead,
  parseMeta,
  parseSnapshotId,
  partitionOf,
  pin,
  provenance,
  putSnapshotId,
  RESTORED_FROM_KEY,
  REVERTED_TASK_KEY,
  roundedVersion,
  SNAPSHOT_KEYS,
  snapshotCounterKey,
  snapshotKey,
  TASK_INDEX,
  taskIndexKey,
} from './layout';

// ---------------------------------------------------------------------------------------------------------
// Instance state

export let initialized = false;
export let maxVersions: i64 = DEFAULT_MAX_VERSIONS;
// Numbers, as the TypeScript component kept them (import-state adds whatever numbers it is given).
export let writes: f64 = 0;
export let reads: f64 = 0;

export function configure(max: i64): void {
  maxVersions = max;
  initialized = true;
}

export function addCounters(w: f64, r: f64): void {
  writes += w;
  reads += r;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** The head of `key`, from the cache or from kv (and then cached); null when absent or on error. */
function loadHead(namespace: Str, partition: Str, key: Str): Head | null {
  const hit = cacheGet(namespace, key);
  if (hit !== null) return cachedHead(hit);
  const raw = kvGet(partition, headKey(key));
  if (failed()) return null;
  const head: Head | null = raw === null ? null : parseHead(raw);
  cacheHead(namespace, key, head);
  return head;
}

function notFound(m: Buf): bool {
  return fail(NOT_FOUND, m);
}

/** Meta and data of a retained version are written in one batch; one without the other is a bug. */
function missing(what: Buf): bool {
  putLit(what, ' is missing from storage');
  return fail(INTERNAL, what);
}

function noKey(namespace: Str, key: Str): bool {
  const m = msg("no key '");
  putStr(m, key);
  putLit(m, "' in namespace '");
  putStr(m, namespace);
  putLit(m, "'");
  return notFound(m);
}

function strings1(a: Str): Vec {
  const v = vec(1);
  push(v, changetype<usize>(a));
  return v;
}

function strings2(a: Str, b: Str): Vec {
  const v = vec(2);
  push(v, changetype<usize>(a));
  push(v, changetype<usize>(b));
  return v;
}

function optional(v: Vec, i: i32): Str | null {
  const p = at(v, i);
  return p == 0 ? null : changetype<Str>(p);
}

/** Numbers in messages and health checks: String(number). */
export function putNumber(b: Buf, x: f64): void {
  // Integers below 2^53 (every counter in practice) print exactly; -0 prints as 0.
  if (x == Math.floor(x) && Math.abs(x) < 9007199254740992) {
    if (x < 0) putByte(b, 45);
    putU64(b, <u64>Math.abs(x));
    return;
  }
  putStr(b, numberText(x));
}

/**
 * Other numbers: AssemblyScript's dtoa gives JavaScript's shortest round-trip digits and exponent form,
 * except that it writes integral values with a trailing `.0`. Cold path (allocates GC strings).
 */
function numberText(x: f64): Str {
  markGcGarbage();
  // @ts-ignore: f64 has toString in AssemblyScript (its std typings clash with TypeScript 7's Number)
  const s: string = x.toString();
  const b = buf(<usize>s.length);
  putLit(b, s);
  if (b.len > 2 && load<u8>(b.ptr + b.len - 2) == 46 && load<u8>(b.ptr + b.len - 1) == 48) b.len -= 2;
  return bufStr(b);
}

/** Writes one `context-entry` record at `rec`. */
function putEntry(rec: usize, namespace: Str, key: Str, meta: Meta, data: Str): void {
  store<usize>(rec, namespace.ptr);
  store<usize>(rec, namespace.len, 4);
  store<usize>(rec, key.ptr, 8);
  store<usize>(rec, key.len, 12);
  store<usize>(rec, data.ptr, 16);
  store<usize>(rec, data.len, 20);
  store<u64>(rec, <u64>meta.v, 24);
  store<usize>(rec, meta.h.ptr, 32);
  store<usize>(rec, meta.h.len, 36);
  store<u64>(rec, <u64>meta.t, 40);
  store<usize>(rec, meta.m.ptr, 48);
  store<usize>(rec, <usize>meta.m.len, 52);
  store<usize>(rec, meta.a.ptr, 56);
  store<usize>(rec, meta.a.len, 60);
}

// ---------------------------------------------------------------------------------------------------------
// read

/** `read`; writes a context-entry at `rec`. `version` < 0: none. */
export function read(namespace: Str, key: Str, hasVersion: bool, version: u64, rec: usize): bool {
  if (!checkNamespace(namespace) || !checkKey(key)) return false;
  const p = partitionOf(namespace);
  reads++;
  if (!hasVersion || version == 0) {
    const head = loadHead(namespace, p, key);
    if (failed()) return false;
    if (head === null) return noKey(namespace, key);
    if (head.l == 0) {
      const m = msg("key '");
      putStr(m, key);
      putLit(m, "' in namespace '");
      putStr(m, namespace);
      putLit(m, "' was removed from the latest view (by a restore or a task revert); its versions 1-");
      putU64(m, <u64>head.n);
      putLit(m, ' can still be read by number');
      return notFound(m);
    }
    const got = kvGetMany(p, strings2(metaKey(key, head.l), dataKey(key, head.ld)));
    if (got === null) return false;
    const m = optional(got, 0);
    const d = optional(got, 1);
    if (m === null || d === null) {
      const w = msg('version ');
      putU64(w, <u64>head.l);
      putLit(w, " of '");
      putStr(w, key);
      putLit(w, "'");
      return missing(w);
    }
    putEntry(rec, namespace, key, parseMeta(m), d);
    return true;
  }
  const v = roundedVersion(version);
  const got = kvGetMany(p, vec3(metaKey(key, v), dataKey(key, v), headKey(key)));
  if (got === null) return false;
  const m = optional(got, 0);
  if (m === null) {
    const h = optional(got, 2);
    if (h === null) return noKey(namespace, key);
    const head = parseHead(h);
    // v < 0 stands for a number beyond every version.
    if (v < 0 || v > head.n) {
      const w = msg("key '");
      putStr(w, key);
      putLit(w, "' has no version ");
      putU64(w, version);
      putLit(w, ' (the latest is ');
      putU64(w, <u64>head.n);
      putLit(w, ')');
      return notFound(w);
    }
    const w = msg('version ');
    putU64(w, <u64>v);
    putLit(w, " of '");
    putStr(w, key);
    putLit(w, "' was pruned (retention keeps the newest ");
    putU64(w, <u64>maxVersions);
    putLit(w, ')');
    return notFound(w);
  }
  const meta = parseMeta(m);
  let data = optional(got, 1);
  if (meta.dv != v) {
    data = kvGet(p, dataKey(key, meta.dv));
    if (failed()) return false;
  }
  if (data === null) {
    const w = msg('data of version ');
    putU64(w, <u64>v);
    putLit(w, " of '");
    putStr(w, key);
    putLit(w, "'");
    return missing(w);
  }
  putEntry(rec, namespace, key, meta, data);
  return true;
}

function vec3(a: Str, b: Str, c: Str): Vec {
  const v = vec(3);
  push(v, changetype<usize>(a));
  push(v, changetype<usize>(b));
  push(v, changetype<usize>(c));
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// write, write-many

/** The checked arguments of one write. */
@unmanaged
class CheckedWrite {
  namespace: Str;
  key: Str;
  data: Str;
  md: Md;
  author: Str;
}

function checkWrite(namespace: Str, key: Str, data: Str, metadata: Pairs, author: Str): CheckedWrite | null {
  if (!checkNamespace(namespace) || !checkKey(key) || !checkAuthor(author)) return null;
  if (data.len > DATA_BYTES) {
    const m = msg('data is ');
    putU64(m, data.len);
    putLit(m, ' bytes, at most ');
    putU64(m, DATA_BYTES);
    putLit(m, ' are allowed');
    fail(RESOURCE_EXHAUSTED, m);
    return null;
  }
  const md = checkMetadata(metadata);
  if (md === null) return null;
  const w = changetype<CheckedWrite>(alloc(offsetof<CheckedWrite>(), 4));
  w.namespace = namespace;
  w.key = key;
  w.data = data;
  w.md = md;
  w.author = author;
  return w;
}

/** Writes one `write-receipt` record at `rec`. */
function putReceipt(rec: usize, version: i64, hash: Str, t: i64): void {
  store<u64>(rec, <u64>version);
  store<usize>(rec, hash.ptr, 8);
  store<usize>(rec, hash.len, 12);
  store<u64>(rec, <u64>t, 16);
}

/**
 * Appends one write's new version to `head` (changed in place) and its kv ops to `ops`; nothing is stored
 * yet. The caller commits `ops` and then caches `head`. Writes the receipt at `rec`.
 */
function stageWrite(w: CheckedWrite, head: Head, ops: Buf, rec: usize): bool {
  const t = nowMs();
  const hash = sha256Hex(w.data);
  const meta = newMeta(t, w.author, hash, <i64>w.data.len, w.md.pairs, w.md.task);
  const v = appendVersion(head, w.key, meta, 0, w.data, maxVersions, ops);
  if (v < 0) return false;
  opPut(ops, headKey(w.key), headJson(head));
  putReceipt(rec, v, hash, t);
  return true;
}

function storeWrite(w: CheckedWrite, rec: usize): bool {
  const namespace = w.namespace;
  const key = w.key;
  const p = partitionOf(namespace);
  let head: Head;
  let firstTaskWrite = false;
  const hit = cacheGet(namespace, key);
  const task = w.md.task;
  if (task === null) {
    const loaded = loadHead(namespace, p, key);
    if (failed()) return false;
    head = copyHead(loaded);
  } else if (hit !== null) {
    head = copyHead(cachedHead(hit));
    const marker = kvGet(p, markerKey(task, key));
    if (failed()) return false;
    firstTaskWrite = marker === null;
  } else {
    const got = kvGetMany(p, strings2(headKey(key), markerKey(task, key)));
    if (got === null) return false;
    const h = optional(got, 0);
    head = copyHead(h === null ? null : parseHead(h));
    firstTaskWrite = at(got, 1) == 0;
  }
  const ops = opsNew();
  if (task !== null && firstTaskWrite) {
    const marker = buf(24);
    putLit(marker, '{"prev":');
    putU64(marker, <u64>head.l);
    putByte(marker, 125);
    opPut(ops, markerKey(task, key), bufStr(marker));
    // Before the write itself: an index entry without a write is harmless, a write without one is not.
    const index = opsNew();
    opPut(index, taskIndexKey(task, namespace), one());
    if (!kvBatch(taskIndexPartition(), index)) return false;
  }
  if (!stageWrite(w, head, ops, rec)) return false;
  if (!kvBatch(p, ops)) return false;
  cacheHead(namespace, key, head);
  writes++;
  return true;
}

function one(): Str {
  const b = buf(1);
  putByte(b, 49);
  return bufStr(b);
}

function taskIndexPartition(): Str {
  const b = buf(10);
  putLit(b, TASK_INDEX);
  return bufStr(b);
}

/** `write`; writes a write-receipt at `rec`. */
export function write(namespace: Str, key: Str, data: Str, metadata: Pairs, author: Str, rec: usize): bool {
  const w = checkWrite(namespace, key, data, metadata, author);
  if (w === null) return false;
  return storeWrite(w, rec);
}

/** write-many's limit on requests per call (the WIT's). */
const MAX_WRITES_PER_CALL = 10_000;
/** write-many stores a namespace's writes in batches of about this many ops / data bytes (kv caps a batch). */
const BATCH_FLUSH_OPS = 4_000;
const BATCH_FLUSH_BYTES: usize = 32 * 1024 * 1024;

/** A write-request in the arguments: 40 bytes (namespace, key, data, metadata, author). */
export function requestField(req: usize, offset: usize): Str {
  return str(load<usize>(req + offset), load<usize>(req + offset, 4));
}

/** The namespace being gathered by write-many: its partition, ops and changed heads. */
// Arena values: set up by resetGather() at the start of every write-many.
let gatherNs: Str | null = null;
let gatherOps: Buf = changetype<Buf>(0);
let gatherBytes: usize = 0;
let gatherHeads: StrMap = changetype<StrMap>(0);
let gatherPending: f64 = 0;

function resetGather(): void {
  gatherNs = null;
  gatherOps = opsNew();
  gatherBytes = 0;
  gatherHeads = strMap(16);
  gatherPending = 0;
}

function flush(): bool {
  const ns = gatherNs;
  if (ns === null) return true;
  if (!kvBatch(partitionOf(ns), gatherOps)) return false;
  for (let i = 0; i < gatherHeads.keys.len; i++) {
    cacheHead(ns, changetype<Str>(at(gatherHeads.keys, i)), changetype<Head>(at(gatherHeads.vals, i)));
  }
  writes += gatherPending;
  resetGather();
  return true;
}

/**
 * `write-many`: `count` requests at `list`; receipts (24 bytes each, 8-aligned) go to `receipts`. Every
 * request is checked before anything is stored.
 */
export function writeMany(list: usize, count: i32, receipts: usize): bool {
  if (count > MAX_WRITES_PER_CALL) {
    const m = msg('write-many takes at most ');
    putU64(m, MAX_WRITES_PER_CALL);
    putLit(m, ' writes, got ');
    putU64(m, count);
    return fail(RESOURCE_EXHAUSTED, m);
  }
  const checked = vec(count);
  for (let i = 0; i < count; i++) {
    const r = list + <usize>i * 40;
    const md = load<usize>(r, 24);
    const w = checkWrite(
      requestField(r, 0),
      requestField(r, 8),
      requestField(r, 16),
      pairs(md, <i32>load<u32>(r, 28)),
      requestField(r, 32),
    );
    if (w === null) {
      // `writes[${i}]: ${message}`
      const m = msg('writes[');
      putU64(m, i);
      putLit(m, ']: ');
      putStr(m, errMessage());
      return fail(errCase(), m);
    }
    push(checked, changetype<usize>(w));
  }
  resetGather();
  for (let i = 0; i < count; i++) {
    const w = changetype<CheckedWrite>(at(checked, i));
    const rec = receipts + <usize>i * 24;
    if (w.md.task !== null) {
      // Task-tagged writes keep their own path (task index, marker): stored alone, in order.
      if (!flush()) return false;
      if (!storeWrite(w, rec)) return false;
      continue;
    }
    const ns = gatherNs;
    if (ns === null || !strEq(ns, w.namespace) || opsCount(gatherOps) >= BATCH_FLUSH_OPS || gatherBytes >= BATCH_FLUSH_BYTES) {
      if (!flush()) return false;
      gatherNs = w.namespace;
    }
    const found = mapFind(gatherHeads, w.key);
    let head: Head;
    if (found >= 0) {
      head = changetype<Head>(mapVal(gatherHeads, found));
    } else {
      const loaded = loadHead(w.namespace, partitionOf(w.namespace), w.key);
      if (failed()) return false;
      head = copyHead(loaded);
      mapSet(gatherHeads, w.key, changetype<usize>(head));
    }
    if (!stageWrite(w, head, gatherOps, rec)) return false;
    gatherBytes += w.data.len;
    gatherPending++;
  }
  return flush();
}


// ---------------------------------------------------------------------------------------------------------
// snapshot, restore

/** A namespace's heads in key order: keys (Str) and heads (Head) side by side, with a lookup map. */
function heads(partition: Str): StrMap | null {
  const prefix = headPrefix();
  const entries = kvScanAll(partition, prefix);
  if (entries === null) return null;
  const out = strMap(entries.len);
  for (let i = 0; i < entries.len; i++) {
    const e = at(entries, i);
    mapSet(out, after(entryKey(e), prefix.len), changetype<usize>(parseHead(entryValue(e))));
  }
  return out;
}

function putLog2(fields: Buf, k: string, v: Str): void {
  const kb = buf(<usize>k.length);
  putLit(kb, k);
  pairPut(fields, bufStr(kb), v);
}

function numberStr(n: u64): Str {
  const b = buf(20);
  putU64(b, n);
  return bufStr(b);
}

/** `snapshot`; writes the id (a string: pointer, length) at `rec`. */
export function snapshot(namespace: Str, description: Str, author: Str, rec: usize): bool {
  if (!checkNamespace(namespace) || !checkDescription(description) || !checkAuthor(author)) return false;
  const p = partitionOf(namespace);
  const current = heads(p);
  if (current === null) return false;
  const count = current.keys.len;
  if (count > SNAPSHOT_KEYS) {
    const m = msg("namespace '");
    putStr(m, namespace);
    putLit(m, "' has ");
    putU64(m, count);
    putLit(m, ' keys; a snapshot covers at most ');
    putU64(m, SNAPSHOT_KEYS);
    return fail(RESOURCE_EXHAUSTED, m);
  }
  const counter = kvGet(p, snapshotCounterKey());
  if (failed()) return false;
  let last: i64 = 0;
  if (counter !== null) {
    jsonBegin(counter);
    last = jsonInt();
    if (!jsonDone()) trap();
  }
  const seq = last + 1;
  const idBuf = buf(namespace.len + 20);
  putSnapshotId(idBuf, namespace, seq);
  const id = bufStr(idBuf);
  const ops = opsNew();
  const keysJson = buf(64 + <usize>count * 32);
  putByte(keysJson, 91);
  for (let i = 0; i < count; i++) {
    const key = changetype<Str>(at(current.keys, i));
    const head = changetype<Head>(at(current.vals, i));
    if (i > 0) putByte(keysJson, 44);
    putByte(keysJson, 91);
    jsonStr(keysJson, key);
    putByte(keysJson, 44);
    putU64(keysJson, <u64>head.n);
    putByte(keysJson, 44);
    putU64(keysJson, <u64>head.l);
    putByte(keysJson, 44);
    putU64(keysJson, <u64>head.ld);
    putByte(keysJson, 93);
    if (head.l > 0) {
      // The snapshot's versions must outlive retention, or restore would have nothing to restore.
      const pinnedLive = pin(head, head.l);
      const pinnedData = pin(head, head.ld);
      if (pinnedLive || pinnedData) opPut(ops, headKey(key), headJson(head));
    }
  }
  putByte(keysJson, 93);
  const record = buf(keysJson.len + id.len + namespace.len + author.len + description.len + 96);
  putLit(record, '{"id":');
  jsonStr(record, id);
  putLit(record, ',"namespace":');
  jsonStr(record, namespace);
  putLit(record, ',"t":');
  putU64(record, <u64>nowMs());
  putLit(record, ',"a":');
  jsonStr(record, author);
  putLit(record, ',"description":');
  jsonStr(record, description);
  putLit(record, ',"keys":');
  putStr(record, bufStr(keysJson));
  putByte(record, 125);
  opPut(ops, snapshotKey(seq), bufStr(record));
  opPut(ops, snapshotCounterKey(), numberStr(<u64>seq));
  if (!kvBatch(p, ops)) return false;
  for (let i = 0; i < count; i++) {
    cacheHead(namespace, changetype<Str>(at(current.keys, i)), changetype<Head>(at(current.vals, i)));
  }
  const fields = pairsNew(3);
  putLog2(fields, 'snapshot', id);
  putLog2(fields, 'keys', numberStr(<u64>count));
  putLog2(fields, 'author', author);
  logInfo('context snapshot taken', fields);
  store<usize>(rec, id.ptr);
  store<usize>(rec, id.len, 4);
  return true;
}

/** One key of a snapshot record: [key, highest version, live version, its data version]. */
@unmanaged
class SnapKey {
  key: Str;
  n: i64;
  l: i64;
  ld: i64;
}

/** The `keys` of a stored snapshot record; traps when the record is not one. */
function parseSnapshotKeys(s: Str): Vec {
  const out = vec(16);
  jsonBegin(s);
  jsonExpect(123);
  let haveKeys = false;
  if (!jsonEat(125)) {
    do {
      const k = jsonString();
      jsonExpect(58);
      if (strIs(k, 'keys')) {
        haveKeys = true;
        jsonExpect(91);
        if (!jsonEat(93)) {
          do {
            const e = changetype<SnapKey>(alloc(offsetof<SnapKey>(), 8));
            jsonExpect(91);
            e.key = jsonString();
            jsonExpect(44);
            e.n = jsonInt();
            jsonExpect(44);
            e.l = jsonInt();
            jsonExpect(44);
            e.ld = jsonInt();
            jsonExpect(93);
            push(out, changetype<usize>(e));
          } while (jsonEat(44));
          jsonExpect(93);
        }
      } else {
        jsonSkip();
      }
    } while (jsonEat(44));
    jsonExpect(125);
  }
  if (!jsonDone() || !haveKeys) trap();
  return out;
}

/** `restore`; writes a restore-result at `rec`. */
export function restore(id: Str, force: bool, rec: usize): bool {
  const ref = parseSnapshotId(id);
  if (ref === null) return false;
  const namespace = ref.namespace;
  const p = partitionOf(namespace);
  const stored = kvGet(p, snapshotKey(ref.seq));
  if (failed()) return false;
  if (stored === null) {
    const m = msg('no snapshot ');
    putStr(m, id);
    return notFound(m);
  }
  const snapKeys = parseSnapshotKeys(stored);
  const current = heads(p);
  if (current === null) return false;

  // The plan: keys whose live version must become the snapshot's, and keys to remove from the latest
  // view. Without `force`, a key that holds data newer than the snapshot (a version above the snapshot's
  // highest for it) AND differs from the snapshot's content is a conflict; keys whose content already
  // matches are left alone either way, so restoring twice is harmless.
  const inSnapshot = strMap(snapKeys.len);
  for (let i = 0; i < snapKeys.len; i++) {
    const e = changetype<SnapKey>(at(snapKeys, i));
    mapSet(inSnapshot, e.key, changetype<usize>(e));
  }
  const rewrite = vec(8); // current index
  const rewriteSnap = vec(8); // SnapKey
  const remove = vec(8); // current index
  for (let i = 0; i < current.keys.len; i++) {
    const key = changetype<Str>(at(current.keys, i));
    const head = changetype<Head>(at(current.vals, i));
    const found = mapFind(inSnapshot, key);
    const snap: SnapKey | null = found < 0 ? null : changetype<SnapKey>(mapVal(inSnapshot, found));
    const snapLive = snap !== null && snap.l > 0;
    const same = snapLive ? head.l > 0 && head.ld == snap!.ld : head.l == 0;
    if (same) continue;
    const snapN: i64 = snap === null ? 0 : snap.n;
    if (!force && head.n > snapN) {
      const m = msg("namespace '");
      putStr(m, namespace);
      putLit(m, "' has newer data than snapshot ");
      putStr(m, id);
      putLit(m, ": key '");
      putStr(m, key);
      putLit(m, "' is at version ");
      putU64(m, <u64>head.n);
      putLit(m, ", newer than the snapshot's ");
      if (snap === null) putLit(m, 'none');
      else putU64(m, <u64>snap.n);
      putLit(m, '; restore with force to overwrite');
      return fail(FAILED_PRECONDITION, m);
    }
    if (snapLive) {
      push(rewrite, <usize>i);
      push(rewriteSnap, changetype<usize>(snap));
    } else {
      push(remove, <usize>i);
    }
  }
  // Every key of the snapshot still has a head (heads are never deleted), so the loop above saw them all.

  let metas: Vec | null = null;
  if (rewrite.len > 0) {
    const keys = vec(rewrite.len);
    for (let i = 0; i < rewrite.len; i++) {
      const snap = changetype<SnapKey>(at(rewriteSnap, i));
      push(keys, changetype<usize>(metaKey(snap.key, snap.l)));
    }
    metas = kvGetMany(p, keys);
    if (metas === null) return false;
  }
  const t = nowMs();
  const ops = opsNew();
  for (let i = 0; i < rewrite.len; i++) {
    const snap = changetype<SnapKey>(at(rewriteSnap, i));
    const raw = optional(metas!, i);
    if (raw === null) {
      const w = msg('version ');
      putU64(w, <u64>snap.l);
      putLit(w, " of '");
      putStr(w, snap.key);
      putLit(w, "' (pinned by snapshot ");
      putStr(w, id);
      putLit(w, ')');
      return missing(w);
    }
    const meta = parseMeta(raw);
    const head = changetype<Head>(at(current.vals, <i32>at(rewrite, i)));
    const restored = newMeta(t, meta.a, meta.h, meta.s, provenance(meta.m, RESTORED_FROM_KEY, id), null);
    if (appendVersion(head, snap.key, restored, snap.ld, null, maxVersions, ops) < 0) return false;
    opPut(ops, headKey(snap.key), headJson(head));
  }
  for (let i = 0; i < remove.len; i++) {
    const idx = <i32>at(remove, i);
    const head = changetype<Head>(at(current.vals, idx));
    head.l = 0;
    head.ld = 0;
    opPut(ops, headKey(changetype<Str>(at(current.keys, idx))), headJson(head));
  }
  const n = opsCount(ops);
  if (n > BATCH_OPS) {
    const m = msg('restoring ');
    putStr(m, id);
    putLit(m, ' needs ');
    putU64(m, n);
    putLit(m, ' storage operations, more than one batch holds');
    return fail(RESOURCE_EXHAUSTED, m);
  }
  if (n > 0 && !kvBatch(p, ops)) return false;
  for (let i = 0; i < current.keys.len; i++) {
    cacheHead(namespace, changetype<Str>(at(current.keys, i)), changetype<Head>(at(current.vals, i)));
  }
  const restoredItems = <u64>(rewrite.len + remove.len);
  const fields = pairsNew(3);
  putLog2(fields, 'snapshot', id);
  putLog2(fields, 'restored-items', numberStr(restoredItems));
  putLog2(fields, 'force', boolStr(force));
  logInfo('context snapshot restored', fields);
  store<usize>(rec, namespace.ptr);
  store<usize>(rec, namespace.len, 4);
  store<u64>(rec, restoredItems, 8);
  return true;
}

export function boolStr(b: bool): Str {
  const s = buf(5);
  putLit(s, b ? 'true' : 'false');
  return bufStr(s);
}

// ---------------------------------------------------------------------------------------------------------
// version-list

/** `version-list`; writes a version-page at `rec`. */
export function versionList(
  namespace: Str,
  key: Str,
  limit: u32,
  hasSince: bool,
  sinceVersion: u64,
  rec: usize,
): bool {
  if (!checkNamespace(namespace) || !checkKey(key)) return false;
  const n: u32 = limit == 0 ? 100 : limit < 1000 ? limit : 1000;
  const since = hasSince ? roundedVersion(sinceVersion) : 0;
  const p = partitionOf(namespace);
  // since < 0 stands for a number above every version: a cursor past them all.
  const page = kvScan(p, metaPrefix(key), since != 0 ? metaKey(key, since) : null, n + 1);
  if (page === null) return false;
  if (page.len == 0) {
    const head = loadHead(namespace, p, key);
    if (failed()) return false;
    if (head === null) return noKey(namespace, key);
  }
  const count = <u32>page.len < n ? <u32>page.len : n;
  const list = alloc(<usize>count * 56, 8);
  for (let i: u32 = 0; i < count; i++) {
    const m = parseMeta(entryValue(at(page, <i32>i)));
    let description = str(0, 0);
    for (let j = 0; j < m.m.len; j++) {
      if (strIs(pairKey(m.m, j), 'description')) description = pairValue(m.m, j);
    }
    const e = list + <usize>i * 56;
    store<u64>(e, <u64>m.v);
    store<u64>(e, <u64>m.t, 8);
    store<usize>(e, m.a.ptr, 16);
    store<usize>(e, m.a.len, 20);
    store<usize>(e, description.ptr, 24);
    store<usize>(e, description.len, 28);
    store<usize>(e, m.h.ptr, 32);
    store<usize>(e, m.h.len, 36);
    store<u64>(e, <u64>m.s, 40);
    store<usize>(e, m.m.ptr, 48);
    store<usize>(e, <usize>m.m.len, 52);
  }
  const hasMore = <u32>page.len > n;
  store<usize>(rec, list);
  store<usize>(rec, count, 4);
  store<u8>(rec, hasMore ? 1 : 0, 8);
  if (hasMore) {
    const token = numberStr(load<u64>(list + <usize>(count - 1) * 56));
    store<u8>(rec, 1, 12);
    store<usize>(rec, token.ptr, 16);
    store<usize>(rec, token.len, 20);
  } else {
    store<u8>(rec, 0, 12);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// revert-task

/** `revert-task`; writes a revert-result at `rec`. */
export function revertTask(taskId: Str, rec: usize): bool {
  if (!checkTaskId(taskId)) return false;
  const indexPrefix = buf(taskId.len + 1);
  putStr(indexPrefix, taskId);
  putByte(indexPrefix, 0);
  const index = kvScanAll(taskIndexPartition(), bufStr(indexPrefix));
  if (index === null) return false;
  let reverted: u64 = 0;
  const skipped = buf(64);
  for (let x = 0; x < index.len; x++) {
    const namespace = after(entryKey(at(index, x)), indexPrefix.len);
    const p = partitionOf(namespace);
    const prefix = markerPrefix(taskId);
    const markerEntries = kvScanAll(p, prefix);
    if (markerEntries === null) return false;
    const ops = opsNew();
    const touchedKeys = vec(markerEntries.len);
    const touchedHeads = vec(markerEntries.len);
    const count = markerEntries.len;
    if (count > 0) {
      const markerKeys = vec(count);
      const prevs = vec(count);
      for (let i = 0; i < count; i++) {
        const e = at(markerEntries, i);
        push(markerKeys, changetype<usize>(after(entryKey(e), prefix.len)));
        push(prevs, changetype<usize>(parseMarker(entryValue(e))));
      }
      const headKeys = vec(count);
      for (let i = 0; i < count; i++) push(headKeys, changetype<usize>(headKey(changetype<Str>(at(markerKeys, i)))));
      const rawHeads = kvGetMany(p, headKeys);
      if (rawHeads === null) return false;
      const headsNow = vec(count);
      for (let i = 0; i < count; i++) {
        const h = optional(rawHeads, i);
        push(headsNow, changetype<usize>(h === null ? emptyHead() : parseHead(h)));
      }
      // The live version (to see who wrote it) and the pre-task version (to copy) of every key.
      const wanted = vec(count * 2);
      for (let i = 0; i < count; i++) {
        const key = changetype<Str>(at(markerKeys, i));
        push(wanted, changetype<usize>(metaKey(key, changetype<Head>(at(headsNow, i)).l)));
        push(wanted, changetype<usize>(metaKey(key, prevOf(prevs, i))));
      }
      const metas = kvGetMany(p, wanted);
      if (metas === null) return false;
      const t = nowMs();
      for (let i = 0; i < count; i++) {
        const key = changetype<Str>(at(markerKeys, i));
        const prev = prevOf(prevs, i);
        const head = changetype<Head>(at(headsNow, i));
        const liveRaw = head.l > 0 ? optional(metas, 2 * i) : null;
        const beforeRaw = prev > 0 ? optional(metas, 2 * i + 1) : null;
        opDelete(ops, markerKey(taskId, key));
        const live: Meta | null = liveRaw === null ? null : parseMeta(liveRaw);
        const liveTask: Str | null = live === null ? null : live.task;
        if (liveTask === null || !strEq(liveTask, taskId)) {
          const s = skip(skipped, namespace, key);
          if (head.l == 0) putLit(s, 'removed from the latest view');
          else {
            putLit(s, 'version ');
            putU64(s, <u64>head.l);
            putLit(s, ' was written');
          }
          putLit(s, " after the task's write");
          endSkip(skipped, s);
          continue;
        }
        if (prev == 0) {
          head.l = 0;
          head.ld = 0;
        } else if (beforeRaw === null) {
          const s = skip(skipped, namespace, key);
          putLit(s, 'version ');
          putU64(s, <u64>prev);
          putLit(s, ' from before the task was pruned by retention');
          endSkip(skipped, s);
          continue;
        } else {
          const before = parseMeta(beforeRaw);
          const back = newMeta(t, before.a, before.h, before.s, provenance(before.m, REVERTED_TASK_KEY, taskId), null);
          if (appendVersion(head, key, back, before.dv, null, maxVersions, ops) < 0) return false;
        }
        opPut(ops, headKey(key), headJson(head));
        push(touchedKeys, changetype<usize>(key));
        push(touchedHeads, changetype<usize>(head));
        reverted++;
      }
    }
    const n = opsCount(ops);
    if (n > BATCH_OPS) {
      const m = msg('reverting task ');
      putStr(m, taskId);
      putLit(m, " in namespace '");
      putStr(m, namespace);
      putLit(m, "' needs ");
      putU64(m, n);
      putLit(m, ' storage operations, more than one batch holds');
      return fail(RESOURCE_EXHAUSTED, m);
    }
    if (n > 0 && !kvBatch(p, ops)) return false;
    for (let i = 0; i < touchedKeys.len; i++) {
      cacheHead(namespace, changetype<Str>(at(touchedKeys, i)), changetype<Head>(at(touchedHeads, i)));
    }
    const done = opsNew();
    opDelete(done, taskIndexKey(taskId, namespace));
    if (!kvBatch(taskIndexPartition(), done)) return false;
  }
  const skippedCount = <i32>(skipped.len >> 3);
  if (index.len > 0) {
    const fields = pairsNew(3);
    putLog2(fields, 'task', taskId);
    putLog2(fields, 'reverted', numberStr(reverted));
    putLog2(fields, 'skipped', numberStr(<u64>skippedCount));
    logInfo('task context writes reverted', fields);
  }
  store<u64>(rec, reverted);
  store<usize>(rec, skipped.ptr, 8);
  store<usize>(rec, skippedCount, 12);
  return true;
}

/** A task marker's `prev`, boxed in a Vec slot. */
function prevOf(prevs: Vec, i: i32): i64 {
  return load<i64>(at(prevs, i));
}

function parseMarker(s: Str): usize {
  const box = alloc(8, 8);
  let prev: i64 = -1;
  jsonBegin(s);
  jsonExpect(123);
  if (!jsonEat(125)) {
    do {
      const k = jsonString();
      jsonExpect(58);
      if (strIs(k, 'prev')) prev = jsonInt();
      else jsonSkip();
    } while (jsonEat(44));
    jsonExpect(125);
  }
  if (!jsonDone() || prev < 0) trap();
  store<i64>(box, prev);
  return box;
}

/** Starts a skipped entry `${namespace}/${key}: `. */
function skip(skipped: Buf, namespace: Str, key: Str): Buf {
  const s = buf(namespace.len + key.len + 64);
  putStr(s, namespace);
  putByte(s, 47);
  putStr(s, key);
  putLit(s, ': ');
  return s;
}

/** Appends a finished skipped entry to the list<string> being built (8 bytes per string). */
function endSkip(skipped: Buf, s: Buf): void {
  const p = room(skipped, 8);
  store<usize>(p, s.ptr);
  store<usize>(p, s.len, 4);
  skipped.len += 8;
}
