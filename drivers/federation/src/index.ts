/**
 * The federation component (world `cam:kernel/federation-component@0.1.0`): the replicated state of the
 * federated context namespaces, as one Yjs document, persisted in the host's kv.
 *
 * Why Yjs (measured, bench/federation.bench.ts, recorded in bench/RESULTS.md): the component runs inside
 * componentize-js (SpiderMonkey compiled to wasm), which has no WebAssembly API for guest code, so
 * Automerge 2/3 (Rust compiled to wasm) cannot run here at all; Yjs is plain JS. On the host, for this
 * workload (1 KB values in a map, encode / apply / merge), Yjs was also the faster of the two (figures in
 * RESULTS). We use Yjs's own CRDT, update encoding and state-vector sync; nothing here merges by hand.
 *
 * Document layout, per federated namespace `ns`:
 * - `e:<ns>` (Y.Map): entry id -> { k: key, h: sha-256 hex, d: bytes, m: metadata pairs, a: author,
 *   t: timestamp ms, o: origin node id }. Every write ever made: the key's merged history. Entry ids are
 *   `<client id>.<clock>` of the writing client, unique without coordination, and are never overwritten.
 * - `v:<ns>` (Y.Map): key -> entry id of the current value. Concurrent sets of one key resolve by Yjs's
 *   map rule (the causally later set wins; between concurrent sets, the higher client id), identical on
 *   every node. The client id is fixed per node: the first 4 bytes of sha-256(node id), big-endian.
 *
 * Reusing a client id across restarts is safe because every local change is in kv before the update
 * leaves the component: after a restart the document is reloaded first, so the clock continues.
 *
 * Persistence (kv partition `federation/<node id>`): `u/<16 hex>` holds each update in arrival order; after
 * COMPACT_EVERY updates the whole document is written as `s/<4 hex>` chunks and the `u/` keys removed,
 * in one batch.
 */
import './guest-env.js';
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { sha256 } from 'cam:kernel/digest@0.1.0';
import { batch, type Op, scan } from 'cam:kernel/kv@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import * as Y from 'yjs';

type StringMap = Array<[string, string]>;
type ErrorTag = 'invalid-argument' | 'failed-precondition' | 'unavailable' | 'internal';

interface Change {
  namespace: string;
  key: string;
  hash: string;
  data: Uint8Array;
  metadata: StringMap;
  author: string;
  timestampMs: bigint;
}
interface Entry {
  id: string;
  originNode: string;
  change: Change;
}
interface KeyUpdate {
  namespace: string;
  key: string;
  added: Entry[];
  current: Entry;
  currentChanged: boolean;
}
/** An entry as stored in the document (short names: they are repeated in every update). */
interface Stored {
  k: string;
  h: string;
  d: Uint8Array;
  m: StringMap;
  a: string;
  t: number;
  o: string;
}

/** `federation/<node id>`: kernels of one site may share a kv (Redis Cluster); each keeps its own document. */
let partition = 'federation';
const COMPACT_EVERY = 1000;
const CHUNK = 8 * 1024 * 1024;
const NODE_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const NAMESPACE_PATTERN_RE = /^[A-Za-z0-9._:/-]{1,256}\*?$|^\*$/;
const HASH_RE = /^[0-9a-f]{64}$/;

let initialized = false;
let nodeId = '';
let clientId = 0;
let patterns: string[] = [];
// Created in init (a Y.Doc draws a random client id: not at build time, where there is no randomness).
let doc = undefined as unknown as Y.Doc;
let updateSeq = 0;
let sinceCompaction = 0;
/** Current entry id per `ns\0key`, to tell which keys an update changed. */
let currentIds = new Map<string, string>();
let lastStorageError: string | undefined;
/** Remote updates applied to the document and not yet in kv (see `commit-applied`). */
let staged: Uint8Array[] = [];
let applied = 0;
let recorded = 0;

function fail(tag: ErrorTag, message: string): { tag: ErrorTag; val: string } {
  return { tag, val: message };
}

function kvBatch(ops: Op[]): void {
  try {
    batch(partition, ops);
    lastStorageError = undefined;
  } catch (e) {
    const payload = (e as { payload?: { tag?: string; val?: string } } | null)?.payload;
    lastStorageError = `kv batch: ${payload?.tag ?? String(e)}${payload?.val ? ` (${payload.val})` : ''}`;
    throw fail('unavailable', `federation state not stored: ${lastStorageError}`);
  }
}

