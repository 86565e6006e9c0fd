/**
 * The hash-chained audit log. Each entry carries the SHA-256 of the previous one, so changing, removing or
 * reordering any entry breaks every hash after it. Every `checkpointEvery` entries (and on close) the chain
 * head is signed — with the kernel's audit key (ML-DSA-65 + Ed25519) and, where a TPM is present, with a
 * TPM-resident P-256 key — so rewriting the whole chain is caught too.
 *
 * On disk (`<dir>/audit.jsonl`): one JSON object per line, either an entry (the AuditEntry fields) or
 * `{"checkpoint":{seq,head,ts,signatures}}`. Writes are batched (one append per event-loop turn) so an
 * append on the syscall path costs a hash and an array push, never a disk wait.
 */

import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, truncateSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tpm, TpmKey } from '../tpm/index.js';
import { canonicalJson } from '../trust/canonical.js';
import {
  generatePublisherKeyPair,
  type PublisherKeyPair,
  type PublisherPublicKey,
  readPublicKeyFile,
  readSecretKeyFile,
  writePublicKeyFile,
  writeSecretKeyFile,
} from '../trust/keys.js';
import { loadMlDsa65 } from '../trust/liboqs.js';
import { hybridSignSync, hybridVerifySync } from '../trust/sign.js';
import {
  type AuditEntry,
  type AuditFilter,
  type AuditInput,
  type AuditLog,
  type AuditVerifyResult,
  DECISION_KINDS,
  type DecisionKind,
} from './types.js';

export const GENESIS_HASH = '0'.repeat(64);
export const AUDIT_FILE = 'audit.jsonl';
export const AUDIT_KEY_FILE = 'audit-key.json';
export const AUDIT_PUBLIC_KEY_FILE = 'audit-key.pub.json';
const CHECKPOINT_DOMAIN = 'cam-os/audit-checkpoint@1\0';

export type CheckpointSignature =
  | { alg: 'ml-dsa-65+ed25519'; keyId: string; mlDsa65: string; ed25519: string }
  | { alg: 'tpm-ecdsa-p256-sha256'; publicKey: string; signature: string };

export interface AuditCheckpoint {
  /** Seq of the last entry the checkpoint covers. */
  seq: number;
  /** That entry's hash (the chain head). */
  head: string;
  ts: number;
  signatures: CheckpointSignature[];
}

export interface CheckpointSigner {
  name: string;
  sign(message: Uint8Array): CheckpointSignature | Promise<CheckpointSignature>;
}

export interface AuditLogOptions {
  /** Directory holding audit.jsonl; in memory only when absent. */
  dir?: string;
  /** Entries kept in memory for recent/get (default 20,000; the file keeps everything). */
  capacity?: number;
  /** Sign the chain head every this many entries (default 256). */
  checkpointEvery?: number;
  signers?: CheckpointSigner[];
  now?: () => number;
  /** Told when an existing file had to be repaired or set aside at open. */
  warn?: (message: string) => void;
  /** Told about every appended entry (metrics, dashboards). */
  onAppend?: (e: AuditEntry) => void;
}

/** The SHA-256 (hex) of an entry: canonical JSON (RFC 8785) of every field except `hash`. */
export function hashEntry(e: Omit<AuditEntry, 'hash'>): string {
  const body = canonicalJson({
    seq: e.seq,
    ts: e.ts,
    kind: e.kind,
    actor: e.actor,
    subject: e.subject,
    action: e.action,
    outcome: e.outcome,
    cause: e.cause,
    inputs: e.inputs,
    scores: e.scores,
    traceId: e.traceId,
    prevHash: e.prevHash,
  });
  return createHash('sha256').update(body).digest('hex');
}

export function checkpointMessage(c: Pick<AuditCheckpoint, 'seq' | 'head' | 'ts'>): Uint8Array {
  return new TextEncoder().encode(
    `${CHECKPOINT_DOMAIN}${canonicalJson({ seq: c.seq, head: c.head, ts: c.ts })}`,
  );
}

