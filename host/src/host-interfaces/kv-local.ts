/**
 * Imported in a component's worker (see runtime/local.ts): `cam:kernel/kv` reads over a synchronous reader of
 * the embedded store. One reader per store path per worker, shared by the instances the worker runs.
 */
import { type EmbeddedReader, openEmbeddedReader } from '../kv/backend-embedded.js';
import { bindLocalKv } from './kv.js';

const readers = new Map<string, EmbeddedReader>();

export function bindLocal(data: unknown, caller: string): ReturnType<typeof bindLocalKv> {
  const { path, commits } = (data ?? {}) as { path?: unknown; commits?: unknown };
  if (typeof path !== 'string') throw new Error('kv-local: data.path must be the store directory');
  if (
    commits !== undefined &&
    !(commits instanceof Int32Array && commits.buffer instanceof SharedArrayBuffer && commits.length === 1)
  ) {
    throw new Error("kv-local: data.commits must be the store's shared commit counter (one Int32)");
  }
  let reader = readers.get(path);
  if (!reader) {
    reader = openEmbeddedReader(path, commits);
    readers.set(path, reader);
  }
  return bindLocalKv(reader, caller);
}
