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
 * - `e:<ns>` (Y.Map): entry id -> the write as one binary value: u32 BE n, then n bytes of UTF-8 JSON
 *   `[key, sha-256 hex, metadata pairs, author, timestamp ms, origin node id]`, then the data. Every write
 *   ever made: the key's merged history. Entry ids are `<client id>.<clock>` of the writing client, unique
 *   without coordination, and are never overwritten. One binary value per write, not a map of fields: Yjs
 *   encodes and decodes it as one piece, where a JS object costs a call per field in the interpreter
 *   (measured: a 1,000-write diff took 0.16 s with objects, 0.06-0.1 s like this). Entries written as
 *   objects `{ k, h, d, m, a, t, o }` by earlier versions of this component are still read.
 * - `v:<ns>` (Y.Map): key -> entry id of the current value. Concurrent sets of one key resolve by Yjs's
 *   map rule (the causally later set wins; between concurrent sets, the higher client id), identical on
 *   every node. The client id is fixed per node: the first 4 bytes of sha-256(node id), big-endian.
 *
 * Reusing a client id across restarts is safe because every local change is in kv before the update
 * leaves the component: after a restart the document is reloaded first, so the clock continues.
 *
 * Persistence (kv partition `federation/<node id>`), loaded in this order:
 * - `s/<4 hex>`: chunks of a whole-document snapshot (written by earlier versions of this component; read only);
 * - `g/<16 hex>`: segments, each everything the document integrated since the previous segment
 *   (`encodeStateAsUpdate` against the state vector of the previous one);
 * - `u/<16 hex>`: the log since the last segment, one update per local change or applied peer update, as
 *   the peer sent it (re-encoding what Yjs integrated would cost as much as integrating it again).
 * A value larger than CHUNK is stored in pieces `<key>/<4 hex>`. Compaction turns the log into a segment and
 * drops it, in one batch: its cost grows with the log, not with the document (a whole-document snapshot
 * took 0.2-0.5 s at 1,000-3,000 writes and kept growing, stalling every call behind it). It runs in
 * `commit-applied`, which the kernel calls off the write path, and in `record-local-change` only when the
 * log has grown to twice its limit.
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
  currentId: string;
  /** Only when the current value is not in `added`: each write's data crosses the boundary once. */
  current: Entry | undefined;
  currentChanged: boolean;
}
/** An entry as stored in the document (objects: earlier versions; now encoded, see encodeStored). */
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
/** The log becomes a segment at this many updates or bytes (in `commit-applied`; twice that anywhere). */
const COMPACT_UPDATES = 1000;
const COMPACT_BYTES = 8 * 1024 * 1024;
/** kv values are at most 16 MiB: larger updates and segments are stored in pieces of this size. */
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
let segmentSeq = 0;
/** The state vector the last segment (or the snapshot) covers: the next segment holds what is beyond it. */
let segmentSv: Uint8Array = new Uint8Array([0]);
/** The kv keys of the log since the last segment, and its size in bytes. */
let logKeys: string[] = [];
let logBytes = 0;
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

const entriesOf = (ns: string) => doc.getMap<Uint8Array | Stored>(`e:${ns}`);
const valuesOf = (ns: string) => doc.getMap<string>(`v:${ns}`);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function encodeStored(s: Stored): Uint8Array {
  // JSON and UTF-8 run natively in the engine; building the bytes field by field would be interpreted.
  const head = utf8.encode(JSON.stringify([s.k, s.h, s.m, s.a, s.t, s.o]));
  const out = new Uint8Array(4 + head.byteLength + s.d.byteLength);
  new DataView(out.buffer).setUint32(0, head.byteLength);
  out.set(head, 4);
  out.set(s.d, 4 + head.byteLength);
  return out;
}

function decodeStored(v: Uint8Array | Stored): Stored {
  if (!(v instanceof Uint8Array)) return v;
  const n = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0);
  const [k, h, m, a, t, o] = JSON.parse(fromUtf8.decode(v.subarray(4, 4 + n))) as [
    string,
    string,
    StringMap,
    string,
    number,
    string,
  ];
  return { k, h, m, a, t, o, d: v.subarray(4 + n) };
}

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

