/**
 * How versioned context lives in kv — the same layout, keys and JSON records as the TypeScript component
 * this one replaced, so a hot-swap between them keeps every byte readable:
 *
 * One kv partition per namespace, `ns/<namespace>`, holding (NUL separates parts; context keys never
 * contain NUL, so prefixes cannot collide):
 *   h\0<key>                 head {"n","o","l","ld"[,"p"]}: highest version issued `n`, oldest version of
 *                            the retention window `o`, live version `l` (0 = removed from the latest view)
 *                            and its data version `ld`, pinned versions `p`
 *   m\0<key>\0<v as 16 hex>  version meta {"t","a","h","s","m"[,"task"],"v","dv"} (restored and reverted
 *                            versions: {"t","a","h","s","m","dv","v"})
 *   d\0<key>\0<v as 16 hex>  version data (raw bytes)
 *   t\0<task>\0<key>         {"prev"}: the key's live version before task <task> first wrote it
 *   s\0<seq as 16 hex>       snapshot {"id","namespace","t","a","description","keys":[[key,n,l,ld]...]};
 *   c\0snap                  the last snapshot number
 * and one partition `task-index` with `<task>\0<namespace>` -> 1 for every namespace a task wrote in.
 *
 * A version whose content equals an older one (written by restore or revert) does not copy the bytes: its
 * meta names the older version as its data version `dv`. Versions that snapshots or such references need
 * are pinned in the head and survive retention pruning (their meta and data stay readable).
 *
 * Also here: the argument checks (limits, messages), the head cache, and appending a version.
 */
import {
  alloc,
  Buf,
  buf,
  bufStr,
  hasByte,
  hashPair,
  mapFind,
  mapKey,
  mapSet,
  mapVal,
  putByte,
  putLit,
  putStr,
  putU64,
  room,
  Str,
  str,
  strEq,
  strIs,
  strMap,
  trap,
} from './abi';
import { fail, INTERNAL, INVALID_ARGUMENT, msg, opDelete, opPut, RESOURCE_EXHAUSTED } from './host';
import { jsonBad, jsonBegin, jsonDone, jsonEat, jsonExpect, jsonInt, jsonSkip, jsonStr, jsonString } from './json';

export const NAMESPACE_BYTES: usize = 128;
export const KEY_BYTES: usize = 512;
export const DATA_BYTES: usize = 4 * 1024 * 1024;
export const METADATA_ENTRIES: i32 = 256;
/** Keys + values of one write's metadata. */
export const METADATA_BYTES: usize = 16 * 1024;
export const AUTHOR_BYTES: usize = 256;
export const TASK_ID_BYTES: usize = 256;
export const DESCRIPTION_BYTES: usize = 4096;
/** Keys per snapshot: restore must fit in one kv batch (10,000 ops). */
export const SNAPSHOT_KEYS: i32 = 2000;
export const BATCH_OPS: i32 = 10_000;
/** Versions pruned per write at most, after the retention limit was lowered. */
export const PRUNE_PER_WRITE: i32 = 64;
export const DEFAULT_MAX_VERSIONS: i64 = 100;

export const TASK_METADATA_KEY = 'cam.task-id';
export const RESTORED_FROM_KEY = 'cam.restored-from';
export const REVERTED_TASK_KEY = 'cam.reverted-task';
export const TASK_INDEX = 'task-index';

// ---------------------------------------------------------------------------------------------------------
// Keys

export function partitionOf(namespace: Str): Str {
  const b = buf(3 + namespace.len);
  putLit(b, 'ns/');
  putStr(b, namespace);
  return bufStr(b);
}

const HEX = '0123456789abcdef';

/** `v.toString(16).padStart(16, '0')` for a version below 2^64. */
function putHex16(b: Buf, v: u64): void {
  const p = room(b, 16);
  for (let i = 15; i >= 0; i--) {
    store<u8>(p + <usize>i, <u8>load<u16>(changetype<usize>(HEX) + (<usize>(v & 15) << 1)));
    v >>= 4;
  }
  b.len += 16;
}

/**
 * A version number given by a caller, as the TypeScript component saw it: `Number(u64)` rounds to the
 * nearest double, so keys and comparisons use the rounded value. Returns -1 for 2^64 (u64 values that round
 * up past the top), whose hex form has 17 digits.
 */
export function roundedVersion(v: u64): i64 {
  const f = <f64>v;
  if (f >= 18446744073709551616.0) return -1;
  const r = <u64>f;
  // Above 2^63 the value cannot be held in an i64; no stored version comes near, so any marker works.
  return r > <u64>i64.MAX_VALUE ? -2 : <i64>r;
}

