/**
 * One kernel's membership in a federation: the peer listener (mTLS gRPC), the links to other kernels,
 * membership gossip, failure detection, reconnect with backoff, anti-entropy, and the two data paths:
 *
 * - local write in a federated namespace -> memory (by the ContextWrite syscall) and, side by side, the
 *   federation component's `record-local-change` (durable) -> the Yjs update goes to every live peer
 *   (`storeAndRecord` in index.ts);
 * - peer update -> component `apply-update` (staged) -> what it reports is written into memory ->
 *   `commit-applied` (durable, lazily).
 *
 * A remote apply runs alone (`exclusive`), and local writes of one key run one after another
 * (`localWrite`), so memory's latest version of a key is always the document's current value. A peer's
 * update becomes durable in the document only after its memory writes succeeded (`commit-applied`): a
 * crash in between loses the staged part of the document, which peers send again at the next anti-entropy
 * round, so no replicated write is lost (at worst one is stored twice). Because of that, the commit is lazy
 * (COMMIT_AFTER_MS after an apply or a local write, or with the next local write, in the component): one
 * kv write per burst of peer updates instead of one per update, and the component compacts its log there,
 * off the write path.
 *
 * What replicates, when and to whom is decided by the federation component (the document and its sync);
 * this file moves bytes and keeps links alive.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as Y from 'yjs';
import { KernelError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import {
  acceptChannel,
  type ChannelAccept,
  type ChannelFinish,
  type ChannelHello,
  type ChannelInitiator,
  type ChannelResponder,
  initiateChannel,
  type SecureChannel,
} from '../trust/channel.js';
import { type PublisherKeyPair, readPublicKeyFile, readSecretKeyFile } from '../trust/keys.js';
import type { TrustKeyLookup } from '../trust/trust-store.js';
import { type FederationConfig, namespaceMatches } from './config.js';
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  MAX_FRAME_BYTES,
  type Member,
  PEER_SERVICE,
  PeerClient,
} from './wire.js';

export const FEDERATION_IFACE = 'cam:kernel/federation';
const COMMIT_AFTER_MS = 1000;
/**
 * Peer updates at least this large (anti-entropy diffs, in practice) are first cut down to what this node
 * lacks, on the host (Yjs's diffUpdate against the component's state vector): after a partition every peer
 * answers a hello with the same diff, and applying a 1,000-write update that holds nothing new still costs
 * the component ~0.1 s. After such an update the node also tells its peers its new state vector at once
 * (their view of its lag, and their next diff, need not wait for a heartbeat).
 */
const LARGE_UPDATE_BYTES = 64 * 1024;
/** write-many calls carry at most this many writes / data bytes (the call channel carries 16 MiB). */
const MEMORY_CHUNK_WRITES = 1_000;
const MEMORY_CHUNK_BYTES = 4 * 1024 * 1024;
const MEMORY_IFACE = 'cam:kernel/memory';
/**
 * While the state-vector mirror is current, heartbeats send it without asking the component; every this many
 * heartbeats the kernel reads the state vector from the component anyway, so the mirror is checked against it.
 */
const SV_READ_EVERY_TICKS = 20;
/** Metadata the kernel adds to a replicated write in memory (the original metadata is kept). */
export const ORIGIN_META = 'federation.origin';
export const ENTRY_META = 'federation.entry';

interface Change {
  namespace: string;
  key: string;
  hash: string;
  data: Uint8Array;
  metadata: Array<[string, string]>;
  author: string;
  timestampMs: bigint;
}
interface Entry {
  id: string;
  originNode: string;
  change: Change;
}
export interface KeyUpdate {
  namespace: string;
  key: string;
  added: Entry[];
  currentId: string;
  /** The current value when it is not one of `added` (the component sends each write once). */
  current?: Entry;
  currentChanged: boolean;
}
interface ApplyResult {
  changes: KeyUpdate[];
  incomplete: boolean;
}
/** One memory write planned from a peer's update. */
interface PlannedWrite {
  ns: string;
  key: string;
  data: Uint8Array;
  metadata: Array<[string, string]>;
  author: string;
}

type Stream = grpc.ClientDuplexStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

/** One peer link (either direction). Exported for tests. */
export class Link {
  peer: string | undefined;
  readonly openedAt = Date.now();
  lastHeard = this.openedAt;
  closed = false;
  /**
   * Frames sent before this node's hello went out on the link, held back: the peer closes a link whose first
   * frame is not a hello (an acceptor's hello waits for the component's state vector, and meanwhile a
   * heartbeat, a local write or an anti-entropy diff may want the link).
   */
  private held: Frame[] | undefined = [];
  /** With `federation.identity`: the handshake in progress, then the open channel and the node it proved. */
  handshake: ChannelInitiator | ChannelResponder | undefined;
  channel: SecureChannel | undefined;
  proven: string | undefined;
  constructor(
    readonly stream: Stream,
    readonly direction: 'in' | 'out',
    readonly address: string,
    readonly client?: grpc.Client,
  ) {}
  /** Whether this node's hello went out: frames sent now are not held back. */
  get ready(): boolean {
    return this.held === undefined;
  }
  send(f: Frame): void {
    if (this.closed) return;
    if (this.held && f.t !== 'hello') {
      this.held.push(f);
      return;
    }
    this.write(f);
    if (f.t === 'hello' && this.held) {
      const held = this.held;
      this.held = undefined;
      for (const h of held) this.write(h);
    }
  }
  private write(f: Frame): void {
    const bytes = encodeFrame(f);
    this.stream.write(this.channel ? encodeFrame({ t: 'sealed', payload: this.channel.seal(bytes) }) : bytes);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.held) this.held.length = 0;
    if (this.direction === 'out') {
      (this.stream as grpc.ClientDuplexStream<Buffer, Buffer>).cancel();
      this.client?.close();
    } else {
      this.stream.end();
    }
  }
}

