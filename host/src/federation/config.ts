/**
 * The `federation` section of `<data-dir>/config.json`. Absent: the kernel does not federate and does not
 * load the federation component. Every value is validated; an error names the key.
 *
 *   "federation": {
 *     "nodeId": "site-a-1",
 *     "listen": "0.0.0.0:7400",            // peer gRPC listener (mTLS)
 *     "advertise": "10.0.0.5:7400",        // what peers dial (default: listen)
 *     "seeds": ["10.0.1.5:7400"],          // where to start; membership gossip finds the rest
 *     "namespaces": ["shared", "team-*"],  // federated namespaces (a trailing * is a prefix)
 *     "tls": { "ca": "...", "cert": "...", "key": "...", "clientCert": "...", "clientKey": "..." },
 *     "identity": { "key": "node.key.json", "peers": { "site-b-1": "keys/site-b-1.pub.json" } },
 *                                          // optional: node keys + hybrid PQ channel on every link
 *     "allowedPeers": ["site-b-1"],        // optional: node ids accepted (default: any the CA signed)
 *     "routes": { "site-b-1": "127.0.0.1:7501" },  // optional: dial this address for that node
 *     "heartbeatMs": 250, "suspectAfterMs": 3000, "reconnectMinMs": 50, "reconnectMaxMs": 500
 *   }
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { KernelError } from '../errors.js';

export interface FederationTls {
  /** PEM of the federation CA: peers' certificates must chain to it. */
  ca: string;
  /** Server certificate and key of the peer listener. */
  cert: string;
  key: string;
  /** Client certificate (CN = this node id) and key used when dialing peers. */
  clientCert: string;
  clientKey: string;
}

/**
 * Node identity for the hybrid post-quantum secure channel (host/src/trust/channel.ts, the
 * EstablishSecureChannel machinery): this node's publisher key pair, and each peer's public key.
 */
export interface FederationIdentity {
  /** Secret key file of this node (`cam-os keys generate`). */
  key: string;
  /** node id -> public key file: the only keys accepted for those nodes. */
  peers: Record<string, string>;
}

