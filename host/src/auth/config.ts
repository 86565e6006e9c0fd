/**
 * How the kernel authenticates callers, read from `<data-dir>/auth/auth.json` by `authConfigFrom`.
 * Without that file the kernel runs in development mode: loopback only, and each call runs as the
 * caller_id it names.
 *
 * auth.json (every key optional; paths relative to `<data-dir>/auth/`):
 *   {
 *     "tls": { "cert": "tls/server.crt", "key": "tls/server.key",
 *              "clientCa": "tls/ca.crt", "clientAuth": "require" | "optional" | "none" },
 *     "jwt": true,                        // accept bearer tokens signed by auth/jwt-signing-key.json
 *     "grants": { "<agent-id>": ["group:context", "ns:shared.*"] },   // replaces the default scopes
 *     "rateLimit": { "perSecond": 20000, "burst": 40000 },             // per agent
 *     "sessionWindow": 128,               // in-flight calls granted to a streaming session
 *     "maxMessageBytes": 8388608
 *   }
 * `clientAuth` defaults to "optional" when jwt is on (a token or a client certificate identifies the
 * caller) and to "require" otherwise. Development mode is never allowed off loopback.
 */
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { isLoopback, parseListen } from '../server/config.js';
import { AuthConfigError } from './errors.js';
import { DEFAULT_RATE_LIMIT, type RateLimit } from './rate-limit.js';
import { parseScopes } from './scopes.js';
import { readSigningKey, signingKeyPath } from './tokens.js';

export type ClientAuth = 'require' | 'optional' | 'none';
export type AuthMode = 'development' | 'authenticated';

export interface TlsConfig {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer | undefined;
  clientAuth: ClientAuth;
}

export interface AuthConfig {
  mode: AuthMode;
  tls: TlsConfig | undefined;
  /** Verification key for bearer tokens; undefined = tokens are not accepted. */
  jwtPublicKey: KeyObject | undefined;
  /** Explicit scopes per agent id (replace defaultScopes). */
  grants: Record<string, string[]>;
  rateLimit: RateLimit;
  sessionWindow: number;
  maxMessageBytes: number;
}

export const AUTH_FILE = join('auth', 'auth.json');
export const DEFAULT_SESSION_WINDOW = 128;
export const MAX_SESSION_WINDOW = 4096;
/** 4 MiB of context data (the WIT limit) plus room for the rest of a message. */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const KEYS = ['tls', 'jwt', 'grants', 'rateLimit', 'sessionWindow', 'maxMessageBytes'];

export function developmentAuth(overrides: Partial<AuthConfig> = {}): AuthConfig {
  return {
    mode: 'development',
    tls: undefined,
    jwtPublicKey: undefined,
    grants: {},
    rateLimit: DEFAULT_RATE_LIMIT,
    sessionWindow: DEFAULT_SESSION_WINDOW,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    ...overrides,
  };
}

