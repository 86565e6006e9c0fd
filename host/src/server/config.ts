/**
 * Kernel configuration: embedded defaults that need no external server, overridable by flags, by
 * environment (CAM_OS_*) and by `<data-dir>/config.json`. Every value is validated, and an error names
 * the key and the source it came from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { KernelError } from '../errors.js';
import { type FederationConfig, parseFederationConfig } from '../federation/config.js';
import { UNARY_CALLS_PER_TURN } from '../grpc/turn-gate.js';
import { DEFAULT_TRACE_SAMPLE_RATIO } from '../observability/tracing.js';

export interface KernelConfig {
  dataDir: string;
  /** host:port of the gRPC listener. Plaintext is only allowed on loopback. */
  listen: string;
  /** Context memory backend. */
  kv:
    | { backend: 'embedded' }
    | { backend: 'redis'; url: string }
    | { backend: 'redis-cluster'; nodes: string[] };
  /**
   * TPM 2.0: a TCTI string (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`), or 'none'. The default,
   * 'auto', uses /dev/tpmrm0 when it exists. Without a TPM the kernel runs in an explicit no-TPM mode.
   */
  tpm: string;
  /** Development escape hatch: accept unsigned components / unknown publishers (shown loudly in status). */
  devMode: boolean;
  /** Operator policy: import patterns a component may be granted (`*` wildcards). */
  allowedImports: string[];
  /**
   * host:port of the HTTP listener (dashboard, /metrics, /healthz, /traces), or 'off'. Plaintext only on
   * loopback, like gRPC. Default: the gRPC host with the next port (port 0 stays 0).
   */
  http?: string;
  /** Share of new traces recorded, 0 to 1 (default 1; calls with a `traceparent` follow its flag). */
  traceSampleRatio?: number;
  /** Replication between kernels (docs/federation.md); absent = this kernel does not federate. */
  federation?: FederationConfig;
  /**
   * Answer queries (ContextRead, ContextVersionList) on each component's replica on the kernel thread
   * (host/src/runtime/replica.ts). Default true; false sends every call to the component's worker.
   */
  queryReplicas?: boolean;
  /**
   * Unary gRPC calls the kernel starts per event-loop turn before it lets their answers go out
   * (host/src/grpc/turn-gate.ts). Default 4; 0 starts every call at once.
   */
  unaryCallsPerTurn?: number;
}

export const DEFAULT_ALLOWED_IMPORTS = [
  'cam:kernel/*',
  'wasi:cli/exit@*',
  'wasi:cli/environment@*',
  'wasi:random/*',
  'wasi:clocks/*',
  'wasi:io/poll@*',
];

export const DEFAULT_PORT = 50051;

export function defaultDataDir(env = process.env): string {
  if (env.CAM_OS_DATA_DIR) return resolve(env.CAM_OS_DATA_DIR);
  const base =
    env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME)
      ? env.XDG_DATA_HOME
      : join(homedir(), '.local', 'share');
  return join(base, 'cam-os');
}

export interface ConfigOverrides {
  dataDir?: string;
  listen?: string;
  tpm?: string;
  devMode?: boolean;
  http?: string;
}

const FILE_KEYS = [
  'listen',
  'kv',
  'tpm',
  'devMode',
  'allowedImports',
  'http',
  'federation',
  'traceSampleRatio',
  'queryReplicas',
  'unaryCallsPerTurn',
];