export type PeerState = 'alive' | 'down';

interface MemberState {
  node: string;
  address: string;
  state: PeerState;
  lastHeardMs?: number;
  lastSyncMs?: number;
  /** Writes this node has that the peer had not seen, at the peer's last state vector. */
  lag?: number;
  reconnects: number;
  lastError?: string;
  lastDiffSent?: { sv: string; at: number };
  /** Since when the peer's state vectors have lacked writes of ours (undefined: in sync). */
  missingSince?: number;
}

interface DialState {
  failures: number;
  timer?: NodeJS.Timeout;
  link?: Link;
}

export interface PeerStatus {
  node: string;
  address: string;
  state: PeerState;
  links: number;
  lastHeardMs: number | null;
  lastSyncMs: number | null;
  lagWrites: number | null;
  reconnects: number;
  lastError: string | null;
  /** How the live links to this peer are protected: 'mtls', or 'mtls+hybrid' (the PQ secure channel too). */
  protection: 'mtls' | 'mtls+hybrid' | null;
}

export interface FederationStatus {
  nodeId: string;
  listen: string;
  advertise: string;
  namespaces: string[];
  peers: PeerStatus[];
  document: { entries: number; localEntries: number; pendingStructs: number; clientId: number };
  localWrites: number;
  remoteUpdates: number;
  memoryWrites: number;
  /** Peer updates received and not yet applied to the document and memory. */
  pendingApplies: number;
}

export interface FederationNodeOptions {
  config: FederationConfig;
  kernel: Kernel;
  /** Warnings and events, one line each. */
  log?: (line: string) => void;
}

export class FederationNode {
  readonly config: FederationConfig;
  private readonly kernel: Kernel;
  private readonly log: (line: string) => void;
  private server: grpc.Server | undefined;
  private readonly links = new Set<Link>();
  private readonly members = new Map<string, MemberState>();
  private readonly dials = new Map<string, DialState>();
  /** Seed addresses not yet identified by a hello. */
  private readonly seeds = new Set<string>();
  private tick: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private creds: { client: grpc.ChannelCredentials; server: grpc.ServerCredentials };
  private counters = { localWrites: 0, remoteUpdates: 0, memoryWrites: 0 };
  /** Peer updates received and not yet fully applied (document and memory). */
  private pendingApplies = 0;
  private svInFlight = false;
  private exclusiveQueued = 0;
  private localActive = 0;
  private readonly exclusiveDone: Array<() => void> = [];
  private readonly localDrained: Array<() => void> = [];
  private readonly keyChains = new Map<string, Promise<unknown>>();
  private commitTimer: NodeJS.Timeout | undefined;
  /**
   * Bumped after every call that may change the document (record, apply, discard): a diff computed at
   * generation g is still what a peer with the same state vector lacks while the generation is g.
   */
  private docGen = 0;
  /**
   * The last anti-entropy diff, shared by every request for the same state vector at the same generation,
   * also while it is being computed: after a partition the peers on the other side share one state vector,
   * and each peer's hello arrives on both links between the two nodes.
   */
  private lastDiff: { gen: number; sv: string; diff: Promise<Uint8Array> } | undefined;
  /** The component's state vector as of generation `gen` (a hello need not wait behind a busy component). */
  private lastSv: { gen: number; sv: Uint8Array } | undefined;
  /**
   * The component's state vector at generation `gen`, read from it and carried forward with what each local
   * change and each fully integrated peer update added (dropped when that is not known: an update that left
   * parts waiting, a failed call, a discard). It answers how much a peer's heartbeat state vector lacks,
   * and gives the state vector of this node's heartbeats and hellos, without a component call: those were
   * every node's component calls per heartbeat, and a peer update arriving meanwhile waited behind them.
   */
  private svMirror: { gen: number; sv: Map<number, number> } | undefined;
  /** Heartbeats since the state vector was last read from the component. */
  private ticksSinceSvRead = 0;
  /** With `federation.identity`: this node's key pair and the key id each peer node must prove. */
  private identity:
    | { pair: PublisherKeyPair; keyOf: Map<string, string>; lookup: TrustKeyLookup }
    | undefined;
  boundPort = 0;

