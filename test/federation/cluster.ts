/**
 * A federation of real kernel processes on loopback, for the federation tests and bench: each node is
 * `node sdk/dist/cli/main.js up` with its own data dir and a `federation` section in its config.json;
 * peer links are mTLS with certificates from a private CA (host/src/auth/certs.ts, openssl).
 *
 * Every directed peer link i -> j goes through a TCP proxy the test controls (node i's `routes` and seeds
 * point at the proxy, which forwards to j's peer port), so a partition is real lost connectivity, not a
 * switch inside the kernel: `partition(i)` blackholes every proxy into and out of node i (bytes stop
 * flowing, connections stay open, new ones hang), and `heal(i)` restores them. With `identity`, every link
 * also runs the hybrid X25519 + ML-KEM-768 handshake with each node's publisher key and seals its frames.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueClientCert, issueServerCert } from '../../host/src/auth/certs.js';
import {
  generatePublisherKeyPair,
  writePublicKeyFile,
  writeSecretKeyFile,
} from '../../host/src/trust/keys.js';
import { SyscallClient } from '../../sdk/src/client/index.js';
import { ROOT } from '../grpc/harness.js';

export const CLI = join(ROOT, 'sdk', 'dist', 'cli', 'main.js');

/** Why a federation cannot be started here, or undefined. */
export function federationMissing(): string | undefined {
  for (const name of ['memory', 'federation']) {
    const dist = join(ROOT, 'drivers', name, 'dist');
    if (!existsSync(join(dist, `${name}.wasm`)) || !existsSync(join(dist, 'manifest.json')))
      return `drivers/${name}/dist is not built: run \`npm run build\``;
  }
  if (!existsSync(CLI)) return `${CLI} is missing: run \`npx tsc -b\``;
  return undefined;
}