function putVersion(b: Buf, v: i64): void {
  if (v == -1) putLit(b, '10000000000000000');
  else if (v == -2) putLit(b, 'ffffffffffffffff');
  else putHex16(b, <u64>v);
}

export function headKey(key: Str): Str {
  const b = buf(2 + key.len);
  putLit(b, 'h');
  putByte(b, 0);
  putStr(b, key);
  return bufStr(b);
}

function versionKey(kind: string, key: Str, v: i64): Str {
  const b = buf(20 + key.len);
  putLit(b, kind);
  putByte(b, 0);
  putStr(b, key);
  putByte(b, 0);
  putVersion(b, v);
  return bufStr(b);
}

export function metaKey(key: Str, v: i64): Str {
  return versionKey('m', key, v);
}

export function dataKey(key: Str, v: i64): Str {
  return versionKey('d', key, v);
}

export function metaPrefix(key: Str): Str {
  const b = buf(3 + key.len);
  putLit(b, 'm');
  putByte(b, 0);
  putStr(b, key);
  putByte(b, 0);
  return bufStr(b);
}

export function markerPrefix(task: Str): Str {
  const b = buf(3 + task.len);
  putLit(b, 't');
  putByte(b, 0);
  putStr(b, task);
  putByte(b, 0);
  return bufStr(b);
}

export function markerKey(task: Str, key: Str): Str {
  const b = buf(3 + task.len + key.len);
  putLit(b, 't');
  putByte(b, 0);
  putStr(b, task);
  putByte(b, 0);
  putStr(b, key);
  return bufStr(b);
}

export function snapshotKey(seq: i64): Str {
  const b = buf(18);
  putLit(b, 's');
  putByte(b, 0);
  putVersion(b, seq);
  return bufStr(b);
}

export function snapshotCounterKey(): Str {
  const b = buf(6);
  putLit(b, 'c');
  putByte(b, 0);
  putLit(b, 'snap');
  return bufStr(b);
}

export function headPrefix(): Str {
  const b = buf(2);
  putLit(b, 'h');
  putByte(b, 0);
  return bufStr(b);
}

export function taskIndexKey(task: Str, namespace: Str): Str {
  const b = buf(1 + task.len + namespace.len);
  putStr(b, task);
  putByte(b, 0);
  putStr(b, namespace);
  return bufStr(b);
}

/** `s` without its first `n` bytes (a key's suffix after a scan prefix). */
export function after(s: Str, n: usize): Str {
  return str(s.ptr + n, s.len - n);
}

// ---------------------------------------------------------------------------------------------------------
// Checks. Each returns false (with the call's error set) when the value is refused. The host hands over
// well-formed UTF-8 only (index.ts traps otherwise), so a string's UTF-8 length is its byte length.

function text(what: string, s: Str, max: usize, allowEmpty: bool): bool {
  if (!allowEmpty && s.len == 0) {
    const m = msg(what);
    putLit(m, ' must not be empty');
    return fail(INVALID_ARGUMENT, m);
  }
  if (s.len > max) {
    const m = msg(what);
    putLit(m, ' is longer than ');
    putU64(m, max);
    putLit(m, ' bytes');
    return fail(INVALID_ARGUMENT, m);
  }
  return true;
}