export function loadConfig(overrides: ConfigOverrides = {}, env = process.env): KernelConfig {
  const dataDir = resolve(overrides.dataDir ?? defaultDataDir(env));
  const file = join(dataDir, 'config.json');
  let fromFile: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw configError(`${file} is not valid JSON: ${(e as Error).message}`);
    }
    if (!fromFile || typeof fromFile !== 'object' || Array.isArray(fromFile))
      throw configError(`${file} must hold a JSON object`);
    const unknown = Object.keys(fromFile).filter((k) => !FILE_KEYS.includes(k));
    if (unknown.length) {
      throw configError(`${file}: unknown key(s) ${unknown.join(', ')} (allowed: ${FILE_KEYS.join(', ')})`);
    }
  }
  const listen =
    overrides.listen ??
    env.CAM_OS_LISTEN ??
    (fromFile.listen as string | undefined) ??
    `127.0.0.1:${DEFAULT_PORT}`;
  parseListen(listen);
  const kv = parseKv(fromFile.kv ?? { backend: 'embedded' }, file);
  const tpm = overrides.tpm ?? env.CAM_OS_TPM ?? (fromFile.tpm as string | undefined) ?? 'auto';
  if (typeof tpm !== 'string' || tpm.length === 0)
    throw configError(`${file}: tpm must be 'auto', 'none' or a TCTI string`);
  const devFromEnv = env.CAM_OS_DEV === '1' || env.CAM_OS_DEV === 'true';
  const devMode = overrides.devMode ?? (devFromEnv || fromFile.devMode === true);
  if (fromFile.devMode !== undefined && typeof fromFile.devMode !== 'boolean')
    throw configError(`${file}: devMode must be true or false`);
  const allowedImports = fromFile.allowedImports ?? DEFAULT_ALLOWED_IMPORTS;
  if (!Array.isArray(allowedImports) || allowedImports.some((p) => typeof p !== 'string' || p.length === 0)) {
    throw configError(`${file}: allowedImports must be a list of interface patterns like "cam:kernel/*"`);
  }
  const http =
    overrides.http ?? env.CAM_OS_HTTP ?? (fromFile.http as string | undefined) ?? defaultHttp(listen);
  if (typeof http !== 'string') throw configError(`${file}: http must be a host:port string or 'off'`);
  if (http !== 'off') parseListen(http);
  const ratioRaw = env.CAM_OS_TRACE_SAMPLE ?? fromFile.traceSampleRatio ?? DEFAULT_TRACE_SAMPLE_RATIO;
  const traceSampleRatio =
    typeof ratioRaw === 'string' && ratioRaw.trim() !== '' ? Number(ratioRaw) : ratioRaw;
  if (typeof traceSampleRatio !== 'number' || !(traceSampleRatio >= 0 && traceSampleRatio <= 1)) {
    throw configError(
      `traceSampleRatio (from ${env.CAM_OS_TRACE_SAMPLE !== undefined ? 'CAM_OS_TRACE_SAMPLE' : file}) must be a number from 0 to 1, got ${JSON.stringify(ratioRaw)}`,
    );
  }
  const federation =
    fromFile.federation === undefined ? undefined : parseFederationConfig(fromFile.federation, file, dataDir);
  const queryReplicas = fromFile.queryReplicas ?? true;
  if (typeof queryReplicas !== 'boolean') throw configError(`${file}: queryReplicas must be true or false`);
  const unaryCallsPerTurn = fromFile.unaryCallsPerTurn ?? UNARY_CALLS_PER_TURN;
  if (
    typeof unaryCallsPerTurn !== 'number' ||
    !Number.isInteger(unaryCallsPerTurn) ||
    unaryCallsPerTurn < 0
  ) {
    throw configError(
      `${file}: unaryCallsPerTurn must be a whole number, 0 or more (0: no pacing), got ${JSON.stringify(unaryCallsPerTurn)}`,
    );
  }
  return {
    dataDir,
    listen,
    kv,
    tpm,
    devMode,
    allowedImports: allowedImports as string[],
    http,
    traceSampleRatio,
    federation,
    queryReplicas,
    unaryCallsPerTurn,
  };
}

/** The HTTP listener next to a gRPC listen address: same host, next port (0, an ephemeral port, stays 0). */
export function defaultHttp(listen: string): string {
  const { host, port } = parseListen(listen);
  if (port === 65535)
    throw configError(`no port after ${listen} for the HTTP listener: set http (or CAM_OS_HTTP)`);
  return `${host}:${port === 0 ? 0 : port + 1}`;
}

export function parseListen(listen: string): { host: string; port: number; loopback: boolean } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535)
    throw configError(`listen address '${listen}' must be host:port (e.g. 127.0.0.1:${DEFAULT_PORT})`);
  const host = m[1]!;
  return { host, port, loopback: isLoopback(host) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function parseKv(v: unknown, file: string): KernelConfig['kv'] {
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== 'object') throw configError(`${file}: kv must be an object`);
  if (o.backend === 'embedded') return { backend: 'embedded' };
  if (o.backend === 'redis') {
    if (typeof o.url !== 'string' || !/^rediss?:\/\//.test(o.url))
      throw configError(`${file}: kv.url must be a redis:// URL`);
    return { backend: 'redis', url: o.url };
  }
  if (o.backend === 'redis-cluster') {
    if (!Array.isArray(o.nodes) || o.nodes.length === 0 || o.nodes.some((n) => typeof n !== 'string')) {
      throw configError(`${file}: kv.nodes must be a non-empty list of host:port strings`);
    }
    return { backend: 'redis-cluster', nodes: o.nodes as string[] };
  }
  throw configError(`${file}: kv.backend must be 'embedded', 'redis' or 'redis-cluster'`);
}

function configError(msg: string): KernelError {
  return new KernelError('KERNEL_ERR_CONFIG_INVALID', msg);
}
