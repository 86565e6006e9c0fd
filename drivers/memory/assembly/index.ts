/**
 * The memory component (world `cam:kernel/memory-component@0.1.0`), compiled from AssemblyScript: versioned
 * context memory over the host's kv (memory.ts, layout.ts).
 *
 * This file is the canonical-ABI glue, written by hand: each export lifts its flat arguments (checking every
 * pointer, length, UTF-8 string and discriminant the host passes; a bad one traps), runs the operation, and
 * lowers its `result` into a return area whose layout the component model fixes:
 *
 *   export        core signature                                result      payload at
 *   init          (list) -> ret                                 result<_>   4
 *   health        () -> ret                                     record      0
 *   export-state  () -> ret                                     result<list<u8>> 4
 *   import-state  (list) -> ret                                 result<_>   4
 *   read          (ns, key, option<u64> as i32 + i64) -> ret    result<context-entry> 8
 *   write         (ns, key, data, metadata, author) -> ret      result<write-receipt> 8
 *   write-many    (list<write-request>) -> ret                  result<list<write-receipt>> 4
 *   snapshot      (ns, description, author) -> ret              result<string> 4
 *   restore       (id, bool) -> ret                             result<restore-result> 8
 *   version-list  (ns, key, u32, option<u64>) -> ret            result<version-page> 4
 *   revert-task   (task) -> ret                                 result<revert-result> 8
 *
 * (strings and lists are pointer + length; a kernel-error sits at the payload offset: case byte, then its
 * message's pointer and length 4 bytes later.) The host frees nothing itself: after lifting a result it
 * calls `cabi_post_<export>`, which resets the call arena (abi.ts) holding arguments, import results and
 * the result. Export names here are `<interface>__<function>` with `_` for `-`; the SDK's AssemblyScript
 * build renames them to `cam:kernel/<interface>@<version>#<function>`.
 */
import {
  alloc,
  Buf,
  buf,
  bufStr,
  checkRange,
  hostBytes,
  hostStr,
  isUtf8,
  putByte,
  putLit,
  putStr,
  putU64,
  realloc,
  reset,
  Str,
  str,
  strIs,
  takeGcGarbage,
  trap,
} from './abi';
import {
  clearError,
  DEADLINE_EXCEEDED,
  errMsg,
  errTag,
  FAILED_PRECONDITION,
  fail,
  INVALID_ARGUMENT,
  msg,
  pairPut,
  pairsNew,
  storageError,
  UNIMPLEMENTED,
} from './host';
import { jsonBegin, jsonDone, jsonEat, jsonExpect, jsonNumber, jsonPeek, jsonSkip, jsonString } from './json';
import { checkMaxVersions, DEFAULT_MAX_VERSIONS, Pairs, pairKey, pairs, pairValue } from './layout';
import {
  addCounters,
  boolStr,
  configure,
  initialized,
  maxVersions,
  putNumber,
  read,
  reads,
  restore,
  revertTask,
  snapshot,
  versionList,
  write,
  writeMany,
  writes,
} from './memory';

const STATE_FORMAT = 1;

// ---------------------------------------------------------------------------------------------------------
// Glue

export function cabi_realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  return realloc(oldPtr, oldSize, align, newSize);
}

/** A return area of `size` bytes. */
function begin(size: usize): usize {
  clearError();
  return alloc(size, 8);
}

/** Writes `result::err(<the call's kernel-error>)` with the error at `at`. */
function lowerError(ret: usize, at: usize): usize {
  store<u8>(ret, 1);
  store<u8>(ret + at, <u8>errTag);
  if (errTag != DEADLINE_EXCEEDED) {
    store<usize>(ret + at, errMsg.ptr, 4);
    store<usize>(ret + at, errMsg.len, 8);
  }
  return ret;
}

function lower(ok: bool, ret: usize, at: usize): usize {
  if (!ok) return lowerError(ret, at);
  store<u8>(ret, 0);
  return ret;
}

/** Every post-return: the result has been lifted, so the call's memory goes. */
function end(): void {
  reset();
  // Only cold paths (number formatting/parsing beyond integers) create GC objects; collect them here,
  // where no stack frame can still hold one.
  // @ts-ignore: a runtime builtin (std/assembly/rt/index.d.ts)
  if (takeGcGarbage()) __collect();
}

/** A `string-map` argument, checked. */
function liftPairs(ptr: usize, len: usize): Pairs {
  checkRange(ptr, <u64>len << 4, 4);
  for (let i: usize = 0; i < len; i++) {
    const e = ptr + (i << 4);
    hostStr(load<usize>(e), load<usize>(e, 4));
    hostStr(load<usize>(e, 8), load<usize>(e, 12));
  }
  return pairs(ptr, <i32>len);
}