function isNamespaceChar(c: u32): bool {
  return (
    (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 46 || c == 95 || c == 45
  );
}

/** `/^[A-Za-z0-9._-]+$/` */
function namespaceShape(ns: Str): bool {
  if (ns.len == 0) return false;
  for (let i: usize = 0; i < ns.len; i++) if (!isNamespaceChar(<u32>load<u8>(ns.ptr + i))) return false;
  return true;
}

export function checkNamespace(ns: Str): bool {
  if (!text('namespace', ns, NAMESPACE_BYTES, false)) return false;
  if (!namespaceShape(ns)) {
    const m = msg("namespace '");
    putStr(m, ns);
    putLit(m, "' may only contain A-Z a-z 0-9 . _ -");
    return fail(INVALID_ARGUMENT, m);
  }
  return true;
}

export function checkKey(key: Str): bool {
  if (!text('key', key, KEY_BYTES, false)) return false;
  if (hasByte(key, 0)) return fail(INVALID_ARGUMENT, msg('key must not contain NUL'));
  return true;
}

export function checkAuthor(author: Str): bool {
  return text('author', author, AUTHOR_BYTES, false);
}

export function checkDescription(d: Str): bool {
  return text('description', d, DESCRIPTION_BYTES, true);
}

export function checkTaskId(task: Str): bool {
  if (!text('task id', task, TASK_ID_BYTES, false)) return false;
  if (hasByte(task, 0)) return fail(INVALID_ARGUMENT, msg('task id must not contain NUL'));
  return true;
}

/** A `string-map` in its ABI form: `len` pairs of 16 bytes (key ptr, key len, value ptr, value len). */
@unmanaged
export class Pairs {
  ptr: usize;
  len: i32;
}

export function pairs(ptr: usize, len: i32): Pairs {
  const p = changetype<Pairs>(alloc(offsetof<Pairs>(), 4));
  p.ptr = ptr;
  p.len = len;
  return p;
}

export function pairKey(ps: Pairs, i: i32): Str {
  const e = ps.ptr + (<usize>i << 4);
  return str(load<usize>(e), load<usize>(e, 4));
}

export function pairValue(ps: Pairs, i: i32): Str {
  const e = ps.ptr + (<usize>i << 4);
  return str(load<usize>(e, 8), load<usize>(e, 12));
}

function pairSet(ps: Pairs, i: i32, k: Str, v: Str): void {
  const e = ps.ptr + (<usize>i << 4);
  store<usize>(e, k.ptr);
  store<usize>(e, k.len, 4);
  store<usize>(e, v.ptr, 8);
  store<usize>(e, v.len, 12);
}

/** A write's checked metadata: repeated keys collapsed (last value wins, first position kept). */
@unmanaged
export class Md {
  pairs: Pairs;
  /** The `cam.task-id` entry, or null. */
  task: Str | null;
}

/** Validates a write's metadata; null (with the error set) when refused. */
export function checkMetadata(md: Pairs): Md | null {
  if (md.len > METADATA_ENTRIES) {
    const m = msg('metadata has ');
    putU64(m, md.len);
    putLit(m, ' entries, at most ');
    putU64(m, METADATA_ENTRIES);
    putLit(m, ' are allowed');
    fail(RESOURCE_EXHAUSTED, m);
    return null;
  }
  let bytes: usize = 0;
  // Index of each distinct key's entry in `out` (first position, last value).
  const seen = strMap(md.len);
  for (let i = 0; i < md.len; i++) {
    const k = pairKey(md, i);
    const v = pairValue(md, i);
    // No per-entry cap: only the total counts, and exceeding it is a size problem (resource-exhausted).
    if (k.len == 0) {
      fail(INVALID_ARGUMENT, msg('metadata key must not be empty'));
      return null;
    }
    bytes += k.len + v.len;
    mapSet(seen, k, changetype<usize>(v));
  }
  if (bytes > METADATA_BYTES) {
    const m = msg('metadata is ');
    putU64(m, bytes);
    putLit(m, ' bytes, at most ');
    putU64(m, METADATA_BYTES);
    putLit(m, ' are allowed');
    fail(RESOURCE_EXHAUSTED, m);
    return null;
  }
  const out = changetype<Md>(alloc(offsetof<Md>(), 4));
  out.task = null;
  const distinct = seen.keys.len;
  if (distinct == md.len) {
    out.pairs = md;
  } else {
    out.pairs = pairs(alloc(<usize>distinct << 4, 4), distinct);
    for (let i = 0; i < distinct; i++) pairSet(out.pairs, i, mapKey(seen, i), changetype<Str>(mapVal(seen, i)));
  }
  const t = mapFind(seen, taskMetadataKey());
  if (t >= 0) {
    const task = changetype<Str>(mapVal(seen, t));
    if (!text('metadata cam.task-id', task, TASK_ID_BYTES, false)) return null;
    if (hasByte(task, 0)) {
      fail(INVALID_ARGUMENT, msg('metadata cam.task-id must not contain NUL'));
      return null;
    }
    out.task = task;
  }
  return out;
}

let taskKeyStr: usize = 0;

function taskMetadataKey(): Str {
  if (taskKeyStr == 0) {
    // Kept for the instance's life: heap, not arena.
    const n = <usize>TASK_METADATA_KEY.length;
    const p = heap.alloc(n);
    for (let i: usize = 0; i < n; i++) store<u8>(p + i, <u8>load<u16>(changetype<usize>(TASK_METADATA_KEY) + (i << 1)));
    const s = changetype<Str>(heap.alloc(offsetof<Str>()));
    s.ptr = p;
    s.len = n;
    taskKeyStr = changetype<usize>(s);
  }
  return changetype<Str>(taskKeyStr);
}

/** The UTF-16 length of the code point starting with byte `c`. */
function utf16Units(c: u32): i32 {
  return c >= 0xf0 ? 2 : 1;
}

/** Bytes of a UTF-8 sequence starting with byte `c`. */
function seqBytes(c: u32): usize {
  return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/**
 * `s.slice(0, units)` as JavaScript slices (UTF-16 code units), encoded back to UTF-8. A cut through a
 * surrogate pair leaves its high half, which UTF-8 encoding replaces with U+FFFD.
 */
export function putSliceUtf16(b: Buf, s: Str, units: i32): void {
  let i: usize = 0;
  let n = 0;
  while (i < s.len && n < units) {
    const c = <u32>load<u8>(s.ptr + i);
    const len = seqBytes(c);
    const u = utf16Units(c);
    if (n + u > units) {
      putByte(b, 0xef);
      putByte(b, 0xbf);
      putByte(b, 0xbd);
      return;
    }
    putStr(b, str(s.ptr + i, len));
    i += len;
    n += u;
  }
}

/** The code point at `s.ptr + i` (well-formed UTF-8). */
function codePointAt(s: Str, i: usize): u32 {
  const c = <u32>load<u8>(s.ptr + i);
  if (c < 0x80) return c;
  if (c < 0xe0) return ((c & 31) << 6) | (load<u8>(s.ptr + i + 1) & 63);
  if (c < 0xf0) return ((c & 15) << 12) | ((<u32>load<u8>(s.ptr + i + 1) & 63) << 6) | (load<u8>(s.ptr + i + 2) & 63);
  return (
    ((c & 7) << 18) |
    ((<u32>load<u8>(s.ptr + i + 1) & 63) << 12) |
    ((<u32>load<u8>(s.ptr + i + 2) & 63) << 6) |
    (load<u8>(s.ptr + i + 3) & 63)
  );
}

/** JavaScript's WhiteSpace and LineTerminator code points (what String.prototype.trim removes). */
function isJsSpace(cp: u32): bool {
  return (
    (cp >= 9 && cp <= 13) ||
    cp == 0x20 ||
    cp == 0xa0 ||
    cp == 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp == 0x2028 ||
    cp == 0x2029 ||
    cp == 0x202f ||
    cp == 0x205f ||
    cp == 0x3000 ||
    cp == 0xfeff
  );
}

/** `s.trim()` */
function trimJs(s: Str): Str {
  let start: usize = 0;
  while (start < s.len) {
    const cp = codePointAt(s, start);
    if (!isJsSpace(cp)) break;
    start += seqBytes(<u32>load<u8>(s.ptr + start));
  }
  let stop = s.len;
  while (stop > start) {
    // Back to the start byte of the last sequence.
    let q = stop - 1;
    while (q > start && (load<u8>(s.ptr + q) & 0xc0) == 0x80) q--;
    if (!isJsSpace(codePointAt(s, q))) break;
    stop = q;
  }
  return str(s.ptr + start, stop - start);
}

/** `max-versions`: an integer 1-1,000,000 (surrounding whitespace allowed); -1 (error set) otherwise. */
export function checkMaxVersions(raw: Str): i64 {
  const t = trimJs(raw);
  let v: i64 = -1;
  if (t.len >= 1 && t.len <= 7) {
    v = 0;
    for (let i: usize = 0; i < t.len; i++) {
      const c = load<u8>(t.ptr + i);
      if (c < 48 || c > 57) {
        v = -1;
        break;
      }
      v = v * 10 + <i64>(c - 48);
    }
  }
  if (v < 1 || v > 1_000_000) {
    const m = msg("max-versions must be an integer from 1 to 1000000, got '");
    putSliceUtf16(m, raw, 20);
    putLit(m, "'");
    fail(INVALID_ARGUMENT, m);
    return -1;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot ids: `<namespace>@<seq>`

export function putSnapshotId(b: Buf, namespace: Str, seq: i64): void {
  putStr(b, namespace);
  putByte(b, 64);
  putU64(b, <u64>seq);
}

/** Parsed `id`: namespace and sequence number (as Number(digits) rounds it). Null with the error set. */
@unmanaged
export class SnapshotRef {
  namespace: Str;
  seq: i64;
}

export function parseSnapshotId(id: Str): SnapshotRef | null {
  // lastIndexOf('@')
  let at: isize = -1;
  for (let i = <isize>id.len - 1; i >= 0; i--) {
    if (load<u8>(id.ptr + <usize>i) == 64) {
      at = i;
      break;
    }
  }
  let ok = at > 0;
  const namespace = str(id.ptr, ok ? <usize>at : 0);
  const digits = ok ? str(id.ptr + <usize>at + 1, id.len - <usize>at - 1) : str(0, 0);
  if (ok && (!namespaceShape(namespace) || digits.len < 1 || digits.len > 16)) ok = false;
  let seq: u64 = 0;
  if (ok) {
    ok = load<u8>(digits.ptr) != 48;
    for (let i: usize = 0; ok && i < digits.len; i++) {
      const c = load<u8>(digits.ptr + i);
      if (c < 48 || c > 57) ok = false;
      seq = seq * 10 + <u64>(c - 48);
    }
  }
  if (!ok) {
    const m = msg("snapshot id '");
    putSliceUtf16(m, id, 80);
    putLit(m, "' is not of the form <namespace>@<number>");
    fail(INVALID_ARGUMENT, m);
    return null;
  }
  const r = changetype<SnapshotRef>(alloc(offsetof<SnapshotRef>(), 8));
  r.namespace = namespace;
  r.seq = <i64>(<u64>(<f64>seq));
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Heads

@unmanaged
export class Head {
  n: i64;
  o: i64;
  l: i64;
  ld: i64;
  /** Pinned versions (i64 each): never pruned. */
  pins: usize;
  pinsLen: i32;
  pinsCap: i32;
  /** Whether the record has `p` (kept even when empty, so a stored head round-trips). */
  hasPins: bool;
}

/** `{ n: 0, o: 1, l: 0, ld: 0 }` in the arena. */
export function emptyHead(): Head {
  const h = changetype<Head>(alloc(offsetof<Head>(), 8));
  h.n = 0;
  h.o = 1;
  h.l = 0;
  h.ld = 0;
  h.pins = 0;
  h.pinsLen = 0;
  h.pinsCap = 0;
  h.hasPins = false;
  return h;
}

/** An arena copy of `h` that may be changed (cached heads change only after a commit). */
export function copyHead(h: Head | null): Head {
  const c = emptyHead();
  if (h === null) return c;
  c.n = h.n;
  c.o = h.o;
  c.l = h.l;
  c.ld = h.ld;
  c.hasPins = h.hasPins;
  if (h.pinsLen > 0) {
    c.pins = alloc(<usize>h.pinsLen << 3, 8);
    memory.copy(c.pins, h.pins, <usize>h.pinsLen << 3);
    c.pinsLen = h.pinsLen;
    c.pinsCap = h.pinsLen;
  }
  return c;
}

export function isPinned(h: Head, v: i64): bool {
  for (let i = 0; i < h.pinsLen; i++) if (load<i64>(h.pins + (<usize>i << 3)) == v) return true;
  return false;
}

/** Pins `v` in an arena head; false when it is not a version or already pinned. */
export function pin(h: Head, v: i64): bool {
  if (v <= 0 || isPinned(h, v)) return false;
  if (h.pinsLen == h.pinsCap) {
    const cap = h.pinsCap < 4 ? 4 : h.pinsCap * 2;
    const p = alloc(<usize>cap << 3, 8);
    if (h.pinsLen > 0) memory.copy(p, h.pins, <usize>h.pinsLen << 3);
    h.pins = p;
    h.pinsCap = cap;
  }
  store<i64>(h.pins + (<usize>h.pinsLen << 3), v);
  h.pinsLen++;
  h.hasPins = true;
  return true;
}

export function headJson(h: Head): Str {
  const b = buf(48 + (<usize>h.pinsLen << 3));
  putLit(b, '{"n":');
  putU64(b, <u64>h.n);
  putLit(b, ',"o":');
  putU64(b, <u64>h.o);
  putLit(b, ',"l":');
  putU64(b, <u64>h.l);
  putLit(b, ',"ld":');
  putU64(b, <u64>h.ld);
  if (h.hasPins) {
    putLit(b, ',"p":[');
    for (let i = 0; i < h.pinsLen; i++) {
      if (i > 0) putByte(b, 44);
      putU64(b, <u64>load<i64>(h.pins + (<usize>i << 3)));
    }
    putByte(b, 93);
  }
  putByte(b, 125);
  return bufStr(b);
}

/** A stored head; traps when the record is not one. */
export function parseHead(s: Str): Head {
  const h = emptyHead();
  jsonBegin(s);
  jsonExpect(123);
  let seen = 0;
  if (!jsonEat(125)) {
    do {
      const k = jsonString();
      jsonExpect(58);
      if (strIs(k, 'n')) {
        h.n = jsonInt();
        seen |= 1;
      } else if (strIs(k, 'o')) {
        h.o = jsonInt();
        seen |= 2;
      } else if (strIs(k, 'l')) {
        h.l = jsonInt();
        seen |= 4;
      } else if (strIs(k, 'ld')) {
        h.ld = jsonInt();
        seen |= 8;
      } else if (strIs(k, 'p')) {
        h.hasPins = true;
        jsonExpect(91);
        if (!jsonEat(93)) {
          do {
            const v = jsonInt();
            if (jsonBad) break;
            // Appended as stored (pin() would drop a repeated entry).
            if (h.pinsLen == h.pinsCap) {
              const cap = h.pinsCap < 4 ? 4 : h.pinsCap * 2;
              const p = alloc(<usize>cap << 3, 8);
              if (h.pinsLen > 0) memory.copy(p, h.pins, <usize>h.pinsLen << 3);
              h.pins = p;
              h.pinsCap = cap;
            }
            store<i64>(h.pins + (<usize>h.pinsLen << 3), v);
            h.pinsLen++;
          } while (jsonEat(44));
          jsonExpect(93);
        }
      } else {
        jsonSkip();
      }
    } while (!jsonBad && jsonEat(44));
    jsonExpect(125);
  }
  if (!jsonDone() || seen != 15) trap();
  return h;
}

// ---------------------------------------------------------------------------------------------------------
// The head cache: heads of recently used keys by `<namespace>\0<key>`, including keys known not to exist.
// At most 10,000 entries; when full, the oldest insertion goes (a Map's first key, as before). Heap memory.

const CACHE_MAX = 10_000;
const BUCKETS: u32 = 16384;

@unmanaged
export class CacheEntry {
  next: usize;
  hash: u32;
  key: usize;
  keyLen: usize;
  /** The head (heap), or 0 when the key is known not to exist. */
  head: usize;
}

let buckets: usize = 0;
/** Entries in insertion order, a ring of CACHE_MAX. */
let ring: usize = 0;
let ringStart: i32 = 0;
let cached: i32 = 0;

function entryMatches(e: CacheEntry, namespace: Str, key: Str): bool {
  if (e.keyLen != namespace.len + 1 + key.len) return false;
  if (memory.compare(e.key, namespace.ptr, namespace.len) != 0) return false;
  if (load<u8>(e.key + namespace.len) != 0) return false;
  return memory.compare(e.key + namespace.len + 1, key.ptr, key.len) == 0;
}

/** The cache entry of a key (its `head` 0 = known absent), or null when the key is not cached. */
export function cacheGet(namespace: Str, key: Str): CacheEntry | null {
  if (buckets == 0) return null;
  const h = hashPair(namespace, key);
  let e = load<usize>(buckets + (<usize>(h & (BUCKETS - 1)) << 2));
  while (e != 0) {
    const entry = changetype<CacheEntry>(e);
    if (entry.hash == h && entryMatches(entry, namespace, key)) return entry;
    e = entry.next;
  }
  return null;
}

export function cachedHead(e: CacheEntry): Head | null {
  return e.head == 0 ? null : changetype<Head>(e.head);
}

function freeHead(h: usize): void {
  if (h == 0) return;
  const head = changetype<Head>(h);
  if (head.pins != 0) heap.free(head.pins);
  heap.free(h);
}

/** Copies `src` (or "absent") into the entry's heap head. */
function assignHead(e: CacheEntry, src: Head | null): void {
  if (src === null) {
    freeHead(e.head);
    e.head = 0;
    return;
  }
  if (e.head == 0) {
    e.head = heap.alloc(offsetof<Head>());
    const h = changetype<Head>(e.head);
    h.pins = 0;
    h.pinsLen = 0;
    h.pinsCap = 0;
  }
  const h = changetype<Head>(e.head);
  h.n = src.n;
  h.o = src.o;
  h.l = src.l;
  h.ld = src.ld;
  h.hasPins = src.hasPins;
  if (src.pinsLen > h.pinsCap) {
    h.pins = h.pins == 0 ? heap.alloc(<usize>src.pinsLen << 3) : heap.realloc(h.pins, <usize>src.pinsLen << 3);
    h.pinsCap = src.pinsLen;
  }
  if (src.pinsLen > 0) memory.copy(h.pins, src.pins, <usize>src.pinsLen << 3);
  h.pinsLen = src.pinsLen;
}

function evictOldest(): void {
  const e = changetype<CacheEntry>(load<usize>(ring + (<usize>ringStart << 2)));
  ringStart = (ringStart + 1) % CACHE_MAX;
  cached--;
  const slot = buckets + (<usize>(e.hash & (BUCKETS - 1)) << 2);
  let prev: usize = 0;
  let cur = load<usize>(slot);
  while (cur != changetype<usize>(e)) {
    prev = cur;
    cur = changetype<CacheEntry>(cur).next;
  }
  if (prev == 0) store<usize>(slot, e.next);
  else changetype<CacheEntry>(prev).next = e.next;
  freeHead(e.head);
  heap.free(e.key);
  heap.free(changetype<usize>(e));
}

/** Remembers the head of a key (null: the key does not exist). */
export function cacheHead(namespace: Str, key: Str, head: Head | null): void {
  const found = cacheGet(namespace, key);
  if (found !== null) {
    assignHead(found, head);
    return;
  }
  if (buckets == 0) {
    buckets = heap.alloc(<usize>BUCKETS << 2);
    memory.fill(buckets, 0, <usize>BUCKETS << 2);
    ring = heap.alloc(<usize>CACHE_MAX << 2);
  }
  if (cached >= CACHE_MAX) evictOldest();
  const e = changetype<CacheEntry>(heap.alloc(offsetof<CacheEntry>()));
  e.hash = hashPair(namespace, key);
  e.keyLen = namespace.len + 1 + key.len;
  e.key = heap.alloc(e.keyLen);
  memory.copy(e.key, namespace.ptr, namespace.len);
  store<u8>(e.key + namespace.len, 0);
  memory.copy(e.key + namespace.len + 1, key.ptr, key.len);
  e.head = 0;
  assignHead(e, head);
  const slot = buckets + (<usize>(e.hash & (BUCKETS - 1)) << 2);
  e.next = load<usize>(slot);
  store<usize>(slot, changetype<usize>(e));
  store<usize>(ring + (<usize>((ringStart + cached) % CACHE_MAX) << 2), changetype<usize>(e));
  cached++;
}

// ---------------------------------------------------------------------------------------------------------
// Version metas

@unmanaged
export class Meta {
  v: i64;
  t: i64;
  s: i64;
  dv: i64;
  a: Str;
  h: Str;
  m: Pairs;
  task: Str | null;
}

/** A stored meta; traps when the record is not one. */
export function parseMeta(s: Str): Meta {
  const meta = changetype<Meta>(alloc(offsetof<Meta>(), 8));
  meta.task = null;
  jsonBegin(s);
  jsonExpect(123);
  let seen = 0;
  if (!jsonEat(125)) {
    do {
      const k = jsonString();
      jsonExpect(58);
      if (strIs(k, 't')) {
        meta.t = jsonInt();
        seen |= 1;
      } else if (strIs(k, 'a')) {
        meta.a = jsonString();
        seen |= 2;
      } else if (strIs(k, 'h')) {
        meta.h = jsonString();
        seen |= 4;
      } else if (strIs(k, 's')) {
        meta.s = jsonInt();
        seen |= 8;
      } else if (strIs(k, 'm')) {
        meta.m = parsePairs();
        seen |= 16;
      } else if (strIs(k, 'v')) {
        meta.v = jsonInt();
        seen |= 32;
      } else if (strIs(k, 'dv')) {
        meta.dv = jsonInt();
        seen |= 64;
      } else if (strIs(k, 'task')) {
        meta.task = jsonString();
      } else {
        jsonSkip();
      }
    } while (!jsonBad && jsonEat(44));
    jsonExpect(125);
  }
  if (!jsonDone() || seen != 127) trap();
  return meta;
}

/** `[["k","v"],...]` into ABI pairs. */
function parsePairs(): Pairs {
  const out = buf(64);
  jsonExpect(91);
  if (!jsonEat(93)) {
    do {
      jsonExpect(91);
      const k = jsonString();
      jsonExpect(44);
      const v = jsonString();
      jsonExpect(93);
      if (jsonBad) break;
      const p = room(out, 16);
      store<usize>(p, k.ptr);
      store<usize>(p, k.len, 4);
      store<usize>(p, v.ptr, 8);
      store<usize>(p, v.len, 12);
      out.len += 16;
    } while (jsonEat(44));
    jsonExpect(93);
  }
  return pairs(out.ptr, <i32>(out.len >> 4));
}

function putPairsJson(b: Buf, ps: Pairs): void {
  putByte(b, 91);
  for (let i = 0; i < ps.len; i++) {
    if (i > 0) putByte(b, 44);
    putByte(b, 91);
    jsonStr(b, pairKey(ps, i));
    putByte(b, 44);
    jsonStr(b, pairValue(ps, i));
    putByte(b, 93);
  }
  putByte(b, 93);
}

/**
 * A new version's meta record. A write's is `{...{t,a,h,s,m[,task]}, v, dv}`; a restored or reverted
 * version's meta was built with `dv` before the spread, so its keys go `..., m, dv, v`.
 */
function metaJson(meta: Meta, dvFirst: bool): Str {
  const b = buf(160 + meta.a.len + meta.h.len + (<usize>meta.m.len << 5));
  putLit(b, '{"t":');
  putU64(b, <u64>meta.t);
  putLit(b, ',"a":');
  jsonStr(b, meta.a);
  putLit(b, ',"h":');
  jsonStr(b, meta.h);
  putLit(b, ',"s":');
  putU64(b, <u64>meta.s);
  putLit(b, ',"m":');
  putPairsJson(b, meta.m);
  if (dvFirst) {
    putLit(b, ',"dv":');
    putU64(b, <u64>meta.dv);
    putLit(b, ',"v":');
    putU64(b, <u64>meta.v);
  } else {
    const task = meta.task;
    if (task !== null) {
      putLit(b, ',"task":');
      jsonStr(b, task);
    }
    putLit(b, ',"v":');
    putU64(b, <u64>meta.v);
    putLit(b, ',"dv":');
    putU64(b, <u64>meta.dv);
  }
  putByte(b, 125);
  return bufStr(b);
}

/** A meta to fill in (arena). */
export function newMeta(t: i64, a: Str, h: Str, s: i64, m: Pairs, task: Str | null): Meta {
  const meta = changetype<Meta>(alloc(offsetof<Meta>(), 8));
  meta.t = t;
  meta.a = a;
  meta.h = h;
  meta.s = s;
  meta.m = m;
  meta.task = task;
  meta.v = 0;
  meta.dv = 0;
  return meta;
}

/**
 * Metadata for a version written on the system's behalf: without the task tag (it is not that task's
 * write) and with `key` = `value` last.
 */
export function provenance(md: Pairs, key: string, value: Str): Pairs {
  const out = buf(<usize>(md.len + 1) << 4);
  const k = buf(<usize>key.length);
  putLit(k, key);
  const ks = bufStr(k);
  for (let i = 0; i < md.len; i++) {
    const mk = pairKey(md, i);
    if (strIs(mk, TASK_METADATA_KEY) || strEq(mk, ks)) continue;
    const p = room(out, 16);
    memory.copy(p, md.ptr + (<usize>i << 4), 16);
    out.len += 16;
  }
  const p = room(out, 16);
  store<usize>(p, ks.ptr);
  store<usize>(p, ks.len, 4);
  store<usize>(p, value.ptr, 8);
  store<usize>(p, value.len, 12);
  out.len += 16;
  return pairs(out.ptr, <i32>(out.len >> 4));
}

/**
 * Appends version n+1 of `key` to `head` (changed in place) and its ops: its meta, its data (unless
 * `dataVersion` > 0 names older bytes, which then get pinned), and the pruning of versions that fall out
 * of the newest `maxVersions`. The caller adds the head put (after any other change to the head).
 * Returns the new version, or -1 (error set).
 */
export function appendVersion(
  head: Head,
  key: Str,
  meta: Meta,
  dataVersion: i64,
  data: Str | null,
  maxVersions: i64,
  ops: Buf,
): i64 {
  const v = head.n + 1;
  const dv = dataVersion > 0 ? dataVersion : v;
  meta.v = v;
  meta.dv = dv;
  opPut(ops, metaKey(key, v), metaJson(meta, dataVersion > 0));
  if (dv == v) {
    if (data === null) {
      const m = msg('version ');
      putU64(m, <u64>v);
      putLit(m, ' of ');
      putStr(m, key);
      putLit(m, ' has neither data nor a data version');
      fail(INTERNAL, m);
      return -1;
    }
    opPut(ops, dataKey(key, v), data);
  } else {
    pin(head, dv);
  }
  head.n = v;
  head.l = v;
  head.ld = dv;
  let pruned = 0;
  while (head.n - head.o + 1 > maxVersions && pruned < PRUNE_PER_WRITE) {
    const x = head.o;
    if (!isPinned(head, x)) {
      opDelete(ops, metaKey(key, x));
      opDelete(ops, dataKey(key, x));
    }
    head.o++;
    pruned++;
  }
  return v;
}