  constructor(opts: FederationNodeOptions) {
    this.config = opts.config;
    this.kernel = opts.kernel;
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    const t = this.config.tls;
    const ca = readFileSync(t.ca);
    this.creds = {
      server: grpc.ServerCredentials.createSsl(
        ca,
        [{ cert_chain: readFileSync(t.cert), private_key: readFileSync(t.key) }],
        true,
      ),
      client: grpc.credentials.createSsl(ca, readFileSync(t.clientKey), readFileSync(t.clientCert)),
    };
    for (const s of this.config.seeds) this.seeds.add(s);
  }

  /** A warning line in the node's log. */
  warn(line: string): void {
    this.log(line);
  }

  replicates(namespace: string): boolean {
    return namespaceMatches(this.config.namespaces, namespace);
  }

  /**
   * Run `fn` with no other replication step in between: no local write and no other remote apply. Queued
   * exclusive steps hold back new local writes (no starvation under a stream of writes).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.exclusiveQueued++;
    const step = async () => {
      while (this.localActive > 0) await new Promise<void>((r) => this.localDrained.push(r));
      try {
        return await fn();
      } finally {
        if (--this.exclusiveQueued === 0) for (const r of this.exclusiveDone.splice(0)) r();
      }
    };
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Run `fn` when no remote apply is in progress, without holding back local writes (the commit of staged
   * updates: it must not make an update durable while its memory writes are still running).
   */
  private betweenApplies<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * A local write of one key: writes of different keys run side by side (the memory write of one overlaps
   * the document step of another); writes of the same key one after another; none during `exclusive`.
   */
  async localWrite<T>(ns: string, key: string, fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveQueued > 0) await new Promise<void>((r) => this.exclusiveDone.push(r));
    this.localActive++;
    const k = `${ns}\0${key}`;
    const prev = this.keyChains.get(k) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.keyChains.set(k, tail);
    try {
      return await run;
    } finally {
      if (this.keyChains.get(k) === tail) this.keyChains.delete(k);
      if (--this.localActive === 0) for (const r of this.localDrained.splice(0)) r();
    }
  }

  private component(): string {
    const name = this.kernel.providerOf(FEDERATION_IFACE);
    if (!name)
      throw new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', 'the federation component is not loaded');
    return name;
  }

  private fed<T>(fn: string, ...args: unknown[]): Promise<T> {
    return this.kernel.call(this.component(), FEDERATION_IFACE, fn, args) as Promise<T>;
  }

  /**
   * Store planned writes in memory with `write-many`: one call and one kv batch per namespace run instead of
   * one fsynced batch per write (a 1,000-write peer update took 3.5-8 s one by one). List order keeps the
   * order of the writes of each key.
   */
  private async memoryWrites(writes: PlannedWrite[]): Promise<void> {
    const mem = this.kernel.providerOf(MEMORY_IFACE);
    if (!mem) throw new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', 'the memory component is not loaded');
    for (let i = 0; i < writes.length; ) {
      let bytes = 0;
      let j = i;
      while (j < writes.length && j - i < MEMORY_CHUNK_WRITES && bytes < MEMORY_CHUNK_BYTES) {
        bytes += writes[j]!.data.byteLength;
        j++;
      }
      const chunk = writes.slice(i, j);
      await this.kernel.call(mem, MEMORY_IFACE, 'write-many', [
        chunk.map((w) => ({
          namespace: w.ns,
          key: w.key,
          data: w.data,
          metadata: w.metadata,
          author: w.author,
        })),
      ]);
      this.counters.memoryWrites += chunk.length;
      i = j;
    }
  }

  async start(): Promise<void> {
    if (this.config.identity) await this.loadIdentity();
    const server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_FRAME_BYTES,
      'grpc.max_send_message_length': MAX_FRAME_BYTES,
    });
    server.addService(PEER_SERVICE, {
      Link: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.accept(call),
    });
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(this.config.listen, this.creds.server, (e, p) => (e ? reject(e) : resolve(p))),
    ).catch((e: Error) => {
      throw new KernelError(
        'KERNEL_ERR_CONFIG_INVALID',
        `federation: cannot listen on ${this.config.listen}: ${e.message}`,
      );
    });
    this.server = server;
    for (const s of this.seeds) this.dial(s);
    this.tick = setInterval(() => this.onTick(), this.config.heartbeatMs);
    this.tick.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tick) clearInterval(this.tick);
    for (const d of this.dials.values()) if (d.timer) clearTimeout(d.timer);
    for (const l of this.links) l.close();
    if (this.commitTimer) {
      clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
      await this.betweenApplies(() => this.fed('commit-applied')).catch(() => undefined);
    }
    await this.queue.catch(() => undefined);
    if (this.server) {
      const s = this.server;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          s.forceShutdown();
          resolve();
        }, 1000);
        s.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Data paths

  /**
   * A local write in a federated namespace, which memory stores side by side (`storeAndRecord` in index.ts):
   * record it in the document (durable before the component returns) and send the update to every live peer
   * at once. Call inside `localWrite`.
   */
  async recordLocal(change: Change): Promise<void> {
    let update: Uint8Array | undefined;
    try {
      update = await this.fed<Uint8Array | undefined>('record-local-change', change);
    } catch (e) {
      this.changed(undefined);
      throw e;
    }
    if (!update) return;
    this.changed(update);
    this.counters.localWrites++;
    const frame: Frame = { t: 'update', payload: update };
    for (const l of this.onePerPeer()) l.send(frame);
    // The component compacts its log in commit-applied, off the write path: give it the chance.
    this.scheduleCommit();
  }

  private async loadIdentity(): Promise<void> {
    const id = this.config.identity!;
    const pair = await readSecretKeyFile(id.key);
    const keyOf = new Map<string, string>();
    const keys = new Map<string, Awaited<ReturnType<typeof readPublicKeyFile>>>();
    for (const [node, file] of Object.entries(id.peers)) {
      const k = await readPublicKeyFile(file);
      keyOf.set(node, k.keyId);
      keys.set(k.keyId, k);
    }
    const lookup: TrustKeyLookup = {
      lookup: (keyId) => {
        const k = keys.get(keyId);
        return k
          ? { status: 'trusted', key: { ...k, addedAt: new Date(0).toISOString() } }
          : { status: 'unknown' };
      },
    };
    this.identity = { pair, keyOf, lookup };
  }

  /** Dialer side of the hybrid handshake: send ChannelHello with this node's key id. */
  private async startHandshake(link: Link): Promise<void> {
    const id = this.identity!;
    try {
      const init = await initiateChannel({ identity: id.pair, peerKeys: id.lookup });
      link.handshake = init;
      link.stream.write(
        encodeFrame({ t: 'ch1', node: this.config.nodeId, m: init.hello, payload: new Uint8Array(0) }),
      );
    } catch (e) {
      link.stream.emit('error', new Error(`secure channel: ${(e as Error).message}`));
    }
  }

  /** The handshake frames. A failure drops the link (the dialer retries with backoff). */
  private async onHandshake(link: Link, f: Extract<Frame, { t: 'ch1' | 'ch2' | 'ch3' }>): Promise<void> {
    const id = this.identity;
    const fail = (why: string) => {
      this.log(`federation: secure channel with ${link.proven ?? link.address} refused: ${why}`);
      link.stream.emit('error', new Error(`secure channel: ${why}`));
    };
    if (!id) return fail('this node has no federation.identity configured');
    try {
      if (f.t === 'ch1' && link.direction === 'in' && !link.handshake) {
        if (!id.keyOf.has(f.node)) return fail(`node '${f.node}' has no key in federation.identity.peers`);
        const resp = await acceptChannel(f.m as ChannelHello, { identity: id.pair, peerKeys: id.lookup });
        link.handshake = resp;
        link.proven = f.node;
        link.stream.write(
          encodeFrame({ t: 'ch2', node: this.config.nodeId, m: resp.accept, payload: new Uint8Array(0) }),
        );
      } else if (f.t === 'ch2' && link.direction === 'out' && link.handshake && !link.channel) {
        const want = id.keyOf.get(f.node);
        if (!want) return fail(`node '${f.node}' has no key in federation.identity.peers`);
        const { finish, channel } = (link.handshake as ChannelInitiator).complete(f.m as ChannelAccept);
        if (channel.peerKeyId !== want)
          return fail(`node '${f.node}' proved key ${channel.peerKeyId}, its configured key is ${want}`);
        link.stream.write(encodeFrame({ t: 'ch3', m: finish, payload: new Uint8Array(0) }));
        link.channel = channel;
        link.proven = f.node;
        link.handshake = undefined;
        await this.hello(link);
      } else if (f.t === 'ch3' && link.direction === 'in' && link.handshake && !link.channel) {
        const channel = (link.handshake as ChannelResponder).complete(f.m as ChannelFinish);
        const want = id.keyOf.get(link.proven!);
        if (channel.peerKeyId !== want)
          return fail(`node '${link.proven}' proved key ${channel.peerKeyId}, its configured key is ${want}`);
        link.channel = channel;
        link.handshake = undefined;
      } else {
        return fail(`unexpected '${f.t}' frame`);
      }
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  private scheduleCommit(): void {
    if (this.commitTimer || this.stopped) return;
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      this.betweenApplies(() => this.fed('commit-applied')).catch((e: Error) =>
        this.log(`federation: commit of applied peer updates failed (peers will resend them): ${e.message}`),
      );
    }, COMMIT_AFTER_MS);
  }

  private async applyRemote(update: Uint8Array, from: Link): Promise<void> {
    this.pendingApplies++;
    const large = update.byteLength >= LARGE_UPDATE_BYTES;
    await this.exclusive(async () => {
      const t0 = performance.now();
      let bytes: Uint8Array | undefined = update;
      if (large) {
        bytes = lacking(update, this.mirroredSv() ?? (await this.stateVector()));
        if (!bytes) return;
      }
      let res: ApplyResult;
      try {
        res = await this.fed<ApplyResult>('apply-update', bytes);
      } catch (e) {
        this.changed(undefined);
        throw e;
      }
      // Parts left waiting are integrated by a later update that does not hold them: the mirror cannot follow.
      this.changed(res.incomplete ? undefined : bytes);
      this.counters.remoteUpdates++;
      if (res.incomplete) this.sendSv([from]);
      const writes = plan(res.changes);
      if (writes.length === 0) {
        this.scheduleCommit();
        return;
      }
      const t1 = performance.now();
      try {
        await this.memoryWrites(writes);
      } catch (e) {
        // Memory refused: forget the update in the document too, so a later anti-entropy round retries it.
        await this.fed('discard-applied').finally(() => this.changed(undefined));
        throw e;
      }
      this.scheduleCommit();
      if (writes.length >= 100) {
        const t2 = performance.now();
        this.log(
          `federation: applied ${update.byteLength} bytes from ${from.peer} (${bytes.byteLength} new): document ${Math.round(t1 - t0)} ms, ${writes.length} memory writes ${Math.round(t2 - t1)} ms`,
        );
      }
    }).finally(() => {
      this.pendingApplies--;
    });
    if (from.peer) {
      const m = this.members.get(from.peer);
      if (m) m.lastSyncMs = Date.now();
    }
    if (large) this.sendSv(this.onePerPeer());
  }

  // ---------------------------------------------------------------------------------------------------
  // Links

  private dial(address: string): void {
    if (this.stopped) return;
    const d = this.dials.get(address) ?? { failures: 0 };
    this.dials.set(address, d);
    if (d.timer || (d.link && !d.link.closed)) return;
    const client = new PeerClient(address, this.creds.client, {
      'grpc.max_receive_message_length': MAX_FRAME_BYTES,
      'grpc.max_send_message_length': MAX_FRAME_BYTES,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': this.config.reconnectMinMs,
      'grpc.max_reconnect_backoff_ms': this.config.reconnectMaxMs,
    });
    const stream = (client as unknown as { Link(): grpc.ClientDuplexStream<Buffer, Buffer> }).Link();
    const link = new Link(stream, 'out', address, client);
    d.link = link;
    this.attach(link);
    if (this.identity) void this.startHandshake(link);
    else void this.hello(link);
  }

  /**
   * Schedule the next attempt for an address, with exponential backoff and jitter, counted from the start
   * of the attempt that failed (`attemptMs` ago): an attempt that hung through a partition until the
   * network healed has waited long enough, so the next one starts at once.
   */
  private redial(address: string, attemptMs: number): void {
    const d = this.dials.get(address);
    if (!d || this.stopped || d.timer) return;
    d.failures++;
    const delay = reconnectDelay(d.failures, attemptMs, this.config);
    d.timer = setTimeout(() => {
      d.timer = undefined;
      if (this.wanted(address)) this.dial(address);
    }, delay);
    d.timer.unref();
  }

  /** An address is dialed while it is a seed not yet identified, or the route to a member without a link. */
  private wanted(address: string): boolean {
    if (this.seeds.has(address)) return true;
    for (const m of this.members.values()) {
      if (this.routeOf(m) === address && !this.hasLink(m.node)) return true;
    }
    return false;
  }

  private routeOf(m: Member): string {
    return this.config.routes[m.node] ?? m.address;
  }

  private hasLink(node: string): boolean {
    for (const l of this.links) if (l.peer === node && !l.closed) return true;
    return false;
  }

  /** One live link per identified peer, preferring links whose hello went out (no frames held back). */
  private onePerPeer(): Link[] {
    const seen = new Map<string, Link>();
    for (const l of this.links) {
      if (!l.peer || l.closed) continue;
      const had = seen.get(l.peer);
      if (!had || (!had.ready && l.ready)) seen.set(l.peer, l);
    }
    return [...seen.values()];
  }

  private accept(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    if (this.stopped) {
      call.end();
      return;
    }
    const link = new Link(call, 'in', call.getPeer());
    this.attach(link);
  }

  private attach(link: Link): void {
    this.links.add(link);
    const closed = (why: string) => {
      if (link.closed && !this.links.has(link)) return;
      link.close();
      this.links.delete(link);
      if (link.peer) {
        const m = this.members.get(link.peer);
        if (m && !this.hasLink(link.peer)) {
          m.state = 'down';
          m.lastError = why;
        }
      }
      if (link.direction === 'out') this.redial(link.address, Date.now() - link.openedAt);
    };
    link.stream.on('data', (b: Buffer) => {
      link.lastHeard = Date.now();
      let f: Frame;
      try {
        f = decodeFrame(b);
        if (f.t === 'sealed') {
          if (!link.channel) throw new Error('sealed frame before the secure channel is open');
          f = decodeFrame(Buffer.from(link.channel.open(f.payload)));
          if (f.t === 'sealed' || f.t === 'ch1' || f.t === 'ch2' || f.t === 'ch3')
            throw new Error(`'${f.t}' frame inside a sealed record`);
        } else if (f.t === 'ch1' || f.t === 'ch2' || f.t === 'ch3') {
          this.onHandshake(link, f).catch((e: Error) => closed(`secure channel: ${e.message}`));
          return;
        } else if (this.identity) {
          throw new Error(`unsealed '${f.t}' frame on a link that requires the secure channel`);
        }
      } catch (e) {
        this.log(`federation: bad frame from ${link.peer ?? link.address}: ${(e as Error).message}`);
        closed(`bad frame: ${(e as Error).message}`);
        return;
      }
      this.onFrame(link, f).catch((e: Error) => {
        this.log(`federation: ${f.t} from ${link.peer ?? link.address} failed: ${e.message}`);
      });
    });
    link.stream.on('error', (e: Error) => closed(e.message));
    link.stream.on('end', () => closed('stream ended'));
    link.stream.on('close', () => closed('stream closed'));
  }

  private members_(): Member[] {
    const out: Member[] = [{ node: this.config.nodeId, address: this.config.advertise }];
    for (const m of this.members.values()) out.push({ node: m.node, address: m.address });
    return out;
  }

  private async hello(link: Link): Promise<void> {
    try {
      const sv =
        this.lastSv?.gen === this.docGen ? this.lastSv.sv : (this.mirroredSv() ?? (await this.stateVector()));
      link.send({
        t: 'hello',
        node: this.config.nodeId,
        address: this.config.advertise,
        members: this.members_(),
        payload: sv,
      });
    } catch (e) {
      this.log(`federation: hello to ${link.address} failed: ${(e as Error).message}`);
      link.close();
    }
  }

  /** The component's state vector, remembered with the generation it was asked at. */
  private async stateVector(): Promise<Uint8Array> {
    const gen = this.docGen;
    const sv = await this.fed<Uint8Array>('state-vector');
    if (!this.lastSv || this.lastSv.gen <= gen) this.lastSv = { gen, sv };
    // Calls run in order and their results arrive in order: every change the component made before this
    // call has bumped the generation by now, and none after it has.
    const read = Y.decodeStateVector(sv);
    const m = this.svMirror;
    if (m && m.gen === this.docGen && !sameStateVector(m.sv, read))
      this.log("federation: the kernel's state-vector mirror differed from the component's (replaced)");
    this.svMirror = { gen: this.docGen, sv: read };
    return sv;
  }

  /**
   * The component's state vector now, encoded from the mirror when it is current (undefined when it is not):
   * no component call, so a heartbeat or a hello does not put a call in front of the next peer update.
   */
  private mirroredSv(): Uint8Array | undefined {
    const m = this.svMirror;
    if (!m || m.gen !== this.docGen) return undefined;
    const sv = Y.encodeStateVector(m.sv);
    this.lastSv = { gen: this.docGen, sv };
    return sv;
  }

  /**
   * After a call that may have changed the document: a new generation, and the mirror carried forward with
   * `integrated` (what the call added to the document), or dropped when that is not known.
   */
  private changed(integrated: Uint8Array | undefined): void {
    const m = this.svMirror;
    if (m && m.gen === this.docGen && integrated) {
      advanceStateVector(m.sv, integrated);
      m.gen = this.docGen + 1;
    } else {
      this.svMirror = undefined;
    }
    this.docGen++;
  }

  private sendSv(links: Link[]): void {
    this.stateVector().then(
      (sv) => {
        for (const l of links) l.send({ t: 'sv', members: this.members_(), payload: sv });
      },
      (e: Error) => this.log(`federation: state vector failed: ${e.message}`),
    );
  }

  private async onFrame(link: Link, f: Frame): Promise<void> {
    if (f.t === 'hello') {
      if (!this.identify(link, f)) return;
      this.gossip(f.members);
      await this.antiEntropy(link, f.payload, true);
      return;
    }
    if (!link.peer) {
      this.log(`federation: '${f.t}' before hello from ${link.address}; closing the link`);
      link.stream.emit('error', new Error('frame before hello'));
      return;
    }
    const m = this.members.get(link.peer);
    if (m) {
      m.lastHeardMs = Date.now();
      m.state = 'alive';
    }
    if (f.t === 'ping') return;
    if (f.t === 'sv') {
      this.gossip(f.members);
      await this.antiEntropy(link, f.payload, false);
    } else {
      await this.applyRemote(f.payload, link);
    }
  }

  /** Check and record who is at the other end of a link. Returns false when the link was refused. */
  private identify(link: Link, f: Extract<Frame, { t: 'hello' }>): boolean {
    const refuse = (why: string) => {
      this.log(`federation: refused link from ${link.address}: ${why}`);
      link.close();
      this.links.delete(link);
      return false;
    };
    if (f.node === this.config.nodeId) {
      // A seed that is this node: forget it.
      this.seeds.delete(link.address);
      return refuse('it is this node');
    }
    if (this.identity && link.proven !== f.node)
      return refuse(
        `hello names node '${f.node}' but the secure channel proved '${link.proven ?? '(nobody)'}'`,
      );
    if (link.direction === 'in') {
      const cert = (link.stream as grpc.ServerDuplexStream<Buffer, Buffer>).getAuthContext()
        ?.sslPeerCertificate;
      const cn = cert?.subject?.CN;
      if (cn !== f.node)
        return refuse(`hello names node '${f.node}' but its certificate is for '${cn ?? '(none)'}'`);
    }
    if (this.config.allowedPeers && !this.config.allowedPeers.includes(f.node))
      return refuse(`node '${f.node}' is not in federation.allowedPeers`);
    link.peer = f.node;
    link.lastHeard = Date.now();
    const known = this.members.get(f.node);
    const m: MemberState = known ?? { node: f.node, address: f.address, state: 'alive', reconnects: 0 };
    if (known && known.state === 'down') m.reconnects++;
    m.address = f.address;
    m.state = 'alive';
    m.lastHeardMs = Date.now();
    m.lastError = undefined;
    this.members.set(f.node, m);
    if (link.direction === 'out') {
      this.seeds.delete(link.address);
      const d = this.dials.get(link.address);
      if (d) d.failures = 0;
    } else {
      void this.hello(link);
    }
    return true;
  }

  private gossip(members: Member[]): void {
    for (const g of members) {
      if (g.node === this.config.nodeId) continue;
      if (!this.members.has(g.node)) {
        this.members.set(g.node, { node: g.node, address: g.address, state: 'down', reconnects: 0 });
        this.log(`federation: learned of node '${g.node}' at ${g.address}`);
      }
    }
  }

  /** Send a peer what its state vector says it lacks. */
  private async antiEntropy(link: Link, sv: Uint8Array, hello: boolean): Promise<void> {
    const m = link.peer ? this.members.get(link.peer) : undefined;
    const mirror = this.svMirror?.gen === this.docGen ? this.svMirror.sv : undefined;
    let missing: number | undefined;
    try {
      missing = mirror && missingWrites(mirror, sv);
    } catch {
      // Not a state vector: the component says so.
    }
    missing ??= Number(await this.fed<bigint>('missing', sv));
    const now = Date.now();
    if (m) {
      m.lag = missing;
      if (missing === 0) {
        m.lastSyncMs = now;
        m.missingSince = undefined;
      } else if (m.missingSince === undefined) {
        m.missingSince = now;
      }
    }
    if (missing === 0) return;
    // Under a stream of writes a heartbeat's state vector is nearly always a few writes behind what is
    // already on the wire to the peer: diff only after a (re)connect, or when the gap outlives two
    // heartbeats (something was lost, e.g. a link dropped with updates in flight).
    if (!hello && m?.missingSince !== undefined && now - m.missingSince < 2 * this.config.heartbeatMs) return;
    const key = Buffer.from(sv).toString('base64');
    // The peer's heartbeats repeat its state vector while it applies a large diff, and its hello comes on
    // both links: send the diff for one state vector once.
    if (m?.lastDiffSent && m.lastDiffSent.sv === key && now - m.lastDiffSent.at < this.config.suspectAfterMs)
      return;
    const sent = { sv: key, at: now };
    if (m) {
      m.lastDiffSent = sent;
      m.missingSince = undefined;
    }
    let diff: Uint8Array;
    try {
      diff = await this.diffFor(sv, key);
    } catch (e) {
      if (m?.lastDiffSent === sent) m.lastDiffSent = undefined;
      throw e;
    }
    link.send({ t: 'update', payload: diff });
  }

  private diffFor(sv: Uint8Array, key: string): Promise<Uint8Array> {
    const gen = this.docGen;
    if (this.lastDiff?.gen === gen && this.lastDiff.sv === key) return this.lastDiff.diff;
    const diff = this.fed<Uint8Array>('diff', sv);
    const entry = { gen, sv: key, diff };
    this.lastDiff = entry;
    diff.catch(() => {
      if (this.lastDiff === entry) this.lastDiff = undefined;
    });
    return diff;
  }

  private onTick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const l of [...this.links]) {
      if (l.closed) continue;
      if (now - l.lastHeard > this.config.suspectAfterMs) {
        this.log(
          `federation: no word from ${l.peer ?? l.address} for ${now - l.lastHeard} ms; dropping the link`,
        );
        l.stream.emit('error', new Error(`no heartbeat for ${now - l.lastHeard} ms`));
      }
    }
    const live = this.onePerPeer();
    // The heartbeat must not wait for the component: while it is busy (a large apply), send a ping.
    for (const l of live) l.send({ t: 'ping', payload: new Uint8Array(0) });
    // The state vector goes to every peer. It is also kept for the next hello, which then need not wait
    // behind a busy component: so it is refreshed while no peer is connected too, when the document changed.
    const mirrored =
      ++this.ticksSinceSvRead < SV_READ_EVERY_TICKS && (live.length > 0 || this.lastSv?.gen !== this.docGen)
        ? this.mirroredSv()
        : undefined;
    if (mirrored) {
      for (const l of live) l.send({ t: 'sv', members: this.members_(), payload: mirrored });
    } else if (!this.svInFlight && (live.length > 0 || this.lastSv?.gen !== this.docGen)) {
      this.svInFlight = true;
      this.ticksSinceSvRead = 0;
      this.stateVector()
        .then(
          (sv) => {
            for (const l of this.onePerPeer()) l.send({ t: 'sv', members: this.members_(), payload: sv });
          },
          (e: Error) => this.log(`federation: state vector failed: ${e.message}`),
        )
        .finally(() => {
          this.svInFlight = false;
        });
    }
    for (const m of this.members.values()) {
      if (!this.hasLink(m.node)) {
        const addr = this.routeOf(m);
        const d = this.dials.get(addr);
        if (!d || (!d.timer && (!d.link || d.link.closed))) this.dial(addr);
      }
    }
    for (const s of this.seeds) {
      const d = this.dials.get(s);
      if (!d || (!d.timer && (!d.link || d.link.closed))) this.dial(s);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Status

  async status(): Promise<FederationStatus> {
    const info = await this.fed<{
      entries: bigint;
      localEntries: bigint;
      pendingStructs: number;
      clientId: number;
    }>('info');
    const peers: PeerStatus[] = [...this.members.values()]
      .sort((a, b) => (a.node < b.node ? -1 : 1))
      .map((m) => ({
        node: m.node,
        address: m.address,
        state: this.hasLink(m.node) ? 'alive' : m.state === 'alive' ? 'down' : m.state,
        links: [...this.links].filter((l) => l.peer === m.node && !l.closed).length,
        lastHeardMs: m.lastHeardMs ?? null,
        lastSyncMs: m.lastSyncMs ?? null,
        lagWrites: m.lag ?? null,
        reconnects: m.reconnects,
        lastError: m.lastError ?? null,
        protection: ((live) =>
          live.length === 0
            ? null
            : live.every((l) => l.channel)
              ? ('mtls+hybrid' as const)
              : ('mtls' as const))([...this.links].filter((l) => l.peer === m.node && !l.closed)),
      }));
    return {
      nodeId: this.config.nodeId,
      listen: this.config.listen,
      advertise: this.config.advertise,
      namespaces: this.config.namespaces,
      peers,
      document: {
        entries: Number(info.entries),
        localEntries: Number(info.localEntries),
        pendingStructs: info.pendingStructs,
        clientId: info.clientId,
      },
      ...this.counters,
      pendingApplies: this.pendingApplies,
    };
  }
}

