/**
 * The component's imports (exactly its world's: kv, log, clock, digest) with their canonical-ABI lowering
 * by hand, and the error state that replaces exceptions.
 *
 * Errors: a function that can fail sets `errTag`/`errMsg` (a kernel-error case and its message) and returns
 * a neutral value; callers test `failed()` and return at once, so the export ends with that error. A kv
 * error is passed on as the component's own (same case, same message), and remembered for `health` until
 * the next successful kv call.
 */
import {
  alloc,
  at,
  Buf,
  buf,
  bufStr,
  checkRange,
  hostBytes,
  hostStr,
  push,
  putByte,
  putLit,
  putStr,
  room,
  Str,
  str,
  trap,
  Vec,
  vec,
} from './abi';

// @ts-ignore: decorator
@external('cam:kernel/kv@0.1.0', 'get')
declare function kvGetImport(pp: usize, pl: usize, kp: usize, kl: usize, ret: usize): void;
// @ts-ignore: decorator
@external('cam:kernel/kv@0.1.0', 'get-many')
declare function kvGetManyImport(pp: usize, pl: usize, kp: usize, kl: usize, ret: usize): void;
// @ts-ignore: decorator
@external('cam:kernel/kv@0.1.0', 'batch')
declare function kvBatchImport(pp: usize, pl: usize, op: usize, ol: usize, ret: usize): void;
// @ts-ignore: decorator
@external('cam:kernel/kv@0.1.0', 'scan')
declare function kvScanImport(
  pp: usize,
  pl: usize,
  xp: usize,
  xl: usize,
  afterSome: i32,
  ap: usize,
  al: usize,
  limit: u32,
  reverse: i32,
  ret: usize,
): void;
// @ts-ignore: decorator
@external('cam:kernel/log@0.1.0', 'log')
declare function logImport(level: i32, mp: usize, ml: usize, fp: usize, fl: usize): void;
// @ts-ignore: decorator
@external('cam:kernel/clock@0.1.0', 'now-ms')
declare function nowMsImport(): u64;
// @ts-ignore: decorator
@external('cam:kernel/digest@0.1.0', 'sha256')
declare function sha256Import(dp: usize, dl: usize, ret: usize): void;

// ---------------------------------------------------------------------------------------------------------
// kernel-error

// Case numbers of `kernel-error` (types.wit), in declaration order.
export const INVALID_ARGUMENT = 0;
export const NOT_FOUND = 1;
export const FAILED_PRECONDITION = 4;
export const RESOURCE_EXHAUSTED = 5;
export const DEADLINE_EXCEEDED = 6;
export const UNIMPLEMENTED = 8;
export const INTERNAL = 9;
const ERROR_CASES = 10;

function caseName(tag: i32): string {
  switch (tag) {
    case 0:
      return 'invalid-argument';
    case 1:
      return 'not-found';
    case 2:
      return 'already-exists';
    case 3:
      return 'permission-denied';
    case 4:
      return 'failed-precondition';
    case 5:
      return 'resource-exhausted';
    case 6:
      return 'deadline-exceeded';
    case 7:
      return 'unavailable';
    case 8:
      return 'unimplemented';
    default:
      return 'internal';
  }
}

/** The error of the current call: a kernel-error case, or -1. */
export let errTag: i32 = -1;
export let errMsg: Str = changetype<Str>(0);

export function failed(): bool {
  return errTag >= 0;
}

export function errCase(): i32 {
  return errTag;
}

export function errMessage(): Str {
  return errMsg;
}

export function clearError(): void {
  errTag = -1;
}

/** Records the call's error; returns false so a check can `return fail(...)`. */
export function fail(tag: i32, message: Buf): bool {
  errTag = tag;
  errMsg = bufStr(message);
  return false;
}

