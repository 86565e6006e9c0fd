/**
 * The Redis backends (ioredis): standalone and Redis Cluster share one implementation, since every command
 * touches one partition and a partition lives in one hash slot.
 *
 * Layout per partition P (the hash tag `{P'}` puts both keys in one slot; P' is P with '%', '{' and '}'
 * percent-escaped so a brace in a partition name cannot move the tag):
 *   camkv:{P'}:v  hash    key bytes → value bytes
 *   camkv:{P'}:i  zset    every key, score 0, so ZRANGEBYLEX orders members by raw bytes (memcmp), the same
 *                         byte-lexicographic order as the embedded backend.
 *
 * Writes and scans run as Lua scripts, which Redis executes atomically: a batch updates hash and index
 * together, and a scan reads index and values from one snapshot. The batch script checks both key types
 * before its first write and all inputs are validated client-side, so once it starts writing no command of
 * it can fail; declared with a `#!lua` shebang (Redis >= 7.0), it is refused as a whole, before any write,
 * when the server is out of memory. Together that gives all-or-nothing batches without rollback.
 *
 * Durability is the server's: a batch resolves when Redis has applied it, and it is on disk at that moment
 * only with `appendonly yes` + `appendfsync always` (everysec can lose ~1 s of acknowledged writes on a crash
 * of the server host; no persistence loses everything on restart). Replication to replicas is asynchronous.
 */
import { Cluster, Redis } from 'ioredis';
import { KvError } from './errors.js';
import type { KvEntry, KvOp, KvScanOptions, KvStore } from './types.js';
import { asUint8Array, checkKey, checkKeys, checkOps, checkPartition, checkScan } from './validate.js';

const BATCH_LUA = `#!lua
local h, z = KEYS[1], KEYS[2]
local th = redis.call('TYPE', h)['ok']
if th ~= 'hash' and th ~= 'none' then return redis.error_reply('KVTYPE ' .. h .. ' holds a ' .. th) end
local tz = redis.call('TYPE', z)['ok']
if tz ~= 'zset' and tz ~= 'none' then return redis.error_reply('KVTYPE ' .. z .. ' holds a ' .. tz) end
local i, n = 1, #ARGV
while i <= n do
  if ARGV[i] == 'p' then
    redis.call('HSET', h, ARGV[i + 1], ARGV[i + 2])
    redis.call('ZADD', z, 0, ARGV[i + 1])
    i = i + 3
  else
    redis.call('HDEL', h, ARGV[i + 1])
    redis.call('ZREM', z, ARGV[i + 1])
    i = i + 2
  end
end
return n`;

// ARGV: direction ('f' | 'r'), lex min, lex max, limit. Returns key1, value1, key2, value2, ...
// HMGET is chunked because Lua's unpack() cannot spread ~8000+ values.
const SCAN_LUA = `#!lua flags=no-writes
local members
if ARGV[1] == 'f' then
  members = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[2], ARGV[3], ARGV[2], 'LIMIT', 0, ARGV[4])
end
local out = {}
local n = #members
local from = 1
while from <= n do
  local to = math.min(from + 999, n)
  local values = redis.call('HMGET', KEYS[1], unpack(members, from, to))
  for j = from, to do
    local v = values[j - from + 1]
    if not v then return redis.error_reply('KVINDEX ' .. KEYS[2] .. ' lists a key that has no value') end
    out[2 * j - 1] = members[j]
    out[2 * j] = v
  end
  from = to + 1
end
return out`;

type Client = Redis | Cluster;

interface Scripts {
  kvBatch(hash: string, index: string, ...args: (string | Buffer)[]): Promise<number>;
  kvScanBuffer(hash: string, index: string, ...args: (string | Buffer)[]): Promise<Buffer[]>;
}

const RETRIES_PER_REQUEST = 3;

export async function openRedis(url: string): Promise<KvStore> {
  const where = redactUrl(url);
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: RETRIES_PER_REQUEST,
    enableAutoPipelining: true,
  });
  return connectAndCheck(client, 'redis', where);
}