/**
 * The memory writes for a peer update: per key, the writes not seen before (oldest first), then the
 * current value again if a write that lost was stored after it, so memory's latest is the current value.
 */
export function plan(changes: KeyUpdate[]): PlannedWrite[] {
  const out: PlannedWrite[] = [];
  const toWrite = (e: Entry): PlannedWrite => {
    const meta = e.change.metadata.filter(([k]) => k !== ORIGIN_META && k !== ENTRY_META);
    return {
      ns: e.change.namespace,
      key: e.change.key,
      data: e.change.data,
      metadata: [...meta, [ORIGIN_META, e.originNode], [ENTRY_META, e.id]],
      author: e.change.author,
    };
  };
  for (const c of changes) {
    let lastIsCurrent = !c.currentChanged;
    for (const e of c.added) {
      out.push(toWrite(e));
      lastIsCurrent = e.id === c.currentId;
    }
    if (lastIsCurrent) continue;
    const current = c.current ?? c.added.find((e) => e.id === c.currentId);
    if (!current)
      throw new KernelError(
        'KERNEL_ERR_INTERNAL',
        `federation: the component named ${c.currentId} current for ${c.namespace}/${c.key} without sending it`,
      );
    out.push(toWrite(current));
  }
  return out;
}

/**
 * Milliseconds until the next dial of an address after `failures` failed attempts in a row: exponential
 * from reconnectMinMs to reconnectMaxMs with jitter (half to all of it), counted from the start of the
 * failed attempt, `attemptMs` ago.
 */