function scanAll(prefix: string): Array<{ key: string; value: Uint8Array }> {
  const out: Array<{ key: string; value: Uint8Array }> = [];
  let after: string | undefined;
  for (;;) {
    const page = scan(partition, prefix, after, 1000, false);
    out.push(...page);
    if (page.length < 1000) return out;
    after = page[page.length - 1]!.key;
  }
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

export function clientIdOf(node: string): number {
  const d = sha256(new TextEncoder().encode(node));
  // Yjs client ids are u32; 0 is fine but unlikely.
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

export function matches(pattern: string, namespace: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return namespace.startsWith(pattern.slice(0, -1));
  return pattern === namespace;
}

function replicatesNs(namespace: string): boolean {
  return patterns.some((p) => matches(p, namespace));
}

const entriesOf = (ns: string) => doc.getMap<Stored>(`e:${ns}`);
const valuesOf = (ns: string) => doc.getMap<string>(`v:${ns}`);

function toEntry(id: string, s: Stored, ns: string): Entry {
  return {
    id,
    originNode: s.o,
    change: {
      namespace: ns,
      key: s.k,
      hash: s.h,
      data: s.d,
      metadata: s.m,
      author: s.a,
      timestampMs: BigInt(s.t),
    },
  };
}

/** The root type names of the document, by type (Yjs root types have no parent item). */
function rootNames(): Map<unknown, string> {
  const names = new Map<unknown, string>();
  for (const [name, type] of doc.share) names.set(type, name);
  return names;
}

/**
 * Root types that a remote update created arrive as generic Yjs types; `getMap` turns each into a Y.Map
 * (in place in `doc.share`). Callers that need the types an event named must read rootNames() first.
 */
function typeRoots(): void {
  for (const name of [...doc.share.keys()])
    if (name.startsWith('e:') || name.startsWith('v:')) doc.getMap(name);
}

function rebuildCurrent(): void {
  typeRoots();
  currentIds = new Map();
  for (const [name] of doc.share) {
    if (!name.startsWith('v:')) continue;
    const ns = name.slice(2);
    for (const [key, id] of valuesOf(ns)) currentIds.set(`${ns}\0${key}`, id);
  }
}

/** Load the document from kv (snapshot chunks, then the updates after it, in order). */
function load(): void {
  const fresh = new Y.Doc({ gc: true, guid: 'cam-os-federation' });
  fresh.clientID = clientId;
  const chunks = scanAll('s/');
  if (chunks.length > 0) {
    let size = 0;
    for (const c of chunks) size += c.value.byteLength;
    const snap = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      snap.set(c.value, at);
      at += c.value.byteLength;
    }
    Y.applyUpdate(fresh, snap, 'load');
  }
  const updates = scanAll('u/');
  for (const u of updates) Y.applyUpdate(fresh, new Uint8Array(u.value), 'load');
  doc = fresh;
  staged = [];
  updateSeq = updates.length > 0 ? Number.parseInt(updates[updates.length - 1]!.key.slice(2), 16) : 0;
  sinceCompaction = updates.length;
  rebuildCurrent();
  // A snapshot written before a restart kept our client id's clock; Yjs refuses nothing here, but the
  // clock must continue from it, which setting clientID before applying guarantees.
}

/** Store one update durably (with anything staged before it); compact when enough have accumulated. */
function persist(own: Uint8Array | undefined): void {
  const parts = own ? [...staged, own] : staged;
  if (parts.length === 0) return;
  const update = parts.length === 1 ? parts[0]! : Y.mergeUpdates(parts);
  staged = [];
  updateSeq++;
  sinceCompaction++;
  if (sinceCompaction < COMPACT_EVERY) {
    kvBatch([{ tag: 'put', val: { key: `u/${hex(updateSeq, 16)}`, value: update } }]);
    return;
  }
  const whole = Y.encodeStateAsUpdate(doc);
  const ops: Op[] = [];
  let i = 0;
  for (let at = 0; at < whole.byteLength; at += CHUNK, i++) {
    ops.push({ tag: 'put', val: { key: `s/${hex(i, 4)}`, value: whole.subarray(at, at + CHUNK) } });
  }
  for (const old of scanAll('s/'))
    if (Number.parseInt(old.key.slice(2), 16) >= i) ops.push({ tag: 'delete', val: old.key });
  for (const u of scanAll('u/')) ops.push({ tag: 'delete', val: u.key });
  kvBatch(ops);
  sinceCompaction = 0;
}

function requireInit(): void {
  if (!initialized) throw fail('failed-precondition', 'federation: init was not called');
}

function checkChange(c: Change): void {
  if (typeof c.namespace !== 'string' || c.namespace.length === 0)
    throw fail('invalid-argument', 'change.namespace must not be empty');
  if (typeof c.key !== 'string' || c.key.length === 0)
    throw fail('invalid-argument', 'change.key must not be empty');
  if (!HASH_RE.test(c.hash))
    throw fail('invalid-argument', 'change.hash must be 64 lowercase hex characters');
}

function decodeStateVector(sv: Uint8Array): Map<number, number> {
  try {
    return Y.decodeStateVector(sv);
  } catch (e) {
    throw fail('invalid-argument', `not a Yjs state vector: ${(e as Error).message ?? e}`);
  }
}

export const lifecycle = {
  init(config: StringMap): void {
    if (initialized) throw fail('failed-precondition', 'init was already called');
    let node: string | undefined;
    let pats: string[] = [];
    for (const [key, value] of config) {
      if (key === 'node-id') node = value;
      else if (key === 'namespaces') {
        pats = value
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
      } else throw fail('invalid-argument', `unknown config key '${key}' (known: node-id, namespaces)`);
    }
    if (node === undefined || !NODE_ID_RE.test(node)) {
      throw fail(
        'invalid-argument',
        `config 'node-id' must be 1-128 characters of A-Z a-z 0-9 . _ - (got '${node ?? ''}')`,
      );
    }
    for (const p of pats) {
      if (!NAMESPACE_PATTERN_RE.test(p)) {
        throw fail(
          'invalid-argument',
          `namespace pattern '${p}' is not a namespace, a prefix ending in '*', or '*'`,
        );
      }
    }
    nodeId = node;
    patterns = pats;
    clientId = clientIdOf(node);
    partition = `federation/${node}`;
    load();
    initialized = true;
    log('info', 'federation document loaded', [
      ['node-id', nodeId],
      ['client-id', String(clientId)],
      ['updates', String(sinceCompaction)],
      ['at', String(nowMs())],
    ]);
  },

  health() {
    const checks: StringMap = [
      ['initialized', String(initialized)],
      ['node-id', nodeId],
      ['recorded', String(recorded)],
      ['applied', String(applied)],
      ['kv', lastStorageError ?? 'ok'],
    ];
    return lastStorageError === undefined
      ? { status: 'serving', detail: '', checks }
      : { status: 'degraded', detail: `storage: ${lastStorageError}`, checks };
  },

  exportState(): Uint8Array {
    // The document is durable in kv; the new instance reloads it in init.
    return new TextEncoder().encode(JSON.stringify({ format: 1, recorded, applied }));
  },

  importState(state: Uint8Array): void {
    let parsed: { format?: unknown; recorded?: unknown; applied?: unknown };
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw fail('invalid-argument', 'state is not the JSON this component exports');
    }
    if (parsed?.format !== 1) throw fail('invalid-argument', 'state has an unknown format');
    recorded += typeof parsed.recorded === 'number' ? parsed.recorded : 0;
    applied += typeof parsed.applied === 'number' ? parsed.applied : 0;
  },
};