export interface FederationConfig {
  nodeId: string;
  listen: string;
  advertise: string;
  seeds: string[];
  namespaces: string[];
  tls: FederationTls;
  allowedPeers?: string[];
  /** When set, every link also runs the hybrid handshake and carries its frames as sealed records. */
  identity?: FederationIdentity;
  routes: Record<string, string>;
  heartbeatMs: number;
  suspectAfterMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

export const NODE_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const NAMESPACE_PATTERN_RE = /^[A-Za-z0-9._:/-]{1,256}\*?$|^\*$/;
const ADDRESS_RE = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/;

const KEYS = [
  'nodeId',
  'listen',
  'advertise',
  'seeds',
  'namespaces',
  'tls',
  'allowedPeers',
  'identity',
  'routes',
  'heartbeatMs',
  'suspectAfterMs',
  'reconnectMinMs',
  'reconnectMaxMs',
];

function err(file: string, msg: string): KernelError {
  return new KernelError('KERNEL_ERR_CONFIG_INVALID', `${file}: federation.${msg}`);
}

function address(v: unknown, file: string, what: string): string {
  const m = typeof v === 'string' ? ADDRESS_RE.exec(v) : null;
  if (!m || Number(m[2]) > 65535) throw err(file, `${what} must be host:port, got ${JSON.stringify(v)}`);
  return v as string;
}

function ms(
  o: Record<string, unknown>,
  key: string,
  def: number,
  min: number,
  max: number,
  file: string,
): number {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw err(file, `${key} must be an integer number of milliseconds in ${min}..${max}`);
  return v;
}

/** Validate the section; relative TLS paths are resolved against the data dir. */
export function parseFederationConfig(v: unknown, file: string, dataDir: string): FederationConfig {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw err(file, 'must be an object');
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !KEYS.includes(k));
  if (unknown.length) throw err(file, `unknown key(s) ${unknown.join(', ')} (allowed: ${KEYS.join(', ')})`);
  if (typeof o.nodeId !== 'string' || !NODE_ID_RE.test(o.nodeId))
    throw err(file, 'nodeId must be 1-128 characters of A-Z a-z 0-9 . _ -');
  const listen = address(o.listen, file, 'listen');
  const advertise = o.advertise === undefined ? listen : address(o.advertise, file, 'advertise');
  if (/^(0\.0\.0\.0|\[::\]):/.test(advertise))
    throw err(
      file,
      `advertise must be an address peers can dial, not ${advertise} (set federation.advertise)`,
    );
  const seeds = o.seeds ?? [];
  if (!Array.isArray(seeds)) throw err(file, 'seeds must be a list of host:port strings');
  for (const [i, s] of seeds.entries()) address(s, file, `seeds[${i}]`);
  const namespaces = o.namespaces;
  if (!Array.isArray(namespaces) || namespaces.length === 0)
    throw err(file, 'namespaces must be a non-empty list of namespace patterns');
  for (const p of namespaces) {
    if (typeof p !== 'string' || !NAMESPACE_PATTERN_RE.test(p))
      throw err(file, `namespaces: '${String(p)}' is not a namespace, a prefix ending in '*', or '*'`);
  }
  const tls = o.tls as Record<string, unknown> | undefined;
  if (!tls || typeof tls !== 'object')
    throw err(
      file,
      "tls must name the federation CA and this node's certificates (peer links are mTLS only)",
    );
  const paths = {} as FederationTls;
  for (const k of ['ca', 'cert', 'key', 'clientCert', 'clientKey'] as const) {
    const p = tls[k];
    if (typeof p !== 'string' || p.length === 0) throw err(file, `tls.${k} must be a file path`);
    const abs = isAbsolute(p) ? p : resolve(dataDir, p);
    if (!existsSync(abs)) throw err(file, `tls.${k}: ${abs} does not exist`);
    paths[k] = abs;
  }
  let allowedPeers: string[] | undefined;
  if (o.allowedPeers !== undefined) {
    if (
      !Array.isArray(o.allowedPeers) ||
      o.allowedPeers.some((p) => typeof p !== 'string' || !NODE_ID_RE.test(p))
    )
      throw err(file, 'allowedPeers must be a list of node ids');
    allowedPeers = o.allowedPeers as string[];
  }
  let identity: FederationIdentity | undefined;
  if (o.identity !== undefined) {
    const id = o.identity as Record<string, unknown>;
    if (
      !id ||
      typeof id !== 'object' ||
      typeof id.key !== 'string' ||
      !id.peers ||
      typeof id.peers !== 'object'
    )
      throw err(
        file,
        'identity must be { "key": <secret key file>, "peers": { <node id>: <public key file> } }',
      );
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(dataDir, p));
    if (!existsSync(abs(id.key))) throw err(file, `identity.key: ${abs(id.key)} does not exist`);
    const peers: Record<string, string> = {};
    for (const [node, f] of Object.entries(id.peers as Record<string, unknown>)) {
      if (!NODE_ID_RE.test(node)) throw err(file, `identity.peers: '${node}' is not a node id`);
      if (typeof f !== 'string' || !existsSync(abs(f)))
        throw err(
          file,
          `identity.peers.${node}: ${typeof f === 'string' ? abs(f) : String(f)} does not exist`,
        );
      peers[node] = abs(f);
    }
    identity = { key: abs(id.key), peers };
  }
  const routes: Record<string, string> = {};
  if (o.routes !== undefined) {
    if (!o.routes || typeof o.routes !== 'object' || Array.isArray(o.routes))
      throw err(file, 'routes must be an object of node id -> host:port');
    for (const [node, addr] of Object.entries(o.routes as Record<string, unknown>)) {
      if (!NODE_ID_RE.test(node)) throw err(file, `routes: '${node}' is not a node id`);
      routes[node] = address(addr, file, `routes.${node}`);
    }
  }
  const heartbeatMs = ms(o, 'heartbeatMs', 250, 50, 60_000, file);
  const suspectAfterMs = ms(o, 'suspectAfterMs', 3000, 100, 600_000, file);
  if (suspectAfterMs <= heartbeatMs * 2)
    throw err(file, 'suspectAfterMs must be more than twice heartbeatMs');
  const reconnectMinMs = ms(o, 'reconnectMinMs', 50, 10, 60_000, file);
  const reconnectMaxMs = ms(o, 'reconnectMaxMs', 500, reconnectMinMs, 600_000, file);
  return {
    nodeId: o.nodeId,
    listen,
    advertise,
    seeds: seeds as string[],
    namespaces: namespaces as string[],
    tls: paths,
    allowedPeers,
    identity,
    routes,
    heartbeatMs,
    suspectAfterMs,
    reconnectMinMs,
    reconnectMaxMs,
  };
}

/** The same namespace rule as the federation component (a trailing `*` is a prefix). */
export function namespaceMatches(patterns: readonly string[], namespace: string): boolean {
  return patterns.some((p) =>
    p === '*' ? true : p.endsWith('*') ? namespace.startsWith(p.slice(0, -1)) : p === namespace,
  );
}