export function reconnectDelay(
  failures: number,
  attemptMs: number,
  c: Pick<FederationConfig, 'reconnectMinMs' | 'reconnectMaxMs'>,
  random = Math.random(),
): number {
  const base = Math.min(c.reconnectMaxMs, c.reconnectMinMs * 2 ** (failures - 1));
  return Math.max(0, Math.round(base * (0.5 + random * 0.5)) - attemptMs);
}

/**
 * What of a Yjs update a document with state vector `sv` lacks (Yjs's diffUpdate), or undefined when it
 * lacks none of its structs. Its delete set then holds nothing new for the document either: every
 * deletion in the federation document is the overwrite of a map key, which integrating the overwriting
 * struct makes. A v1 update starts with its number of clients with structs.
 */
export function lacking(update: Uint8Array, sv: Uint8Array): Uint8Array | undefined {
  const rest = Y.diffUpdate(update, sv);
  return rest[0] === 0 ? undefined : rest;
}

/** Advance a state vector with the structs of a Yjs update that a document integrated in full. */
export function advanceStateVector(sv: Map<number, number>, update: Uint8Array): void {
  for (const [client, clock] of Y.parseUpdateMeta(update).to)
    if (clock > (sv.get(client) ?? 0)) sv.set(client, clock);
}

function sameStateVector(a: Map<number, number>, b: Map<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [client, clock] of a) if (b.get(client) !== clock) return false;
  return true;
}

/**
 * How many writes a peer with state vector `theirs` lacks of a document with state vector `ours`: the
 * federation component's `missing` (every write is two map sets, one clock tick each).
 */
export function missingWrites(ours: Map<number, number>, theirs: Uint8Array): number {
  const t = Y.decodeStateVector(theirs);
  let ticks = 0;
  for (const [client, clock] of ours) ticks += Math.max(0, clock - (t.get(client) ?? 0));
  return Math.ceil(ticks / 2);
}