export const federation = {
  replicates(namespace: string): boolean {
    return initialized && replicatesNs(namespace);
  },

  recordLocalChange(change: Change): Uint8Array | undefined {
    requireInit();
    checkChange(change);
    if (!replicatesNs(change.namespace)) return undefined;
    const ns = change.namespace;
    const id = `${clientId}.${Y.getState(doc.store, clientId)}`;
    let update: Uint8Array | undefined;
    const onUpdate = (u: Uint8Array) => {
      update = u;
    };
    doc.on('update', onUpdate);
    try {
      doc.transact(() => {
        entriesOf(ns).set(id, {
          k: change.key,
          h: change.hash,
          // Copy: an argument's bytes may be a view of call-scoped guest memory.
          d: new Uint8Array(change.data),
          m: change.metadata,
          a: change.author,
          t: Number(change.timestampMs),
          o: nodeId,
        });
        valuesOf(ns).set(change.key, id);
      }, 'local');
    } finally {
      doc.off('update', onUpdate);
    }
    if (!update) throw fail('internal', 'the document produced no update for a local change');
    try {
      persist(update);
    } catch (e) {
      // Not durable: drop the in-memory change too, so memory and kv agree (the caller sees the error).
      load();
      throw e;
    }
    currentIds.set(`${ns}\0${change.key}`, id);
    recorded++;
    return update;
  },

  applyUpdate(update: Uint8Array): { changes: KeyUpdate[]; incomplete: boolean } {
    requireInit();
    let integrated: Uint8Array | undefined;
    let changed: Map<unknown, Set<string | null>> | undefined;
    const onUpdate = (u: Uint8Array) => {
      integrated = integrated ? Y.mergeUpdates([integrated, u]) : u;
    };
    const onAfter = (tr: Y.Transaction) => {
      if (!changed) changed = new Map();
      for (const [type, keys] of tr.changed) {
        const set = changed.get(type) ?? new Set();
        for (const k of keys) set.add(k);
        changed.set(type, set);
      }
    };
    doc.on('update', onUpdate);
    doc.on('afterTransaction', onAfter);
    try {
      // Copy: Yjs keeps views of the update's bytes (binary values), and the argument's memory is call-scoped.
      Y.applyUpdate(doc, new Uint8Array(update), 'remote');
    } catch (e) {
      load();
      throw fail('invalid-argument', `not a Yjs update this document accepts: ${(e as Error).message ?? e}`);
    } finally {
      doc.off('update', onUpdate);
      doc.off('afterTransaction', onAfter);
    }
    const incomplete = doc.store.pendingStructs !== null || doc.store.pendingDs !== null;
    if (!integrated || !changed) return { changes: [], incomplete };
    staged.push(integrated);
    applied++;
    // Which keys changed: new entries (ids are never overwritten) and new current ids.
    const names = rootNames();
    typeRoots();
    const touched = new Map<string, { ns: string; key: string; added: Entry[] }>();
    const touch = (ns: string, key: string) => {
      const k = `${ns}\0${key}`;
      let t = touched.get(k);
      if (!t) {
        t = { ns, key, added: [] };
        touched.set(k, t);
      }
      return t;
    };
    for (const [type, keys] of changed) {
      const name = names.get(type);
      if (!name) continue;
      const ns = name.slice(2);
      if (!replicatesNs(ns)) continue;
      if (name.startsWith('e:')) {
        const entries = entriesOf(ns);
        for (const id of keys) {
          if (id === null) continue;
          const s = entries.get(id);
          if (s) touch(ns, s.k).added.push(toEntry(id, s, ns));
        }
      } else if (name.startsWith('v:')) {
        for (const key of keys) if (key !== null) touch(ns, key);
      }
    }
    const out: KeyUpdate[] = [];
    for (const [k, t] of touched) {
      const id = valuesOf(t.ns).get(t.key);
      if (id === undefined) continue;
      const s = entriesOf(t.ns).get(id);
      if (!s) continue;
      const before = currentIds.get(k);
      currentIds.set(k, id);
      t.added.sort(
        (a, b) =>
          Number(a.change.timestampMs - b.change.timestampMs) ||
          (a.originNode < b.originNode ? -1 : a.originNode > b.originNode ? 1 : 0) ||
          (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
      );
      out.push({
        namespace: t.ns,
        key: t.key,
        added: t.added,
        current: toEntry(id, s, t.ns),
        currentChanged: before !== id,
      });
    }
    return { changes: out, incomplete };
  },

  commitApplied(): void {
    requireInit();
    try {
      persist(undefined);
    } catch (e) {
      load();
      throw e;
    }
  },

  discardApplied(): void {
    requireInit();
    load();
  },

  stateVector(): Uint8Array {
    requireInit();
    return Y.encodeStateVector(doc);
  },

  diff(stateVector: Uint8Array): Uint8Array {
    requireInit();
    decodeStateVector(stateVector);
    return Y.encodeStateAsUpdate(doc, stateVector);
  },

  missing(stateVector: Uint8Array): bigint {
    requireInit();
    const theirs = decodeStateVector(stateVector);
    let ops = 0;
    for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(doc))) {
      ops += Math.max(0, clock - (theirs.get(client) ?? 0));
    }
    // Every write is exactly two map sets (the entry and the current id), one clock tick each.
    return BigInt(Math.ceil(ops / 2));
  },

  current(namespace: string, key: string): Entry | undefined {
    requireInit();
    const id = valuesOf(namespace).get(key);
    if (id === undefined) return undefined;
    const s = entriesOf(namespace).get(id);
    return s ? toEntry(id, s, namespace) : undefined;
  },

  info() {
    requireInit();
    let entries = 0;
    for (const name of doc.share.keys()) if (name.startsWith('e:')) entries += doc.getMap(name).size;
    return {
      nodeId,
      clientId,
      namespaces: patterns,
      entries: BigInt(entries),
      localEntries: BigInt(Math.ceil(Y.getState(doc.store, clientId) / 2)),
      // Not the encoded size: encoding the whole document on every status call would stall replication.
      pendingStructs: doc.store.pendingStructs ? doc.store.pendingStructs.missing.size : 0,
    };
  },
};
