/**
 * Input checks shared by every backend, run before a backend is touched: a rejected call leaves no state
 * behind, and every backend refuses exactly the same inputs.
 *
 * Keys travel as UTF-8 bytes. Strings with lone surrogates are refused because UTF-8 cannot represent them
 * (TextEncoder would map them to U+FFFD, so two different keys would collide).
 */
import { invalid } from './errors.js';
import { KV_LIMITS, type KvOp, type KvScanOptions } from './types.js';

const LONE_SURROGATE = /\p{Surrogate}/u;

function utf8(what: string, s: unknown, maxBytes: number, allowEmpty: boolean): Buffer {
  if (typeof s !== 'string') throw invalid(`${what} must be a string, got ${describe(s)}`);
  if (!allowEmpty && s.length === 0) throw invalid(`${what} must not be empty`);
  if (LONE_SURROGATE.test(s)) throw invalid(`${what} contains a lone UTF-16 surrogate and has no UTF-8 form`);
  // A UTF-16 code unit encodes to at most 3 UTF-8 bytes: skip the encoding when it cannot exceed the limit.
  if (s.length * 3 > maxBytes && Buffer.byteLength(s, 'utf8') > maxBytes) {
    throw invalid(
      `${what} is ${Buffer.byteLength(s, 'utf8')} UTF-8 bytes, more than the limit of ${maxBytes}`,
    );
  }
  return Buffer.from(s, 'utf8');
}

export function checkPartition(partition: unknown): Buffer {
  const bytes = utf8('partition', partition, KV_LIMITS.maxPartitionBytes, false);
  // The embedded backend separates partition and key with a NUL byte.
  if (bytes.includes(0)) throw invalid('partition must not contain a NUL character');
  return bytes;
}

export function checkKey(key: unknown, what = 'key'): Buffer {
  return utf8(what, key, KV_LIMITS.maxKeyBytes, false);
}

export function checkKeys(keys: unknown): Buffer[] {
  if (!Array.isArray(keys)) throw invalid(`keys must be an array, got ${describe(keys)}`);
  if (keys.length > KV_LIMITS.maxKeysPerGetMany) {
    throw invalid(`getMany takes at most ${KV_LIMITS.maxKeysPerGetMany} keys, got ${keys.length}`);
  }
  return keys.map((k, i) => checkKey(k, `keys[${i}]`));
}

export type CheckedOp = { op: 'put'; key: Buffer; value: Buffer } | { op: 'delete'; key: Buffer };

/** Validates every op before any is applied, and copies values so later mutation by the caller is harmless. */
export function checkOps(ops: unknown): CheckedOp[] {
  if (!Array.isArray(ops)) throw invalid(`ops must be an array, got ${describe(ops)}`);
  if (ops.length > KV_LIMITS.maxOpsPerBatch) {
    throw invalid(`a batch holds at most ${KV_LIMITS.maxOpsPerBatch} ops, got ${ops.length}`);
  }
  let total = 0;
  const checked = ops.map((raw: unknown, i): { op: 'put'; key: Buffer; value: Uint8Array } | CheckedOp => {
    if (raw === null || typeof raw !== 'object')
      throw invalid(`ops[${i}] must be an object, got ${describe(raw)}`);
    const op = raw as Partial<KvOp> & { op?: unknown };
    const key = checkKey(op.key, `ops[${i}].key`);
    total += key.length;
    if (op.op === 'delete') return { op: 'delete', key };
    if (op.op !== 'put') throw invalid(`ops[${i}].op must be 'put' or 'delete', got ${describe(op.op)}`);
    const value = (op as { value?: unknown }).value;
    if (!(value instanceof Uint8Array)) {
      throw invalid(`ops[${i}].value must be a Uint8Array, got ${describe(value)}`);
    }
    if (value.byteLength > KV_LIMITS.maxValueBytes) {
      throw invalid(
        `ops[${i}].value is ${value.byteLength} bytes, more than the limit of ${KV_LIMITS.maxValueBytes}`,
      );
    }
    total += value.byteLength;
    return { op: 'put', key, value };
  });
  if (total > KV_LIMITS.maxBatchBytes) {
    throw invalid(`a batch holds at most ${KV_LIMITS.maxBatchBytes} bytes of keys and values, got ${total}`);
  }
  // Copied only once the whole batch is known to be valid.
  return checked.map((op) =>
    op.op === 'put' ? { op: 'put', key: op.key, value: Buffer.from(op.value) } : op,
  );
}

/** One end of a key range; `upper` ends are always exclusive (a prefix end or a reverse cursor). */
export interface Bound {
  bytes: Buffer;
  inclusive: boolean;
}

export interface CheckedScan {
  lower: Bound | undefined;
  upper: Buffer | undefined;
  limit: number;
  reverse: boolean;
  /** The range holds no key at all (e.g. the cursor is past the prefix). */
  empty: boolean;
}

export function checkScan(opts: unknown): CheckedScan {
  if (opts === null || typeof opts !== 'object')
    throw invalid(`scan options must be an object, got ${describe(opts)}`);
  const o = opts as Partial<KvScanOptions>;
  const limit = o.limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > KV_LIMITS.maxScanLimit) {
    throw invalid(`scan limit must be an integer in 1..${KV_LIMITS.maxScanLimit}, got ${describe(limit)}`);
  }
  if (o.reverse !== undefined && typeof o.reverse !== 'boolean') {
    throw invalid(`scan reverse must be a boolean, got ${describe(o.reverse)}`);
  }
  const reverse = o.reverse === true;
  const prefix =
    o.prefix === undefined ? undefined : utf8('scan prefix', o.prefix, KV_LIMITS.maxKeyBytes, true);
  const after = o.after === undefined ? undefined : utf8('scan after', o.after, KV_LIMITS.maxKeyBytes, true);

  let lower: Bound | undefined = prefix && prefix.length > 0 ? { bytes: prefix, inclusive: true } : undefined;
  let upper = prefix && prefix.length > 0 ? prefixEnd(prefix) : undefined;
  // An empty cursor means "from the start" in both directions (no key is empty, so forward it is the same
  // thing; reverse, "keys below ''" would always be nothing, which no caller wants).
  if (after !== undefined && after.length > 0) {
    if (!reverse) {
      if (!lower || Buffer.compare(after, lower.bytes) >= 0) lower = { bytes: after, inclusive: false };
    } else if (!upper || Buffer.compare(after, upper) < 0) {
      upper = after;
    }
  }
  const empty = upper !== undefined && lower !== undefined && Buffer.compare(lower.bytes, upper) >= 0;
  return { lower, upper, limit, reverse, empty };
}

/** The smallest byte string greater than every string that starts with `prefix`; undefined if none exists. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const out = Buffer.from(prefix.subarray(0, end));
  out[end - 1] = out[end - 1]! + 1;
  return out;
}

/** A zero-copy Uint8Array view, so every backend returns the same type (not a Buffer subclass). */
export function asUint8Array(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `a ${v.constructor.name}`;
  if (typeof v === 'string') return v.length > 40 ? `'${v.slice(0, 40)}…'` : `'${v}'`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'no prototype'})`;
  return `${typeof v} ${String(v)}`;
}