function liftOption(discriminant: i32): bool {
  if (discriminant == 0) return false;
  if (discriminant != 1) trap();
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// cam:kernel/lifecycle

export function lifecycle__init(ptr: usize, len: usize): usize {
  const ret = begin(16);
  return lower(init(liftPairs(ptr, len)), ret, 4);
}

export function cabi_post_lifecycle__init(ret: usize): void {
  end();
}

function init(config: Pairs): bool {
  if (initialized) return fail(FAILED_PRECONDITION, msg('init was already called'));
  let max = DEFAULT_MAX_VERSIONS;
  for (let i = 0; i < config.len; i++) {
    const key = pairKey(config, i);
    if (strIs(key, 'max-versions')) {
      max = checkMaxVersions(pairValue(config, i));
      if (max < 0) return false;
    } else {
      const m = msg("unknown config key '");
      putStr(m, key);
      putLit(m, "' (known: max-versions)");
      return fail(INVALID_ARGUMENT, m);
    }
  }
  configure(max);
  return true;
}

export function lifecycle__health(): usize {
  const ret = begin(20);
  const storage = storageError();
  const checks = pairsNew(5);
  pairPut(checks, text('initialized'), boolStr(initialized));
  pairPut(checks, text('max-versions'), numberText(<f64>maxVersions));
  pairPut(checks, text('writes'), numberText(writes));
  pairPut(checks, text('reads'), numberText(reads));
  pairPut(checks, text('kv'), storage === null ? text('ok') : storage);
  if (storage === null) {
    store<u8>(ret, 0); // serving
    store<usize>(ret, 0, 4);
    store<usize>(ret, 0, 8);
  } else {
    const detail = buf(9 + storage.len);
    putLit(detail, 'storage: ');
    putStr(detail, storage);
    store<u8>(ret, 1); // degraded
    store<usize>(ret, detail.ptr, 4);
    store<usize>(ret, detail.len, 8);
  }
  store<usize>(ret, checks.ptr, 12);
  store<usize>(ret, checks.len >> 4, 16);
  return ret;
}

export function cabi_post_lifecycle__health(ret: usize): void {
  end();
}

function text(s: string): Str {
  const b = buf(<usize>s.length);
  putLit(b, s);
  return bufStr(b);
}

function numberText(x: f64): Str {
  const b = buf(24);
  putNumber(b, x);
  return bufStr(b);
}

/** JSON.stringify of a number: as String(), except that non-finite numbers become null. */
function putJsonNumber(b: Buf, x: f64): void {
  if (isFinite(x)) putNumber(b, x);
  else putLit(b, 'null');
}

export function lifecycle__export_state(): usize {
  const ret = begin(16);
  if (!initialized) {
    fail(FAILED_PRECONDITION, msg('export-state before init'));
    return lowerError(ret, 4);
  }
  // All context is durable in kv; only the operation counters live in memory.
  const b = buf(64);
  putLit(b, '{"format":');
  putU64(b, STATE_FORMAT);
  putLit(b, ',"writes":');
  putJsonNumber(b, writes);
  putLit(b, ',"reads":');
  putJsonNumber(b, reads);
  putByte(b, 125);
  store<u8>(ret, 0);
  store<usize>(ret, b.ptr, 4);
  store<usize>(ret, b.len, 8);
  return ret;
}

export function cabi_post_lifecycle__export_state(ret: usize): void {
  end();
}

export function lifecycle__import_state(ptr: usize, len: usize): usize {
  const ret = begin(16);
  return lower(importState(hostBytes(ptr, len)), ret, 4);
}

export function cabi_post_lifecycle__import_state(ret: usize): void {
  end();
}

/** `JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state))`, then the counters. */
function importState(state: Str): bool {
  if (!isUtf8(state.ptr, state.len)) return notOurs();
  let s = state;
  // TextDecoder drops a leading byte order mark.
  if (s.len >= 3 && load<u8>(s.ptr) == 0xef && load<u8>(s.ptr + 1) == 0xbb && load<u8>(s.ptr + 2) == 0xbf) {
    s = str(s.ptr + 3, s.len - 3);
  }
  // The last occurrence of a key wins; a value that is not a number counts as absent.
  let format: f64 = 0;
  let hasFormat = false;
  let w: f64 = 0;
  let r: f64 = 0;
  jsonBegin(s);
  if (jsonPeek() == 123) {
    jsonEat(123);
    if (!jsonEat(125)) {
      do {
        const k = jsonString();
        jsonExpect(58);
        const c = jsonPeek();
        const isNumber = c == 45 || (c >= 48 && c <= 57);
        const which = strIs(k, 'format') ? 1 : strIs(k, 'writes') ? 2 : strIs(k, 'reads') ? 3 : 0;
        let value: f64 = 0;
        if (isNumber) value = jsonNumber();
        else jsonSkip();
        if (which == 1) {
          hasFormat = isNumber;
          format = value;
        } else if (which == 2) w = isNumber ? value : 0;
        else if (which == 3) r = isNumber ? value : 0;
      } while (jsonEat(44));
      jsonExpect(125);
    }
  } else {
    jsonSkip();
  }
  if (!jsonDone()) return notOurs();
  if (!hasFormat) return fail(INVALID_ARGUMENT, msg('state has no format number'));
  if (format > <f64>STATE_FORMAT) {
    const m = msg('state format ');
    putNumber(m, format);
    putLit(m, ' is newer than ');
    putU64(m, STATE_FORMAT);
    return fail(UNIMPLEMENTED, m);
  }
  addCounters(w, r);
  return true;
}

function notOurs(): bool {
  return fail(INVALID_ARGUMENT, msg('state is not the JSON this component exports'));
}

// ---------------------------------------------------------------------------------------------------------
// cam:kernel/memory

export function memory__read(
  nsPtr: usize,
  nsLen: usize,
  keyPtr: usize,
  keyLen: usize,
  hasVersion: i32,
  version: u64,
): usize {
  const ret = begin(72);
  const ok = read(hostStr(nsPtr, nsLen), hostStr(keyPtr, keyLen), liftOption(hasVersion), version, ret + 8);
  return lower(ok, ret, 8);
}

export function cabi_post_memory__read(ret: usize): void {
  end();
}

export function memory__write(
  nsPtr: usize,
  nsLen: usize,
  keyPtr: usize,
  keyLen: usize,
  dataPtr: usize,
  dataLen: usize,
  mdPtr: usize,
  mdLen: usize,
  authorPtr: usize,
  authorLen: usize,
): usize {
  const ret = begin(32);
  const ok = write(
    hostStr(nsPtr, nsLen),
    hostStr(keyPtr, keyLen),
    hostBytes(dataPtr, dataLen),
    liftPairs(mdPtr, mdLen),
    hostStr(authorPtr, authorLen),
    ret + 8,
  );
  return lower(ok, ret, 8);
}

export function cabi_post_memory__write(ret: usize): void {
  end();
}

export function memory__write_many(ptr: usize, count: usize): usize {
  const ret = begin(16);
  // Every request's strings and lists are checked before any is used.
  checkRange(ptr, <u64>count * 40, 4);
  for (let i: usize = 0; i < count; i++) {
    const r = ptr + i * 40;
    hostStr(load<usize>(r), load<usize>(r, 4));
    hostStr(load<usize>(r, 8), load<usize>(r, 12));
    hostBytes(load<usize>(r, 16), load<usize>(r, 20));
    liftPairs(load<usize>(r, 24), load<usize>(r, 28));
    hostStr(load<usize>(r, 32), load<usize>(r, 36));
  }
  const receipts = alloc(count * 24, 8);
  if (!writeMany(ptr, <i32>count, receipts)) return lowerError(ret, 4);
  store<u8>(ret, 0);
  store<usize>(ret, receipts, 4);
  store<usize>(ret, count, 8);
  return ret;
}

export function cabi_post_memory__write_many(ret: usize): void {
  end();
}

export function memory__snapshot(
  nsPtr: usize,
  nsLen: usize,
  descPtr: usize,
  descLen: usize,
  authorPtr: usize,
  authorLen: usize,
): usize {
  const ret = begin(16);
  const ok = snapshot(
    hostStr(nsPtr, nsLen),
    hostStr(descPtr, descLen),
    hostStr(authorPtr, authorLen),
    ret + 4,
  );
  return lower(ok, ret, 4);
}

export function cabi_post_memory__snapshot(ret: usize): void {
  end();
}

export function memory__restore(idPtr: usize, idLen: usize, force: i32): usize {
  const ret = begin(24);
  // A flat bool is any i32: non-zero is true.
  return lower(restore(hostStr(idPtr, idLen), force != 0, ret + 8), ret, 8);
}

export function cabi_post_memory__restore(ret: usize): void {
  end();
}

export function memory__version_list(
  nsPtr: usize,
  nsLen: usize,
  keyPtr: usize,
  keyLen: usize,
  limit: u32,
  hasSince: i32,
  since: u64,
): usize {
  const ret = begin(28);
  const ok = versionList(
    hostStr(nsPtr, nsLen),
    hostStr(keyPtr, keyLen),
    limit,
    liftOption(hasSince),
    since,
    ret + 4,
  );
  return lower(ok, ret, 4);
}

export function cabi_post_memory__version_list(ret: usize): void {
  end();
}

export function memory__revert_task(ptr: usize, len: usize): usize {
  const ret = begin(24);
  return lower(revertTask(hostStr(ptr, len), ret + 8), ret, 8);
}

export function cabi_post_memory__revert_task(ret: usize): void {
  end();
}
