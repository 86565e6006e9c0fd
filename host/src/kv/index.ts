/**
 * The one entry point to the host key-value layer: `openKv(config)` validates the config and opens the backend
 * it names. Backends are loaded on demand, so a kernel configured for one never loads the other's native
 * module or client.
 */
import { KvError } from './errors.js';
import type { KvConfig, KvStore } from './types.js';

export { KV_ERRORS, KvError, type KvErrorCode } from './errors.js';
export {
  KV_LIMITS,
  type KvBackendKind,
  type KvConfig,
  type KvEntry,
  type KvOp,
  type KvScanOptions,
  type KvStore,
} from './types.js';

export async function openKv(config: KvConfig): Promise<KvStore> {
  const checked = checkConfig(config);
  switch (checked.backend) {
    case 'embedded': {
      const { openEmbedded } = await import('./backend-embedded.js');
      return openEmbedded(checked.path);
    }
    case 'redis': {
      const { openRedis } = await import('./backend-redis.js');
      return openRedis(checked.url);
    }
    case 'redis-cluster': {
      const { openRedisCluster } = await import('./backend-redis.js');
      return openRedisCluster(checked.nodes);
    }
  }
}

type CheckedConfig =
  | { backend: 'embedded'; path: string }
  | { backend: 'redis'; url: string }
  | { backend: 'redis-cluster'; nodes: Array<{ host: string; port: number }> };

const FIELDS: Record<KvConfig['backend'], string[]> = {
  embedded: ['backend', 'path'],
  redis: ['backend', 'url'],
  'redis-cluster': ['backend', 'nodes'],
};

function bad(message: string): KvError {
  return new KvError('KV_ERR_CONFIG_INVALID', `kv config: ${message}`);
}

export function checkConfig(config: unknown): CheckedConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw bad('expected an object like { backend: "embedded", path: "..." }');
  }
  const c = config as Record<string, unknown>;
  const backend = c.backend;
  if (typeof backend !== 'string' || !Object.hasOwn(FIELDS, backend)) {
    throw bad(`backend must be one of ${Object.keys(FIELDS).join(', ')}; got ${JSON.stringify(backend)}`);
  }
  const allowed = FIELDS[backend as KvConfig['backend']];
  const unknown = Object.keys(c).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw bad(
      `unknown field(s) ${unknown.join(', ')} for backend '${backend}' (allowed: ${allowed.join(', ')})`,
    );
  }
  switch (backend) {
    case 'embedded': {
      if (typeof c.path !== 'string' || c.path.trim() === '') {
        throw bad('embedded backend needs path: a directory for the store (created if missing)');
      }
      return { backend, path: c.path };
    }
    case 'redis': {
      if (typeof c.url !== 'string') throw bad('redis backend needs url, e.g. "redis://127.0.0.1:6379"');
      let u: URL;
      try {
        u = new URL(c.url);
      } catch {
        throw bad(`redis url is not a URL: ${JSON.stringify(c.url)}`);
      }
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
        throw bad(`redis url must start with redis:// or rediss://, got ${u.protocol}//`);
      }
      return { backend, url: c.url };
    }
    default: {
      if (!Array.isArray(c.nodes) || c.nodes.length === 0) {
        throw bad('redis-cluster backend needs nodes: a non-empty array of "host:port" seed nodes');
      }
      return { backend: 'redis-cluster', nodes: c.nodes.map((n, i) => parseNode(n, i)) };
    }
  }
}

function parseNode(node: unknown, i: number): { host: string; port: number } {
  if (typeof node !== 'string') throw bad(`nodes[${i}] must be a "host:port" string, got ${typeof node}`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(node) ? node : `redis://${node}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw bad(`nodes[${i}] is not "host:port": ${JSON.stringify(node)}`);
  }
  if (u.protocol !== 'redis:' || u.pathname.replace(/^\//, '') !== '' || u.username || u.password) {
    throw bad(`nodes[${i}] must be "host:port" or "redis://host:port", got ${JSON.stringify(node)}`);
  }
  const port = Number(u.port);
  if (!u.hostname || !u.port || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`nodes[${i}] needs a host and a port in 1..65535, got ${JSON.stringify(node)}`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}
