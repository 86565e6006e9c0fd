/**
 * An in-memory LRU cache (world `cam:kernel/driver`), bounded by entry count and total bytes.
 *
 * The cache is exactly the kind of state a hot-swap must not lose: its entries (in LRU order) and its
 * hit/miss counters move to the new version through export-state/import-state. Nothing is written to
 * `kv`; a cache is allowed to be empty after a restart, not after an upgrade.
 *
 * Ops (binary values; the key is the op's suffix after ':' for get/set/delete):
 *   get:<key>      -> the value, or not-found
 *   set:<key>      payload = the value -> {} (evicts least recently used entries to fit)
 *   delete:<key>   -> {}
 *   stats          -> {"entries","bytes","hits","misses","evictions"}
 */
import { log } from 'cam:kernel/log@0.1.0';
import { kernelError, lifecycle as makeLifecycle, utf8 } from '@cam-os/sdk/guest';

let maxEntries = 1000;
let maxBytes = 8 * 1024 * 1024;
/** Insertion order of a Map is the LRU order: least recent first. */
let entries = new Map<string, Uint8Array>();
let bytes = 0;
const counters = { hits: 0, misses: 0, evictions: 0 };

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw kernelError('invalid-argument', `${name} must be a positive integer, not '${v}'`);
  return n;
}

interface State {
  entries: Array<[string, Uint8Array]>;
  counters: typeof counters;
}

export const lifecycle = makeLifecycle<State>({
  configKeys: ['max-entries', 'max-bytes'],
  init(config) {
    if (config['max-entries'] !== undefined) maxEntries = positiveInt('max-entries', config['max-entries']);
    if (config['max-bytes'] !== undefined) maxBytes = positiveInt('max-bytes', config['max-bytes']);
  },
  health: () => ({
    status: 'serving',
    checks: [
      ['entries', String(entries.size)],
      ['bytes', String(bytes)],
    ],
  }),
  exportState: () => ({ entries: [...entries], counters }),
  importState(s) {
    entries = new Map();
    bytes = 0;
    for (const [k, v] of s.entries) put(k, v);
    Object.assign(counters, s.counters);
  },
});

function put(key: string, value: Uint8Array): void {
  if (value.length > maxBytes)
    throw kernelError('resource-exhausted', `value of ${value.length} bytes exceeds max-bytes ${maxBytes}`);
  const old = entries.get(key);
  if (old) {
    bytes -= old.length;
    entries.delete(key);
  }
  entries.set(key, value);
  bytes += value.length;
  while (entries.size > maxEntries || bytes > maxBytes) {
    const [oldest, v] = entries.entries().next().value as [string, Uint8Array];
    entries.delete(oldest);
    bytes -= v.length;
    counters.evictions++;
  }
}

function keyOf(op: string): string {
  const key = op.slice(op.indexOf(':') + 1);
  if (key.length === 0) throw kernelError('invalid-argument', `op '${op}' names no key`);
  return key;
}

export const handler = {
  handle(op: string, payload: Uint8Array): Uint8Array {
    if (op.startsWith('get:')) {
      const key = keyOf(op);
      const v = entries.get(key);
      if (v === undefined) {
        counters.misses++;
        throw kernelError('not-found', `no entry '${key}'`);
      }
      counters.hits++;
      entries.delete(key);
      entries.set(key, v);
      return v;
    }
    if (op.startsWith('set:')) {
      put(keyOf(op), payload);
      return utf8('{}');
    }
    if (op.startsWith('delete:')) {
      const key = keyOf(op);
      const v = entries.get(key);
      if (v) {
        entries.delete(key);
        bytes -= v.length;
      }
      return utf8('{}');
    }
    if (op === 'stats') {
      log('debug', 'stats', [['entries', String(entries.size)]]);
      return utf8(JSON.stringify({ entries: entries.size, bytes, ...counters }));
    }
    throw kernelError('unimplemented', `unknown op '${op}' (get:<key>, set:<key>, delete:<key>, stats)`);
  },
};