/** A message under construction (see abi.ts for the put* helpers). */
export function msg(start: string): Buf {
  const b = buf(128);
  putLit(b, start);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Storage health

/** The last storage failure, heap-allocated (it outlives the call); 0 = none. */
let storagePtr: usize = 0;
let storageLen: usize = 0;

export function storageError(): Str | null {
  return storagePtr == 0 ? null : str(storagePtr, storageLen);
}

function storageOk(): void {
  if (storagePtr != 0) {
    heap.free(storagePtr);
    storagePtr = 0;
    storageLen = 0;
  }
}

/** Takes the kernel-error the host wrote at `at` as this call's error, and remembers it for health. */
function storageFailed(what: string, at: usize): void {
  const tag = <i32>load<u8>(at);
  if (tag >= ERROR_CASES) trap();
  let val = str(0, 0);
  if (tag != DEADLINE_EXCEEDED) val = hostStr(load<usize>(at, 4), load<usize>(at, 8));
  errTag = tag;
  errMsg = val;
  // `${what}: ${tag}${val ? ` (${val})` : ''}`
  const b = buf(64 + val.len);
  putLit(b, what);
  putLit(b, ': ');
  putLit(b, caseName(tag));
  if (val.len > 0) {
    putLit(b, ' (');
    putStr(b, val);
    putByte(b, 41);
  }
  storageOk();
  storagePtr = heap.alloc(b.len == 0 ? 1 : b.len);
  memory.copy(storagePtr, b.ptr, b.len);
  storageLen = b.len;
}

/** Reads a `result<T, kernel-error>` discriminant; true when ok. */
function resultOk(ret: usize, errAt: usize, what: string): bool {
  const d = load<u8>(ret);
  if (d == 0) {
    storageOk();
    return true;
  }
  if (d != 1) trap();
  storageFailed(what, ret + errAt);
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// kv

/** The value of `key`, null when absent (or on error: check failed()). */
export function kvGet(partition: Str, key: Str): Str | null {
  const ret = alloc(16, 4);
  kvGetImport(partition.ptr, partition.len, key.ptr, key.len, ret);
  if (!resultOk(ret, 4, 'kv get')) return null;
  const some = load<u8>(ret, 4);
  if (some == 0) return null;
  if (some != 1) trap();
  return hostBytes(load<usize>(ret, 8), load<usize>(ret, 12));
}

/** The values of `keys` (Vec of Str), one per key: a Str or 0 when absent. Null on error. */
export function kvGetMany(partition: Str, keys: Vec): Vec | null {
  const list = alloc(<usize>keys.len << 3, 4);
  for (let i = 0; i < keys.len; i++) {
    const k = changetype<Str>(at(keys, i));
    store<usize>(list + (<usize>i << 3), k.ptr);
    store<usize>(list + (<usize>i << 3), k.len, 4);
  }
  const ret = alloc(16, 4);
  kvGetManyImport(partition.ptr, partition.len, list, keys.len, ret);
  if (!resultOk(ret, 4, 'kv get-many')) return null;
  const ptr = load<usize>(ret, 4);
  const n = load<u32>(ret, 8);
  if (n != <u32>keys.len) trap();
  checkRange(ptr, <u64>n * 12, 4);
  const out = vec(keys.len);
  for (let i: u32 = 0; i < n; i++) {
    const e = ptr + i * 12;
    const some = load<u8>(e);
    if (some == 0) push(out, 0);
    else if (some == 1) push(out, changetype<usize>(hostBytes(load<usize>(e, 4), load<usize>(e, 8))));
    else trap();
  }
  return out;
}

/** kv ops in their ABI form (`variant op`, 20 bytes each), appended in order. */
export function opsNew(): Buf {
  return buf(20 * 8);
}

export function opsCount(ops: Buf): i32 {
  return <i32>(ops.len / 20);
}

export function opPut(ops: Buf, key: Str, value: Str): void {
  const p = room(ops, 20);
  store<u32>(p, 0);
  store<usize>(p, key.ptr, 4);
  store<usize>(p, key.len, 8);
  store<usize>(p, value.ptr, 12);
  store<usize>(p, value.len, 16);
  ops.len += 20;
}

export function opDelete(ops: Buf, key: Str): void {
  const p = room(ops, 20);
  store<u32>(p, 1);
  store<usize>(p, key.ptr, 4);
  store<usize>(p, key.len, 8);
  store<u64>(p, 0, 12);
  ops.len += 20;
}

/** Applies `ops` atomically; false on error. */
export function kvBatch(partition: Str, ops: Buf): bool {
  const ret = alloc(16, 4);
  kvBatchImport(partition.ptr, partition.len, ops.ptr, ops.len / 20, ret);
  return resultOk(ret, 4, 'kv batch');
}

/** One entry of a scan: pointer to its ABI record (key string, value bytes), checked. */
export function entryKey(e: usize): Str {
  return str(load<usize>(e), load<usize>(e, 4));
}

export function entryValue(e: usize): Str {
  return str(load<usize>(e, 8), load<usize>(e, 12));
}

/** One page of a forward scan: a Vec of entry pointers. Null on error. */
export function kvScan(partition: Str, prefix: Str, after: Str | null, limit: u32): Vec | null {
  const ret = alloc(16, 4);
  if (after === null) {
    kvScanImport(partition.ptr, partition.len, prefix.ptr, prefix.len, 0, 0, 0, limit, 0, ret);
  } else {
    kvScanImport(partition.ptr, partition.len, prefix.ptr, prefix.len, 1, after.ptr, after.len, limit, 0, ret);
  }
  if (!resultOk(ret, 4, 'kv scan')) return null;
  const ptr = load<usize>(ret, 4);
  const n = load<u32>(ret, 8);
  checkRange(ptr, <u64>n << 4, 4);
  const out = vec(<i32>n);
  for (let i: u32 = 0; i < n; i++) {
    const e = ptr + (i << 4);
    hostStr(load<usize>(e), load<usize>(e, 4));
    hostBytes(load<usize>(e, 8), load<usize>(e, 12));
    push(out, e);
  }
  return out;
}

/** Every entry under `prefix`, in key order, read page by page. Null on error. */
export function kvScanAll(partition: Str, prefix: Str): Vec | null {
  const pageSize: u32 = 1000;
  let out: Vec | null = null;
  let after: Str | null = null;
  for (;;) {
    const page = kvScan(partition, prefix, after, pageSize);
    if (page === null) return null;
    if (out === null) out = page;
    else for (let i = 0; i < page.len; i++) push(out, at(page, i));
    if (<u32>page.len < pageSize) return out;
    after = entryKey(at(page, page.len - 1));
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// log, clock, digest

/** A `string-map` in its ABI form (16 bytes per pair). */
export function pairsNew(n: usize): Buf {
  return buf(n << 4);
}

export function pairPut(pairs: Buf, k: Str, v: Str): void {
  const p = room(pairs, 16);
  store<usize>(p, k.ptr);
  store<usize>(p, k.len, 4);
  store<usize>(p, v.ptr, 8);
  store<usize>(p, v.len, 12);
  pairs.len += 16;
}

const LEVEL_INFO = 2;

export function logInfo(message: string, fields: Buf): void {
  const m = buf(<usize>message.length);
  putLit(m, message);
  logImport(LEVEL_INFO, m.ptr, m.len, fields.ptr, fields.len >> 4);
}

export function nowMs(): i64 {
  // The old component stored Number(now-ms); any real clock is far below 2^53.
  return <i64>nowMsImport();
}

const HEX = '0123456789abcdef';

/** Lowercase hex sha-256 of `data`, computed by the host. */
export function sha256Hex(data: Str): Str {
  const ret = alloc(8, 4);
  sha256Import(data.ptr, data.len, ret);
  const digest = hostBytes(load<usize>(ret), load<usize>(ret, 4));
  const b = buf(digest.len << 1);
  const hex = changetype<usize>(HEX);
  const p = room(b, digest.len << 1);
  for (let i: usize = 0; i < digest.len; i++) {
    const c = <usize>load<u8>(digest.ptr + i);
    store<u8>(p + (i << 1), <u8>load<u16>(hex + ((c >> 4) << 1)));
    store<u8>(p + (i << 1) + 1, <u8>load<u16>(hex + ((c & 15) << 1)));
  }
  b.len += digest.len << 1;
  return bufStr(b);
}
