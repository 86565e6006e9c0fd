/**
 * Real redis-server instances for tests and benchmarks: each on a private port with its own state dir,
 * daemonized with a pid file and stopped by that pid (never by name). Returns null when redis-server is not
 * installed, except in CI (CI=true), where that throws.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  freePort,
  isProcessAlive,
  makeTempDir,
  readPidFile,
  removeDir,
  requireBinary,
  stopPid,
  tailFile,
  waitUntil,
} from './service.js';

const execFileP = promisify(execFile);

export interface RedisStartOptions {
  /** `--appendonly yes --appendfsync always`: every acknowledged write is fsynced to the AOF. Default off. */
  aof?: boolean;
}

export interface RedisInstance {
  url: string;
  port: number;
  dir: string;
  /** Stops the server (SIGTERM, or SIGKILL to simulate a crash) and keeps its state dir for `restart`. */
  halt(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts the server again on the same port and state dir. */
  restart(): Promise<void>;
  /** Stops the server and removes its state dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisClusterInstance {
  /** `host:port` of every master. */
  nodes: string[];
  dir: string;
  stop(): Promise<void>;
}

function binaries(purpose: string): { server: string; cli: string } | null {
  const server = requireBinary('redis-server', purpose);
  const cli = requireBinary('redis-cli', purpose);
  return server && cli ? { server, cli } : null;
}

export async function startRedis(opts: RedisStartOptions = {}): Promise<RedisInstance | null> {
  const bin = binaries('a standalone Redis test server');
  if (!bin) return null;
  const dir = await makeTempDir('camos-redis');
  const extra = opts.aof
    ? ['--appendonly', 'yes', '--appendfsync', 'always']
    : ['--save', '', '--appendonly', 'no'];
  let node: RedisNode;
  try {
    node = await startNodeOnFreePort(bin.server, dir, extra, []);
  } catch (e) {
    await removeDir(dir);
    throw e;
  }
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${node.port}`,
    port: node.port,
    dir,
    halt: (signal = 'SIGTERM') => node.halt(signal),
    restart: async () => {
      if (stopped) throw new Error('redis instance was stopped; start a new one');
      await node.halt('SIGTERM');
      await node.start();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await node.halt('SIGTERM');
      await removeDir(dir);
    },
  };
}

/** Three masters, no replicas, all 16384 slots assigned; resolves once every node reports cluster_state:ok. */
export async function startRedisCluster(): Promise<RedisClusterInstance | null> {
  const bin = binaries('a Redis Cluster test deployment');
  if (!bin) return null;
  const dir = await makeTempDir('camos-redis-cluster');
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.halt('SIGTERM')));
    await removeDir(dir);
  };
  try {
    for (let i = 0; i < 3; i++) {
      const nodeDir = join(dir, `node${i}`);
      await mkdir(nodeDir);
      nodes.push(
        await startNodeOnFreePort(
          bin.server,
          nodeDir,
          ['--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-node-timeout', '5000'],
          // The cluster bus listens on port + 10000.
          [10000],
          (port) => ['--cluster-config-file', `nodes-${port}.conf`],
        ),
      );
    }
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    try {
      await execFileP(
        bin.cli,
        ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'],
        {
          timeout: 30_000,
        },
      );
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(
        `redis-cli --cluster create failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
      );
    }
    for (const n of nodes) {
      await waitUntil(
        `cluster_state:ok on 127.0.0.1:${n.port}`,
        async () => {
          const info = await redisCommand(n.port, ['CLUSTER', 'INFO']);
          return (
            info.includes('cluster_state:ok') &&
            info.includes('cluster_slots_assigned:16384') &&
            info.includes('cluster_known_nodes:3')
          );
        },
        { timeoutMs: 30_000, explain: () => tailFile(n.logFile) },
      );
    }
    return { nodes: addrs, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

interface RedisNode {
  port: number;
  logFile: string;
  start(): Promise<void>;
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

/** Picks a free port and starts a node there, retrying with another port if it lost the race for it. */
async function startNodeOnFreePort(
  server: string,
  dir: string,
  extra: string[],
  alsoFree: number[],
  perPort: (port: number) => string[] = () => [],
): Promise<RedisNode> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort({ alsoFree });
    const node = redisNode(server, dir, port, [...extra, ...perPort(port)]);
    try {
      await node.start();
      return node;
    } catch (e) {
      lastError = e;
      await node.halt('SIGKILL');
    }
  }
  throw lastError;
}

function redisNode(server: string, dir: string, port: number, extra: string[]): RedisNode {
  const pidFile = join(dir, 'redis.pid');
  const logFile = join(dir, 'redis.log');
  let pid: number | undefined;
  return {
    port,
    logFile,
    async start() {
      // A pid file left by a killed server would otherwise be mistaken for the new server's.
      await rm(pidFile, { force: true });
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--daemonize',
        'yes',
        '--pidfile',
        pidFile,
        '--dir',
        dir,
        '--logfile',
        logFile,
        ...extra,
      ];
      await execFileP(server, args, { timeout: 10_000 });
      // The launcher returns once it has forked: the server may still fail (e.g. port taken), so wait for
      // both its pid file and a PONG, and report its log otherwise.
      pid = await waitUntil(`redis-server pid file ${pidFile}`, () => readPidFile(pidFile), {
        explain: () => tailFile(logFile),
      });
      const started = pid;
      await waitUntil(
        `redis-server on 127.0.0.1:${port} to answer PING`,
        async () => {
          if (!isProcessAlive(started)) throw new Error(`redis-server (pid ${started}) exited`);
          return (await redisCommand(port, ['PING'])) === 'PONG';
        },
        { explain: () => tailFile(logFile) },
      );
    },
    async halt(signal) {
      const target = pid ?? (await readPidFile(pidFile));
      pid = undefined;
      if (target !== undefined) await stopPid(target, { signal });
    },
  };
}

/**
 * One command over a fresh connection, for readiness probes: returns a status or bulk reply as a string and
 * rejects on an error reply. Kept dependency-free so the harness does not rely on the client under test.
 */
export function redisCommand(port: number, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, value?: string) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? '');
    };
    const timer = setTimeout(
      () => done(new Error(`no reply from 127.0.0.1:${port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (e) => done(e));
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const head = buf.toString('utf8', 1, eol);
      switch (buf[0]) {
        case 0x2b: // '+'
        case 0x3a: // ':'
          return done(null, head);
        case 0x2d: // '-'
          return done(new Error(`redis error reply: ${head}`));
        case 0x24: {
          // '$'
          const len = Number.parseInt(head, 10);
          if (len < 0) return done(null, '');
          if (buf.length < eol + 2 + len + 2) return;
          return done(null, buf.toString('utf8', eol + 2, eol + 2 + len));
        }
        default:
          return done(new Error(`unexpected reply from 127.0.0.1:${port}: ${JSON.stringify(head)}`));
      }
    });
  });
}