export async function openRedisCluster(nodes: Array<{ host: string; port: number }>): Promise<KvStore> {
  const where = `cluster ${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const client = new Cluster(nodes, {
    lazyConnect: true,
    enableAutoPipelining: true,
    maxRedirections: 16,
    // Without this, an unreachable cluster is retried forever and connect() never settles.
    clusterRetryStrategy: (attempt) => (attempt > 3 ? null : 100 * attempt),
    redisOptions: { maxRetriesPerRequest: RETRIES_PER_REQUEST },
  });
  return connectAndCheck(client, 'redis-cluster', where);
}

async function connectAndCheck(client: Client, kind: RedisKv['kind'], where: string): Promise<KvStore> {
  // ioredis reports the cause (e.g. ECONNREFUSED) only as an 'error' event and rejects connect() with a bare
  // "Connection is closed": keep the cause for the message. The listener also stops ioredis from printing
  // every reconnect attempt's error.
  let lastError: Error | undefined;
  client.on('error', (e: Error) => {
    lastError = e;
  });
  try {
    await client.connect();
    const info = await (client instanceof Cluster ? client.nodes('master')[0]! : client).info('server');
    const version = /redis_version:(\d+)\.(\d+)/.exec(info);
    if (!version || Number(version[1]) < 7) {
      throw new KvError(
        'KV_ERR_UNAVAILABLE',
        `${where} runs Redis ${version ? `${version[1]}.${version[2]}` : '(unknown version)'}; the kv backend needs >= 7.0 (script flags)`,
      );
    }
  } catch (e) {
    client.disconnect();
    if (e instanceof KvError) throw e;
    const why =
      lastError && lastError !== e ? `${(e as Error).message} (${lastError.message})` : (e as Error).message;
    throw new KvError('KV_ERR_UNAVAILABLE', `cannot connect to ${where}: ${why}`, { cause: e });
  }
  client.defineCommand('kvBatch', { numberOfKeys: 2, lua: BATCH_LUA });
  client.defineCommand('kvScan', { numberOfKeys: 2, lua: SCAN_LUA, readOnly: true });
  return new RedisKv(client, kind, where);
}

class RedisKv implements KvStore {
  readonly kind: 'redis' | 'redis-cluster';
  readonly #client: Client;
  readonly #scripts: Scripts;
  readonly #where: string;
  #closing: Promise<void> | undefined;

  constructor(client: Client, kind: 'redis' | 'redis-cluster', where: string) {
    this.#client = client;
    this.#scripts = client as unknown as Scripts;
    this.kind = kind;
    this.#where = where;
  }

  async get(partition: string, key: string): Promise<Uint8Array | undefined> {
    const { hash } = names(checkPartition(partition));
    const k = checkKey(key);
    this.#checkOpen();
    const v = await this.#call('get', () => this.#client.hgetBuffer(hash, k));
    return v === null ? undefined : asUint8Array(v);
  }

  async getMany(partition: string, keys: string[]): Promise<(Uint8Array | undefined)[]> {
    const { hash } = names(checkPartition(partition));
    const ks = checkKeys(keys);
    this.#checkOpen();
    if (ks.length === 0) return [];
    const vs = await this.#call('getMany', () => this.#client.hmgetBuffer(hash, ...ks));
    return vs.map((v) => (v === null ? undefined : asUint8Array(v)));
  }

  async batch(partition: string, ops: KvOp[]): Promise<void> {
    const { hash, index } = names(checkPartition(partition));
    const checked = checkOps(ops);
    this.#checkOpen();
    if (checked.length === 0) return;
    const args: (string | Buffer)[] = [];
    for (const op of checked) {
      if (op.op === 'put') args.push('p', op.key, op.value);
      else args.push('d', op.key);
    }
    await this.#call('batch', () => this.#scripts.kvBatch(hash, index, ...args));
  }

  async scan(partition: string, opts: KvScanOptions): Promise<KvEntry[]> {
    const { hash, index } = names(checkPartition(partition));
    const s = checkScan(opts);
    this.#checkOpen();
    if (s.empty) return [];
    const min = s.lower ? Buffer.concat([Buffer.from(s.lower.inclusive ? '[' : '('), s.lower.bytes]) : '-';
    const max = s.upper ? Buffer.concat([Buffer.from('('), s.upper]) : '+';
    const flat = await this.#call('scan', () =>
      this.#scripts.kvScanBuffer(hash, index, s.reverse ? 'r' : 'f', min, max, String(s.limit)),
    );
    const out: KvEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      out.push({ key: flat[i]!.toString('utf8'), value: asUint8Array(flat[i + 1]!) });
    }
    return out;
  }

  close(): Promise<void> {
    this.#closing ??= this.#client.quit().then(
      () => undefined,
      // quit fails only when the connection is already gone, which is what close wants anyway.
      () => this.#client.disconnect(),
    );
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing) throw new KvError('KV_ERR_CLOSED', `${this.kind} store at ${this.#where} is closed`);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      // Reply errors are the server refusing the command; anything else is the connection.
      const code = (e as Error).name === 'ReplyError' ? 'KV_ERR_BACKEND' : 'KV_ERR_UNAVAILABLE';
      throw new KvError(code, `${this.kind} store at ${this.#where}: ${what} failed: ${msg}`, { cause: e });
    }
  }
}

function names(partition: Buffer): { hash: string; index: string } {
  const tag = partition
    .toString('utf8')
    .replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return { hash: `camkv:{${tag}}:v`, index: `camkv:{${tag}}:i` };
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