function checkInput(e: AuditInput): void {
  if (!DECISION_KINDS.includes(e.kind as DecisionKind))
    throw new Error(`audit: unknown decision kind '${e.kind}'`);
  for (const f of ['actor', 'action', 'outcome', 'cause'] as const) {
    if (typeof e[f] !== 'string') throw new Error(`audit: ${f} must be a string`);
  }
  if (e.scores) {
    for (const [k, v] of Object.entries(e.scores)) {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new Error(`audit: score '${k}' must be a finite number`);
    }
  }
}

export class HashChainAuditLog implements AuditLog {
  private readonly ring: AuditEntry[] = [];
  private nextSeq = 0;
  private head = GENESIS_HASH;
  private readonly file: string | undefined;
  private pending: string[] = [];
  private flushScheduled = false;
  private readonly signing = new Set<Promise<void>>();
  private lastCheckpointSeq = -1;
  private closed = false;
  readonly capacity: number;
  readonly checkpointEvery: number;
  readonly signers: CheckpointSigner[];
  readonly checkpoints: AuditCheckpoint[] = [];
  private readonly now: () => number;
  /** Observers of every appended entry. */
  readonly observers: Array<(e: AuditEntry) => void> = [];

  constructor(opts: AuditLogOptions = {}) {
    this.capacity = opts.capacity ?? 20_000;
    this.checkpointEvery = opts.checkpointEvery ?? 256;
    this.signers = [...(opts.signers ?? [])];
    this.now = opts.now ?? Date.now;
    if (opts.onAppend) this.observers.push(opts.onAppend);
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true });
      this.file = join(opts.dir, AUDIT_FILE);
      if (existsSync(this.file)) this.resume(this.file, opts.warn ?? ((m) => process.emitWarning(m)));
    }
  }

  /**
   * Continue the chain of an existing file (its last entries are loaded into memory). A torn last line (the
   * process died mid-write; the entry was never complete) is cut off. Any other damage — a line that is not
   * an entry, a broken link — sets the file aside as `audit.jsonl.damaged-<time>` for `cam-os audit verify`
   * and starts a new chain; both are reported through `warn`.
   */
  private resume(file: string, warn: (m: string) => void): void {
    let text = readFileSync(file, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) {
      const cut = text.lastIndexOf('\n') + 1;
      truncateSync(file, Buffer.byteLength(text.slice(0, cut)));
      warn(`audit: ${file} ended in a torn line (an interrupted write); it was cut off`);
      text = text.slice(0, cut);
    }
    const ring: AuditEntry[] = [];
    let lastCheckpoint = -1;
    let prev = GENESIS_HASH;
    let expect = 0;
    let damage: string | undefined;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let o: ({ checkpoint?: AuditCheckpoint } & AuditEntry) | undefined;
      try {
        o = JSON.parse(line);
      } catch {
        damage = `a line that is not JSON after entry ${expect - 1}`;
        break;
      }
      if (o?.checkpoint) {
        lastCheckpoint = Math.max(lastCheckpoint, o.checkpoint.seq);
        continue;
      }
      if (!o || o.seq !== expect || o.prevHash !== prev) {
        damage = `entry ${expect} is missing or does not link to the one before`;
        break;
      }
      ring.push(o);
      if (ring.length > this.capacity) ring.shift();
      prev = o.hash;
      expect++;
    }
    if (damage) {
      const aside = `${file}.damaged-${new Date(this.now()).toISOString().replace(/[:.]/g, '-')}`;
      renameSync(file, aside);
      warn(`audit: ${file} is damaged (${damage}); it was kept as ${aside} and a new chain was started`);
      return;
    }
    this.ring.push(...ring);
    this.lastCheckpointSeq = lastCheckpoint;
    this.nextSeq = expect;
    this.head = prev;
  }

  get size(): number {
    return this.nextSeq;
  }

  get headHash(): string {
    return this.head;
  }

  append(input: AuditInput): AuditEntry {
    checkInput(input);
    const base: Omit<AuditEntry, 'hash'> = {
      seq: this.nextSeq,
      ts: input.ts ?? this.now(),
      kind: input.kind,
      actor: input.actor,
      ...(input.subject !== undefined ? { subject: input.subject } : {}),
      action: input.action,
      outcome: input.outcome,
      cause: input.cause,
      ...(input.inputs !== undefined ? { inputs: input.inputs } : {}),
      ...(input.scores !== undefined ? { scores: input.scores } : {}),
      ...(input.traceId !== undefined ? { traceId: input.traceId } : {}),
      prevHash: this.head,
    };
    const entry: AuditEntry = { ...base, hash: hashEntry(base) };
    this.nextSeq++;
    this.head = entry.hash;
    this.ring.push(entry);
    if (this.ring.length > this.capacity) this.ring.shift();
    if (this.file) {
      this.pending.push(JSON.stringify(entry));
      this.scheduleFlush();
    }
    if ((entry.seq + 1) % this.checkpointEvery === 0) this.checkpoint();
    for (const o of this.observers) o(entry);
    return entry;
  }

  recent(limit: number, filter: AuditFilter = {}): AuditEntry[] {
    const out: AuditEntry[] = [];
    const max = Math.max(0, Math.floor(limit));
    for (let i = this.ring.length - 1; i >= 0 && out.length < max; i--) {
      const e = this.ring[i]!;
      if (filter.kind && e.kind !== filter.kind) continue;
      if (filter.actor && e.actor !== filter.actor && e.subject !== filter.actor) continue;
      if (filter.since !== undefined && e.ts < filter.since) continue;
      if (filter.until !== undefined && e.ts > filter.until) continue;
      out.push(e);
    }
    return out;
  }

  get(seq: number): AuditEntry | undefined {
    const first = this.ring[0]?.seq ?? 0;
    const e = this.ring[seq - first];
    return e && e.seq === seq ? e : undefined;
  }

  /** Every entry still in memory, oldest first. */
  entries(): readonly AuditEntry[] {
    return this.ring;
  }

  /** Check the in-memory chain (the file is checked by verifyAuditFile / `cam-os audit verify`). */
  verify(): AuditVerifyResult {
    let prev = this.ring[0]?.prevHash ?? GENESIS_HASH;
    for (const e of this.ring) {
      if (e.prevHash !== prev) {
        return {
          ok: false,
          entries: this.ring.length,
          firstBad: e.seq,
          reason: `entry ${e.seq}: prevHash does not match the hash of entry ${e.seq - 1}`,
        };
      }
      const { hash, ...rest } = e;
      if (hashEntry(rest) !== hash) {
        return {
          ok: false,
          entries: this.ring.length,
          firstBad: e.seq,
          reason: `entry ${e.seq}: its hash does not match its contents (modified)`,
        };
      }
      prev = hash;
    }
    for (const c of this.checkpoints) {
      const e = this.get(c.seq);
      if (e && e.hash !== c.head) {
        return {
          ok: false,
          entries: this.ring.length,
          firstBad: c.seq,
          reason: `checkpoint at ${c.seq} names a different chain head`,
        };
      }
    }
    return { ok: true, entries: this.ring.length, checkpoints: this.checkpoints.length };
  }

  addSigner(s: CheckpointSigner): void {
    this.signers.push(s);
  }

  /** Sign the current head (no-op when nothing was appended since the last checkpoint). */
  checkpoint(): Promise<void> {
    const seq = this.nextSeq - 1;
    // Without a signer a checkpoint would prove nothing: the chain alone stands.
    if (seq < 0 || seq <= this.lastCheckpointSeq || this.signers.length === 0) return Promise.resolve();
    this.lastCheckpointSeq = seq;
    const c = { seq, head: this.head, ts: this.now() };
    const message = checkpointMessage(c);
    const p = Promise.all(this.signers.map(async (s) => s.sign(message)))
      .then((signatures) => {
        const cp: AuditCheckpoint = { ...c, signatures };
        this.checkpoints.push(cp);
        if (this.checkpoints.length > 1024) this.checkpoints.shift();
        if (this.file) {
          this.pending.push(JSON.stringify({ checkpoint: cp }));
          this.scheduleFlush();
        }
      })
      .catch((e: unknown) => {
        // A failed signature must not lose the checkpoint: record it unsigned, with why, so verify reports it.
        process.emitWarning(`audit checkpoint at ${seq} could not be signed: ${(e as Error).message}`);
        const cp: AuditCheckpoint = { ...c, signatures: [] };
        this.checkpoints.push(cp);
        if (this.file) {
          this.pending.push(JSON.stringify({ checkpoint: cp }));
          this.scheduleFlush();
        }
      })
      .finally(() => this.signing.delete(p));
    this.signing.add(p);
    return p;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Write pending lines now. */
  flush(): void {
    this.flushScheduled = false;
    if (!this.file || this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    appendFileSync(this.file, text, { mode: 0o600 });
  }

  /**
   * Final checkpoint, wait for signatures, write everything. An entry appended later (a decision racing the
   * shutdown) is still chained and written; it is signed by the next checkpoint, after a restart.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.checkpoint();
    await Promise.all([...this.signing]);
    this.closed = true;
    this.flush();
  }
}

/** The kernel's audit signing key: created in `dir` on first use (secret 0600, public beside it). */
export async function auditKeySigner(
  dir: string,
): Promise<{ signer: CheckpointSigner; publicKey: PublisherPublicKey }> {
  await loadMlDsa65();
  mkdirSync(dir, { recursive: true });
  const secretPath = join(dir, AUDIT_KEY_FILE);
  let pair: PublisherKeyPair;
  if (existsSync(secretPath)) {
    pair = await readSecretKeyFile(secretPath);
  } else {
    pair = await generatePublisherKeyPair();
    await writeSecretKeyFile(secretPath, pair);
    await chmod(secretPath, 0o600);
    await writePublicKeyFile(join(dir, AUDIT_PUBLIC_KEY_FILE), pair);
  }
  return {
    publicKey: { keyId: pair.keyId, mlDsa65: pair.mlDsa65.publicKey, ed25519: pair.ed25519.publicKey },
    signer: {
      name: `audit key ${pair.keyId}`,
      sign(message) {
        const s = hybridSignSync(message, pair);
        return {
          alg: 'ml-dsa-65+ed25519',
          keyId: pair.keyId,
          mlDsa65: Buffer.from(s.mlDsa65).toString('base64'),
          ed25519: Buffer.from(s.ed25519).toString('base64'),
        };
      },
    },
  };
}

/** A checkpoint signer backed by a TPM-resident P-256 key (the kernel's TmpSign key). */
export function tpmSigner(tpm: Tpm, key: () => Promise<TpmKey>): CheckpointSigner {
  return {
    name: 'tpm',
    async sign(message) {
      const k = await key();
      const digest = createHash('sha256').update(message).digest();
      const der = await tpm.sign(k.handle, digest);
      return {
        alg: 'tpm-ecdsa-p256-sha256',
        publicKey: k.spkiDer.toString('base64'),
        signature: der.toString('base64'),
      };
    },
  };
}

export interface FileVerifyResult extends AuditVerifyResult {
  checkpoints: number;
  /** Entries after the last signed checkpoint (chained, but not yet signed). */
  unsignedTail: number;
  tpmSigned: number;
}

/**
 * Verify an audit file: every entry's hash, the chain links, every checkpoint's head and signatures
 * (the audit key's public half is read from `<dir>/audit-key.pub.json` unless given).
 */
export async function verifyAuditFile(
  path: string,
  opts: { publicKey?: PublisherPublicKey } = {},
): Promise<FileVerifyResult> {
  await loadMlDsa65();
  const dir = join(path, '..');
  const pubPath = join(dir, AUDIT_PUBLIC_KEY_FILE);
  const publicKey = opts.publicKey ?? (existsSync(pubPath) ? await readPublicKeyFile(pubPath) : undefined);
  const text = readFileSync(path, 'utf8');
  const hashes = new Map<number, string>();
  const cps: Array<{ cp: AuditCheckpoint; line: number }> = [];
  let prev = GENESIS_HASH;
  let expectSeq = 0;
  let entries = 0;
  const fail = (firstBad: number, reason: string): FileVerifyResult => ({
    ok: false,
    entries,
    firstBad,
    reason,
    checkpoints: cps.length,
    unsignedTail: 0,
    tpmSigned: 0,
  });
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    let o: (AuditEntry & { checkpoint?: AuditCheckpoint }) | undefined;
    try {
      o = JSON.parse(line);
    } catch {
      return fail(expectSeq, `line ${i + 1} is not JSON`);
    }
    if (!o || typeof o !== 'object') return fail(expectSeq, `line ${i + 1} is not an object`);
    if (o.checkpoint) {
      cps.push({ cp: o.checkpoint, line: i + 1 });
      continue;
    }
    if (o.seq !== expectSeq) {
      return fail(
        expectSeq,
        `line ${i + 1}: expected entry ${expectSeq}, found ${String(o.seq)} (an entry was removed or reordered)`,
      );
    }
    if (o.prevHash !== prev) {
      return fail(
        o.seq,
        `entry ${o.seq}: prevHash does not match the hash of entry ${o.seq - 1} (chain broken)`,
      );
    }
    const { hash, ...rest } = o;
    if (typeof hash !== 'string' || hashEntry(rest) !== hash) {
      return fail(o.seq, `entry ${o.seq}: its hash does not match its contents (the entry was modified)`);
    }
    hashes.set(o.seq, hash);
    prev = hash;
    expectSeq++;
    entries++;
  }
  let lastSigned = -1;
  let tpmSigned = 0;
  for (const { cp, line } of cps) {
    const h = hashes.get(cp.seq);
    if (h === undefined)
      return fail(
        cp.seq,
        `checkpoint on line ${line} covers entry ${cp.seq}, which is not in the log (truncated)`,
      );
    if (h !== cp.head)
      return fail(
        cp.seq,
        `checkpoint on line ${line}: entry ${cp.seq} has hash ${h.slice(0, 16)}…, the signed head is ${String(cp.head).slice(0, 16)}… (the chain was rewritten)`,
      );
    if (!Array.isArray(cp.signatures) || cp.signatures.length === 0) {
      return fail(cp.seq, `checkpoint on line ${line} carries no signature`);
    }
    const msg = checkpointMessage(cp);
    for (const s of cp.signatures) {
      if (s.alg === 'ml-dsa-65+ed25519') {
        if (!publicKey)
          return fail(
            cp.seq,
            `checkpoint on line ${line} is signed by audit key ${s.keyId}, but no public key was found at ${pubPath}`,
          );
        if (publicKey.keyId !== s.keyId)
          return fail(
            cp.seq,
            `checkpoint on line ${line} is signed by key ${s.keyId}, not the audit key ${publicKey.keyId}`,
          );
        const r = hybridVerifySync(
          msg,
          { mlDsa65: Buffer.from(s.mlDsa65, 'base64'), ed25519: Buffer.from(s.ed25519, 'base64') },
          publicKey,
        );
        if (!r.ok) return fail(cp.seq, `checkpoint on line ${line}: audit-key signature does not verify`);
      } else if (s.alg === 'tpm-ecdsa-p256-sha256') {
        const key = createPublicKey({ key: Buffer.from(s.publicKey, 'base64'), format: 'der', type: 'spki' });
        if (!cryptoVerify('sha256', msg, key, Buffer.from(s.signature, 'base64'))) {
          return fail(cp.seq, `checkpoint on line ${line}: TPM signature does not verify`);
        }
        tpmSigned++;
      } else {
        return fail(cp.seq, `checkpoint on line ${line} has an unknown signature algorithm`);
      }
    }
    lastSigned = Math.max(lastSigned, cp.seq);
  }
  return { ok: true, entries, checkpoints: cps.length, unsignedTail: expectSeq - 1 - lastSigned, tpmSigned };
}