/** Read `<dataDir>/auth/auth.json` (absent = development mode). Errors name the file and the key. */
export function authConfigFrom(dataDir: string): AuthConfig {
  const file = join(dataDir, AUTH_FILE);
  if (!existsSync(file)) return developmentAuth();
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new AuthConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new AuthConfigError(`${file} must hold an object`);
  const unknown = Object.keys(raw).filter((k) => !KEYS.includes(k));
  if (unknown.length)
    throw new AuthConfigError(`${file}: unknown key(s) ${unknown.join(', ')} (allowed: ${KEYS.join(', ')})`);
  const authDir = join(dataDir, 'auth');
  const read = (p: unknown, what: string): Buffer => {
    if (typeof p !== 'string' || p === '') throw new AuthConfigError(`${file}: ${what} must be a file path`);
    const abs = isAbsolute(p) ? p : join(authDir, p);
    try {
      return readFileSync(abs);
    } catch {
      throw new AuthConfigError(`${file}: ${what} ${abs} cannot be read`);
    }
  };

  let jwtPublicKey: KeyObject | undefined;
  if (raw.jwt !== undefined && typeof raw.jwt !== 'boolean')
    throw new AuthConfigError(`${file}: jwt must be true or false`);
  if (raw.jwt === true) {
    const key = readSigningKey(dataDir);
    if (!key)
      throw new AuthConfigError(
        `${file}: jwt is on but ${signingKeyPath(dataDir)} does not exist (issue a token first)`,
      );
    jwtPublicKey = key.publicKey;
  }

  let tls: TlsConfig | undefined;
  if (raw.tls !== undefined && raw.tls !== false) {
    const t = raw.tls as Record<string, unknown>;
    if (!t || typeof t !== 'object') throw new AuthConfigError(`${file}: tls must be an object or false`);
    const clientCa = t.clientCa === undefined ? undefined : read(t.clientCa, 'tls.clientCa');
    const clientAuth = (t.clientAuth ?? (jwtPublicKey ? 'optional' : 'require')) as ClientAuth;
    if (!['require', 'optional', 'none'].includes(clientAuth)) {
      throw new AuthConfigError(`${file}: tls.clientAuth must be require, optional or none`);
    }
    if (clientAuth !== 'none' && !clientCa) {
      throw new AuthConfigError(
        `${file}: tls.clientAuth '${clientAuth}' needs tls.clientCa (the CA that signs client certificates)`,
      );
    }
    tls = { cert: read(t.cert, 'tls.cert'), key: read(t.key, 'tls.key'), clientCa, clientAuth };
  }

  const grants: Record<string, string[]> = {};
  if (raw.grants !== undefined) {
    if (!raw.grants || typeof raw.grants !== 'object' || Array.isArray(raw.grants)) {
      throw new AuthConfigError(`${file}: grants must map agent ids to scope lists`);
    }
    for (const [agent, scopes] of Object.entries(raw.grants))
      grants[agent] = parseScopes(scopes, `${file}: grants.${agent}`);
  }

  const positive = (v: unknown, what: string, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) {
      throw new AuthConfigError(`${file}: ${what} must be a number above 0 and at most ${max}`);
    }
    return v;
  };
  const rl = (raw.rateLimit ?? {}) as Record<string, unknown>;
  const rateLimit = {
    perSecond: positive(rl.perSecond, 'rateLimit.perSecond', 1e7, DEFAULT_RATE_LIMIT.perSecond),
    burst: Math.floor(positive(rl.burst, 'rateLimit.burst', 1e7, DEFAULT_RATE_LIMIT.burst)),
  };
  const mtls = tls !== undefined && tls.clientAuth !== 'none';
  return {
    mode: jwtPublicKey || mtls ? 'authenticated' : 'development',
    tls,
    jwtPublicKey,
    grants,
    rateLimit,
    sessionWindow: Math.floor(
      positive(raw.sessionWindow, 'sessionWindow', MAX_SESSION_WINDOW, DEFAULT_SESSION_WINDOW),
    ),
    maxMessageBytes: Math.floor(
      positive(raw.maxMessageBytes, 'maxMessageBytes', 64 * 1024 * 1024, DEFAULT_MAX_MESSAGE_BYTES),
    ),
  };
}

/** Merge `patch` into auth.json (creating it), for the operator helpers. */
export function updateAuthFile(dataDir: string, patch: Record<string, unknown>): string {
  const file = join(dataDir, AUTH_FILE);
  const current = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(file, `${JSON.stringify({ ...current, ...patch }, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/**
 * Refuse combinations that would expose the kernel: plaintext anywhere but loopback, and development
 * mode (caller_id taken on trust) anywhere but loopback.
 */
export function checkListen(auth: AuthConfig, listen: string): void {
  const { host } = parseListen(listen);
  if (isLoopback(host)) return;
  if (!auth.tls) {
    throw new AuthConfigError(
      `refusing to listen on ${listen} without TLS: plaintext is only allowed on loopback`,
    );
  }
  if (auth.mode === 'development') {
    throw new AuthConfigError(
      `refusing to listen on ${listen} in development mode: configure client certificates or JWT in auth/auth.json`,
    );
  }
}

/** The listener's credentials: insecure without TLS (loopback only, see checkListen), else TLS/mTLS. */
export function serverCredentials(auth: AuthConfig): grpc.ServerCredentials {
  const tls = auth.tls;
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const pair = [{ private_key: tls.key, cert_chain: tls.cert }];
  if (tls.clientAuth === 'none') return grpc.ServerCredentials.createSsl(null, pair, false);
  if (tls.clientAuth === 'require') return grpc.ServerCredentials.createSsl(tls.clientCa!, pair, true);
  // Optional client certificates: request one, verify it against the CA when sent, but let callers
  // without one through to bearer-token authentication. createSsl cannot express this.
  // One provider serves both roles: grpc-js 1.14's factory passes its (ca, identity) arguments to a
  // constructor declared (identity, ca), so separate providers would land in each other's place.
  const both = staticProvider(
    { caCertificate: tls.clientCa! },
    { certificate: tls.cert, privateKey: tls.key },
  );
  return grpc.experimental.createCertificateProviderServerCredentials(both, both, false);
}

function staticProvider(
  ca?: grpc.experimental.CaCertificateUpdate,
  identity?: grpc.experimental.IdentityCertificateUpdate,
): grpc.experimental.CertificateProvider {
  // Deliver asynchronously: grpc-js registers its watcher only after adding the listener, so a
  // synchronous update would reach nobody and the listener would never get a TLS context.
  return {
    addCaCertificateListener: (l) => setImmediate(() => l(ca ?? null)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => setImmediate(() => l(identity ?? null)),
    removeIdentityCertificateListener: () => {},
  };
}

/** gRPC server options that follow the auth config (message size limits on both directions). */
export function serverOptions(auth: AuthConfig): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': auth.maxMessageBytes,
    'grpc.max_send_message_length': auth.maxMessageBytes,
  };
}
