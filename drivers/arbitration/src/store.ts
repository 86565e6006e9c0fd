/**
 * Thin helpers over the `cam:kernel/kv` import: JSON values, and kv errors passed on as this component's
 * own kernel-error (a failed import throws an object whose `payload` is the host's `{ tag, val }`).
 */
import { batch, get, getMany, scan } from 'cam:kernel/kv@0.1.0';

export type KvOp = { tag: 'put'; val: { key: string; value: Uint8Array } } | { tag: 'delete'; val: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The last storage failure, for `health`. */
export let lastStorageError: string | undefined;

function rethrow(e: unknown, what: string): never {
  const payload = (e as { payload?: { tag?: string; val?: string } } | null)?.payload;
  if (payload && typeof payload.tag === 'string') {
    lastStorageError = `${what}: ${payload.tag}${payload.val ? ` (${payload.val})` : ''}`;
    throw payload;
  }
  throw e;
}

export function getJson<T>(partition: string, key: string): T | undefined {
  let v: Uint8Array | undefined;
  try {
    v = get(partition, key);
  } catch (e) {
    rethrow(e, `kv get ${partition}`);
  }
  lastStorageError = undefined;
  return v === undefined || v === null ? undefined : (JSON.parse(decoder.decode(v)) as T);
}

/** Values of `keys` from one consistent snapshot, `undefined` where absent. */
export function getManyJson<T>(partition: string, keys: string[]): Array<T | undefined> {
  let vs: Array<Uint8Array | undefined>;
  try {
    vs = getMany(partition, keys);
  } catch (e) {
    rethrow(e, `kv get-many ${partition}`);
  }
  lastStorageError = undefined;
  return vs.map((v) => (v === undefined || v === null ? undefined : (JSON.parse(decoder.decode(v)) as T)));
}

export function scanJson<T>(
  partition: string,
  prefix: string,
  after: string | undefined,
  limit: number,
): Array<[string, T]> {
  let entries: Array<{ key: string; value: Uint8Array }>;
  try {
    entries = scan(partition, prefix, after, limit, false);
  } catch (e) {
    rethrow(e, `kv scan ${partition}`);
  }
  lastStorageError = undefined;
  return entries.map((e) => [e.key, JSON.parse(decoder.decode(e.value)) as T]);
}

export function putJson(key: string, value: unknown): KvOp {
  return { tag: 'put', val: { key, value: encoder.encode(JSON.stringify(value)) } };
}

export function del(key: string): KvOp {
  return { tag: 'delete', val: key };
}

export function commitBatch(partition: string, ops: KvOp[]): void {
  try {
    batch(partition, ops);
  } catch (e) {
    rethrow(e, `kv batch ${partition}`);
  }
  lastStorageError = undefined;
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i]! < 16 ? '0' : '') + bytes[i]!.toString(16);
  return s;
}

export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
