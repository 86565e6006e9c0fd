/**
 * Thin helpers over the `cam:kernel/kv` import: raw and JSON values, and kv errors passed on as this
 * component's own kernel-error (a failed import throws an object whose `payload` is the host's
 * `{ tag, val }`).
 */
import { batch, get, getMany, scan } from 'cam:kernel/kv@0.1.0';
import type { KvOp } from './layout.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The last storage failure, for `health`; cleared by the next successful call. */
export let lastStorageError: string | undefined;

function rethrow(e: unknown, what: string): never {
  const payload = (e as { payload?: { tag?: string; val?: string } } | null)?.payload;
  if (payload && typeof payload.tag === 'string') {
    lastStorageError = `${what}: ${payload.tag}${payload.val ? ` (${payload.val})` : ''}`;
    throw payload;
  }
  throw e;
}

export function decodeJson<T>(v: Uint8Array | undefined | null): T | undefined {
  return v === undefined || v === null ? undefined : (JSON.parse(decoder.decode(v)) as T);
}

export function getRaw(partition: string, key: string): Uint8Array | undefined {
  try {
    const v = get(partition, key);
    lastStorageError = undefined;
    return v ?? undefined;
  } catch (e) {
    rethrow(e, 'kv get');
  }
}

export function getJson<T>(partition: string, key: string): T | undefined {
  return decodeJson<T>(getRaw(partition, key));
}

export function getManyRaw(partition: string, keys: string[]): Array<Uint8Array | undefined> {
  try {
    const vs = getMany(partition, keys);
    lastStorageError = undefined;
    return vs;
  } catch (e) {
    rethrow(e, 'kv get-many');
  }
}

/** Every entry under `prefix`, in key order, read page by page. */
export function scanAll(
  partition: string,
  prefix: string,
  pageSize = 1000,
): Array<{ key: string; value: Uint8Array }> {
  const out: Array<{ key: string; value: Uint8Array }> = [];
  let after: string | undefined;
  for (;;) {
    const page = scanPage(partition, prefix, after, pageSize);
    for (let i = 0; i < page.length; i++) out.push(page[i]!);
    if (page.length < pageSize) return out;
    after = page[page.length - 1]!.key;
  }
}

export function scanPage(
  partition: string,
  prefix: string,
  after: string | undefined,
  limit: number,
): Array<{ key: string; value: Uint8Array }> {
  try {
    const page = scan(partition, prefix, after, limit, false);
    lastStorageError = undefined;
    return page;
  } catch (e) {
    rethrow(e, 'kv scan');
  }
}

export function putJson(key: string, value: unknown): KvOp {
  return { tag: 'put', val: { key, value: encoder.encode(JSON.stringify(value)) } };
}

export function putBytes(key: string, value: Uint8Array): KvOp {
  return { tag: 'put', val: { key, value } };
}

export function del(key: string): KvOp {
  return { tag: 'delete', val: key };
}

export function commitBatch(partition: string, ops: KvOp[]): void {
  try {
    batch(partition, ops);
    lastStorageError = undefined;
  } catch (e) {
    rethrow(e, 'kv batch');
  }
}

const HEX = '0123456789abcdef';
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]! >> 4]! + HEX[bytes[i]! & 15]!;
  return s;
}