/** The Yjs client id of a node (the federation component's rule: sha-256 of the node id, first 4 bytes). */
export function clientIdOf(node: string): number {
  return createHash('sha256').update(node).digest().readUInt32BE(0);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * A TCP forwarder that can blackhole its traffic. Both of its sockets run without Nagle's algorithm, as the
 * kernels' gRPC client sockets do (grpc-js sets TCP_NODELAY): with it, the relay held a small segment until
 * the previous one was acknowledged, and the receiver delays its ACKs, which added up to ~40 ms to a
 * replicated write (measured: p99 of the proxy leg 38-44 ms with Nagle, 5-7 ms without) that no network
 * between kernels would add.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket | undefined]>();
  blackholed = false;

  constructor(
    readonly port: number,
    readonly target: number,
  ) {}

  async start(): Promise<void> {
    this.server = net.createServer({ noDelay: true }, (client) => {
      const pair: [net.Socket, net.Socket | undefined] = [client, undefined];
      this.pairs.add(pair);
      const drop = () => {
        client.destroy();
        pair[1]?.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', drop);
      client.on('close', drop);
      if (this.blackholed) return; // accepted, never forwarded: the dialer hangs like on a dead network
      const upstream = net.connect({ port: this.target, host: '127.0.0.1', noDelay: true });
      pair[1] = upstream;
      upstream.on('error', drop);
      upstream.on('close', drop);
      client.on('data', (b) => {
        if (!this.blackholed) upstream.write(b);
      });
      upstream.on('data', (b) => {
        if (!this.blackholed) client.write(b);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  blackhole(): void {
    this.blackholed = true;
  }

  /** Stop blackholing; connections that lived through the blackhole are closed (their streams are stale). */
  heal(): void {
    this.blackholed = false;
    for (const [a, b] of [...this.pairs]) {
      a.destroy();
      b?.destroy();
    }
    this.pairs.clear();
  }

  async stop(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b?.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

export interface FedNode {
  id: string;
  dataDir: string;
  peerPort: number;
  proc?: ChildProcess;
  address?: string;
  client?: SyscallClient;
  stderr: string[];
}

export interface ClusterOptions {
  nodes?: string[];
  namespaces?: string[];
  /** Extra federation settings for every node (heartbeatMs, ...). */
  tuning?: Record<string, number>;
  /** Nodes that run without a federation section (e.g. the other kernels of a site). */
  plain?: string[];
  /** Extra top-level config.json keys per node (e.g. a shared `kv`). */
  extra?: Record<string, Record<string, unknown>>;
  /** Give every federating node a publisher key pair and run the hybrid secure channel on every link. */
  identity?: boolean;
}

export class Cluster {
  readonly root: string;
  readonly nodes: FedNode[] = [];
  /** proxies[`${i}->${j}`] */
  readonly proxies = new Map<string, TcpProxy>();
  private readonly opts: Required<ClusterOptions>;
  private ca: { cert: string; key: string } | undefined;

  constructor(opts: ClusterOptions = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'cam-fed-'));
    this.opts = {
      nodes: opts.nodes ?? ['node-a', 'node-b', 'node-c'],
      namespaces: opts.namespaces ?? ['shared', 'team-*'],
      tuning: opts.tuning ?? {},
      plain: opts.plain ?? [],
      extra: opts.extra ?? {},
      identity: opts.identity ?? false,
    };
  }

  node(id: string): FedNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  client(id: string): SyscallClient {
    const c = this.node(id).client;
    if (!c) throw new Error(`node ${id} is not running`);
    return c;
  }

  /** Certificates, proxies and config files for every node; then start every kernel process. */
  async start(): Promise<void> {
    const caDir = join(this.root, 'ca');
    mkdirSync(caDir, { recursive: true });
    const ca = createCa(caDir, { commonName: 'cam-os federation test CA' });
    this.ca = ca;
    for (const id of this.opts.nodes) {
      const dataDir = join(this.root, id);
      mkdirSync(join(dataDir, 'fed-tls', 'server'), { recursive: true });
      mkdirSync(join(dataDir, 'fed-tls', 'client'), { recursive: true });
      issueServerCert(ca, join(dataDir, 'fed-tls', 'server'), { hosts: ['127.0.0.1'], name: 'peer' });
      issueClientCert(ca, join(dataDir, 'fed-tls', 'client'), id);
      this.nodes.push({ id, dataDir, peerPort: await freePort(), stderr: [] });
    }
    const federated = this.nodes.filter((n) => !this.opts.plain.includes(n.id));
    for (const from of federated) {
      for (const to of federated) {
        if (from === to) continue;
        const p = new TcpProxy(await freePort(), to.peerPort);
        await p.start();
        this.proxies.set(`${from.id}->${to.id}`, p);
      }
    }
    const keysDir = join(this.root, 'node-keys');
    mkdirSync(keysDir, { recursive: true });
    if (this.opts.identity) {
      for (const n of federated) {
        const pair = await generatePublisherKeyPair();
        await writeSecretKeyFile(join(n.dataDir, 'node.key.json'), pair);
        await writePublicKeyFile(join(keysDir, `${n.id}.pub.json`), pair);
      }
    }
    const identity = this.opts.identity
      ? {
          key: 'node.key.json',
          peers: Object.fromEntries(federated.map((o) => [o.id, join(keysDir, `${o.id}.pub.json`)])),
        }
      : undefined;
    for (const n of this.nodes.filter((x) => this.opts.plain.includes(x.id))) {
      writeFileSync(join(n.dataDir, 'config.json'), JSON.stringify(this.opts.extra[n.id] ?? {}, null, 2));
    }
    for (const [i, n] of federated.entries()) {
      const others = federated.filter((o) => o !== n);
      const routes = Object.fromEntries(others.map((o) => [o.id, this.addr(n.id, o.id)]));
      // One seed each (the next node): the third node is found by membership gossip.
      const seed = federated[(i + 1) % federated.length]!;
      const config = {
        ...this.opts.extra[n.id],
        federation: {
          nodeId: n.id,
          listen: `127.0.0.1:${n.peerPort}`,
          seeds: [this.addr(n.id, seed.id)],
          namespaces: this.opts.namespaces,
          routes,
          ...(identity ? { identity } : {}),
          tls: {
            ca: join(caDir, 'ca.crt'),
            cert: 'fed-tls/server/peer.crt',
            key: 'fed-tls/server/peer.key',
            clientCert: `fed-tls/client/${n.id}.crt`,
            clientKey: `fed-tls/client/${n.id}.key`,
          },
          ...this.opts.tuning,
        },
      };
      writeFileSync(join(n.dataDir, 'config.json'), JSON.stringify(config, null, 2));
    }
    await Promise.all(this.nodes.map((n) => this.startNode(n.id)));
  }

  /**
   * A kernel that claims to be `asNode`, with a certificate from the federation CA for that name (as if the
   * CA were compromised) but its own publisher key, dialing `target` directly. Only the hybrid channel's
   * key check can refuse it. Needs `identity`.
   */
  async startImpostor(asNode: string, target: string): Promise<FedNode> {
    if (!this.ca || !this.opts.identity)
      throw new Error('startImpostor needs a started cluster with identity');
    const id = `impostor-${asNode}`;
    const dataDir = join(this.root, id);
    mkdirSync(join(dataDir, 'fed-tls', 'server'), { recursive: true });
    mkdirSync(join(dataDir, 'fed-tls', 'client'), { recursive: true });
    issueServerCert(this.ca, join(dataDir, 'fed-tls', 'server'), { hosts: ['127.0.0.1'], name: 'peer' });
    issueClientCert(this.ca, join(dataDir, 'fed-tls', 'client'), asNode);
    await writeSecretKeyFile(join(dataDir, 'node.key.json'), await generatePublisherKeyPair());
    const keysDir = join(this.root, 'node-keys');
    const n: FedNode = { id, dataDir, peerPort: await freePort(), stderr: [] };
    this.nodes.push(n);
    const config = {
      federation: {
        nodeId: asNode,
        listen: `127.0.0.1:${n.peerPort}`,
        seeds: [`127.0.0.1:${this.node(target).peerPort}`],
        namespaces: this.opts.namespaces,
        identity: {
          key: 'node.key.json',
          peers: Object.fromEntries(
            this.nodes
              .filter((o) => existsSync(join(keysDir, `${o.id}.pub.json`)))
              .map((o) => [o.id, join(keysDir, `${o.id}.pub.json`)]),
          ),
        },
        tls: {
          ca: join(this.root, 'ca', 'ca.crt'),
          cert: 'fed-tls/server/peer.crt',
          key: 'fed-tls/server/peer.key',
          clientCert: `fed-tls/client/${asNode}.crt`,
          clientKey: `fed-tls/client/${asNode}.key`,
        },
      },
    };
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify(config, null, 2));
    await this.startNode(id);
    return n;
  }

  private addr(from: string, to: string): string {
    return `127.0.0.1:${this.proxies.get(`${from}->${to}`)!.port}`;
  }

  /** Start (or restart) one kernel process; resolves when it serves gRPC. */
  async startNode(id: string): Promise<void> {
    const n = this.node(id);
    const proc = spawn(
      process.execPath,
      [CLI, 'up', '--data-dir', n.dataDir, '--listen', '127.0.0.1:0', '--json'],
      {
        cwd: ROOT,
        env: { ...process.env, CAM_OS_TPM: 'none', CAM_OS_HTTP: 'off' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    n.proc = proc;
    proc.stderr!.on('data', (b: Buffer) => {
      n.stderr.push(b.toString());
      if (n.stderr.length > 200) n.stderr.shift();
    });
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      const t = setTimeout(
        () => reject(new Error(`${id} did not start in 180 s; stderr: ${n.stderr.join('').slice(-2000)}`)),
        180_000,
      );
      proc.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(t);
          const j = JSON.parse(line) as { address: string; warnings: string[] };
          resolve(j.address);
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`${id} exited (${code ?? sig}) while starting: ${n.stderr.join('').slice(-2000)}`));
      });
    });
    n.address = address;
    n.client = new SyscallClient({ address, callerId: `client-of-${id}` });
    await n.client.waitForReady(30_000);
  }

  /** SIGKILL: no shutdown code runs. */
  async kill9(id: string): Promise<void> {
    const n = this.node(id);
    n.client?.close();
    n.client = undefined;
    const p = n.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  partition(id: string): void {
    for (const [k, p] of this.proxies) if (k.startsWith(`${id}->`) || k.endsWith(`->${id}`)) p.blackhole();
  }

  heal(id: string): void {
    for (const [k, p] of this.proxies) if (k.startsWith(`${id}->`) || k.endsWith(`->${id}`)) p.heal();
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) {
      n.client?.close();
      const p = n.proc;
      if (p && p.exitCode === null && p.signalCode === null) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
          p.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          p.kill('SIGTERM');
        });
      }
    }
    for (const p of this.proxies.values()) await p.stop();
    rmSync(this.root, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------------
  // Reads and waits

  async write(
    id: string,
    ns: string,
    key: string,
    data: string | Uint8Array,
  ): Promise<{ version: number; hash: string }> {
    return this.client(id).call('ContextWrite', {
      namespace: ns,
      key,
      data: typeof data === 'string' ? Buffer.from(data) : data,
      metadata: {},
    });
  }

  /** The latest value (as a string) of a key on one node; undefined when the node has no such key. */
  async read(id: string, ns: string, key: string): Promise<{ data: string; hash: string } | undefined> {
    try {
      const r = await this.client(id).call('ContextRead', { namespace: ns, key, version: 0 });
      return { data: Buffer.from(r.data).toString(), hash: r.hash };
    } catch (e) {
      if (/NOT_FOUND|no key/.test(String((e as Error).message))) return undefined;
      throw e;
    }
  }

  /** Poll until `check` holds; fails loudly with what it last saw (a wait, not a timing assertion). */
  async until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > end) {
        const logs = this.nodes.map((n) => `--- ${n.id}\n${n.stderr.join('').slice(-1500)}`).join('\n');
        throw new Error(
          `gave up waiting for ${what} after ${timeoutMs} ms (last error: ${String(last)})\n${logs}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
