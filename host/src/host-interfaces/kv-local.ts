/**
 * Imported in a component's worker (see runtime/local.ts): `cam:kernel/kv` reads over a synchronous reader of
 * the embedded store. One reader per store path per worker, shared by the instances the worker runs.
 */
import { type EmbeddedReader, openEmbeddedReader } from '../kv/backend-embedded.js';
import { bindLocalKv } from './kv.js';

const readers = new Map<string, EmbeddedReader>();

export function bindLocal(data: unknown, caller: string): ReturnType<typeof bindLocalKv> {
  const path = (data as { path?: unknown } | null)?.path;
  if (typeof path !== 'string') throw new Error('kv-local: data.path must be the store directory');
  let reader = readers.get(path);
  if (!reader) {
    reader = openEmbeddedReader(path);
    readers.set(path, reader);
  }
  return bindLocalKv(reader, caller);
}