/** Stored values of `prefix`, pieces joined: one per sequence number, in order. */
function scanValues(prefix: string): Array<{ keys: string[]; value: Uint8Array }> {
  const out: Array<{ keys: string[]; value: Uint8Array[] }> = [];
  const head = prefix.length + 16;
  for (const { key, value } of scanAll(prefix)) {
    const last = out[out.length - 1];
    if (last && last.keys[0]!.slice(0, head) === key.slice(0, head)) {
      last.keys.push(key);
      last.value.push(value);
    } else out.push({ keys: [key], value: [value] });
  }
  return out.map(({ keys, value }) => ({ keys, value: join(value) }));
}

function join(parts: Uint8Array[]): Uint8Array {
  // Always a copy: Yjs keeps views of an update's bytes (binary values) and kv results are call-scoped.
  let size = 0;
  for (const p of parts) size += p.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Puts of one stored value: `key`, or `key/<4 hex>` pieces when it exceeds CHUNK. */
function putOps(key: string, value: Uint8Array): Op[] {
  if (value.byteLength <= CHUNK) return [{ tag: 'put', val: { key, value } }];
  const ops: Op[] = [];
  for (let at = 0, i = 0; at < value.byteLength; at += CHUNK, i++)
    ops.push({ tag: 'put', val: { key: `${key}/${hex(i, 4)}`, value: value.subarray(at, at + CHUNK) } });
  return ops;
}

/** Load the document from kv (snapshot, segments, then the log, in order). */
function load(): void {
  const fresh = new Y.Doc({ gc: true, guid: 'cam-os-federation' });
  fresh.clientID = clientId;
  const chunks = scanAll('s/');
  if (chunks.length > 0) Y.applyUpdate(fresh, join(chunks.map((c) => c.value)), 'load');
  const segments = scanValues('g/');
  for (const g of segments) Y.applyUpdate(fresh, g.value, 'load');
  segmentSeq = segments.length > 0 ? seqOf(segments[segments.length - 1]!.keys[0]!) : 0;
  segmentSv = Y.encodeStateVector(fresh);
  const updates = scanValues('u/');
  logKeys = [];
  logBytes = 0;
  for (const u of updates) {
    Y.applyUpdate(fresh, u.value, 'load');
    logKeys.push(...u.keys);
    logBytes += u.value.byteLength;
  }
  doc = fresh;
  staged = [];
  updateSeq = updates.length > 0 ? seqOf(updates[updates.length - 1]!.keys[0]!) : 0;
  rebuildCurrent();
  // A document persisted before a restart holds our client id's clock; setting clientID before applying
  // makes the next local change continue from it.
}

const seqOf = (key: string) => Number.parseInt(key.slice(2, 18), 16);

/**
 * Run a local change, its update and a peer's apply once on throwaway documents, and one kv batch (the
 * delete of a key that is never written). The engine compiles a function when it first runs: a fresh
 * instance's first record-local-change or apply-update took 10-20 ms instead of 1-2 ms, and its first
 * commit-applied tens of ms, so the first writes after a kernel started paid for it.
 */
function warmUp(): void {
  try {
    batch(partition, [{ tag: 'delete', val: 'warm-up' }]);
  } catch {
    // Only a warm-up: a kv failure shows on the first real write.
  }
  const from = new Y.Doc();
  const to = new Y.Doc();
  let update: Uint8Array | undefined;
  from.on('update', (u: Uint8Array) => {
    update = u;
  });
  from.transact(() => {
    const stored = { k: 'k', h: '', d: new Uint8Array(1), m: [['k', 'v']] as StringMap, a: '', t: 0, o: '' };
    from.getMap<Uint8Array>('e:warm-up').set('0.0', encodeStored(stored));
    from.getMap<string>('v:warm-up').set('k', '0.0');
  });
  let changed = 0;
  to.on('afterTransaction', (tr: Y.Transaction) => {
    changed += tr.changed.size;
  });
  if (update) Y.applyUpdate(to, new Uint8Array(update), 'remote');
  const v = to.getMap<Uint8Array>('e:warm-up').get('0.0');
  if (changed === 0 || v === undefined || decodeStored(v).k !== 'k')
    log('warn', 'federation warm-up did not round-trip a change', []);
  Y.encodeStateAsUpdate(from, Y.encodeStateVector(to));
  from.destroy();
  to.destroy();
}

/**
 * Store the staged peer updates and `own` (a local change) durably, in one batch: each its own log entry,
 * as received (no merge: merging in the interpreter costs about as much as applying). `compact`: also turn
 * the log into a segment if it reached its limit; otherwise only once it reached twice the limit.
 */
function persist(own: Uint8Array | undefined, compact: boolean): void {
  const parts = own ? [...staged, own] : staged;
  let partBytes = 0;
  for (const u of parts) partBytes += u.byteLength;
  const over = (times: number) =>
    logKeys.length + parts.length >= times * COMPACT_UPDATES || logBytes + partBytes >= times * COMPACT_BYTES;
  // A segment holds only what Yjs integrated: while something waits for earlier updates, keep the log
  // longer (past twice the limit it goes anyway; peers send what waited again).
  const waiting = doc.store.pendingStructs !== null || doc.store.pendingDs !== null;
  const due = over(compact && !waiting ? 1 : 2);
  if (parts.length === 0 && !(due && logKeys.length > 0)) return;
  if (due) {
    // Everything the document integrated since the last segment: the log, the staged updates and `own`.
    const segment = Y.encodeStateAsUpdate(doc, segmentSv);
    const ops = putOps(`g/${hex(segmentSeq + 1, 16)}`, segment);
    for (const k of logKeys) ops.push({ tag: 'delete', val: k });
    kvBatch(ops);
    segmentSeq++;
    segmentSv = Y.encodeStateVector(doc);
    staged = [];
    logKeys = [];
    logBytes = 0;
    return;
  }
  const ops: Op[] = [];
  let seq = updateSeq;
  for (const u of parts) ops.push(...putOps(`u/${hex(++seq, 16)}`, u));
  kvBatch(ops);
  updateSeq = seq;
  staged = [];
  for (const op of ops) if (op.tag === 'put') logKeys.push(op.val.key);
  logBytes += partBytes;
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
    warmUp();
    initialized = true;
    log('info', 'federation document loaded', [
      ['node-id', nodeId],
      ['client-id', String(clientId)],
      ['segments', String(segmentSeq)],
      ['log', String(logKeys.length)],
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
        entriesOf(ns).set(
          id,
          encodeStored({
            k: change.key,
            h: change.hash,
            d: change.data,
            m: change.metadata,
            a: change.author,
            t: Number(change.timestampMs),
            o: nodeId,
          }),
        );
        valuesOf(ns).set(change.key, id);
      }, 'local');
    } finally {
      doc.off('update', onUpdate);
    }
    if (!update) throw fail('internal', 'the document produced no update for a local change');
    try {
      persist(update, false);
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
    let changed: Map<unknown, Set<string | null>> | undefined;
    // Copy: Yjs keeps views of the update's bytes (binary values), and the argument's memory is call-scoped.
    const bytes = new Uint8Array(update);
    const onAfter = (tr: Y.Transaction) => {
      if (!changed) changed = new Map();
      for (const [type, keys] of tr.changed) {
        const set = changed.get(type) ?? new Set();
        for (const k of keys) set.add(k);
        changed.set(type, set);
      }
    };
    // No 'update' listener: with one, Yjs encodes everything it integrated a second time (measured: half of
    // the cost of applying a 1,000-write update). The update is staged as received instead.
    doc.on('afterTransaction', onAfter);
    try {
      Y.applyUpdate(doc, bytes, 'remote');
    } catch (e) {
      load();
      throw fail('invalid-argument', `not a Yjs update this document accepts: ${(e as Error).message ?? e}`);
    } finally {
      doc.off('afterTransaction', onAfter);
    }
    const incomplete = doc.store.pendingStructs !== null || doc.store.pendingDs !== null;
    // Staged as received, so also when parts of it wait for earlier updates: when those arrive, Yjs
    // integrates the waiting parts from here, and only this copy holds them.
    if (changed || incomplete) staged.push(bytes);
    if (!changed) return { changes: [], incomplete };
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
          const v = entries.get(id);
          if (v === undefined) continue;
          const s = decodeStored(v);
          touch(ns, s.k).added.push(toEntry(id, s, ns));
        }
      } else if (name.startsWith('v:')) {
        for (const key of keys) if (key !== null) touch(ns, key);
      }
    }
    const out: KeyUpdate[] = [];
    for (const [k, t] of touched) {
      const id = valuesOf(t.ns).get(t.key);
      if (id === undefined) continue;
      const v = entriesOf(t.ns).get(id);
      if (v === undefined) continue;
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
        currentId: id,
        current: t.added.some((e) => e.id === id) ? undefined : toEntry(id, decodeStored(v), t.ns),
        currentChanged: before !== id,
      });
    }
    return { changes: out, incomplete };
  },

  commitApplied(): void {
    requireInit();
    try {
      persist(undefined, true);
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
    const v = entriesOf(namespace).get(id);
    return v === undefined ? undefined : toEntry(id, decodeStored(v), namespace);
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
