/**
 * JWT bearer tokens for agents (`authorization: Bearer <jwt>`), signed with an Ed25519 key that lives in
 * the data dir (`auth/jwt-signing-key.json`, mode 0600). A token carries the agent id (`sub`), its scopes
 * (`scope`, space-separated, see scopes.ts) and an expiry (`exp`, required); issuer and audience are
 * fixed so a token minted for something else is refused.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { AuthConfigError } from './errors.js';
import { defaultScopes, parseScopes } from './scopes.js';

export const TOKEN_ISSUER = 'cam-os';
export const TOKEN_AUDIENCE = 'cam-os-kernel';
export const SIGNING_KEY_FILE = join('auth', 'jwt-signing-key.json');
/** Tokens may live at most this long; shorter-lived tokens limit the damage of a leaked one. */
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const CLOCK_TOLERANCE_SECONDS = 5;
const AGENT_ID_RE = /^[A-Za-z0-9._:@-]{1,256}$/;

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

interface KeyFile {
  kid: string;
  jwk: JsonWebKey;
}

export function signingKeyPath(dataDir: string): string {
  return join(dataDir, SIGNING_KEY_FILE);
}

/** Read the signing key, or undefined when the data dir has none (JWT auth then stays off). */
export function readSigningKey(dataDir: string): SigningKey | undefined {
  const file = signingKeyPath(dataDir);
  if (!existsSync(file)) return undefined;
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
    const privateKey = createPrivateKey({ key: parsed.jwk, format: 'jwk' });
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
    return { kid: parsed.kid, privateKey, publicKey: createPublicKey(privateKey) };
  } catch (e) {
    throw new AuthConfigError(`${file} is not a valid JWT signing key: ${(e as Error).message}`);
  }
}

/** The signing key, created (atomically, mode 0600) on first use. */
export function ensureSigningKey(dataDir: string): SigningKey {
  const existing = readSigningKey(dataDir);
  if (existing) return existing;
  const file = signingKeyPath(dataDir);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const body: KeyFile = { kid: randomUUID(), jwk: privateKey.export({ format: 'jwk' }) };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(body)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return readSigningKey(dataDir)!;
}

export interface IssueTokenOptions {
  agentId: string;
  /** Defaults to defaultScopes(agentId). */
  scopes?: string[];
  ttlSeconds?: number;
  /** For tests of expiry; defaults to now. */
  issuedAt?: Date;
}

export interface IssuedToken {
  token: string;
  agentId: string;
  scopes: string[];
  expiresAt: Date;
}

export async function issueToken(key: SigningKey, opts: IssueTokenOptions): Promise<IssuedToken> {
  if (!AGENT_ID_RE.test(opts.agentId)) {
    throw new AuthConfigError(
      `agent id '${opts.agentId}' must be 1-256 characters of letters, digits and . _ : @ -`,
    );
  }
  const ttl = opts.ttlSeconds ?? 3600;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS) {
    throw new AuthConfigError(`token lifetime must be 1-${MAX_TOKEN_TTL_SECONDS} seconds, got ${ttl}`);
  }
  const scopes = opts.scopes ? parseScopes(opts.scopes, 'token') : defaultScopes(opts.agentId);
  const iat = Math.floor((opts.issuedAt ?? new Date()).getTime() / 1000);
  const token = await new SignJWT({ scope: scopes.join(' ') })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(opts.agentId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(key.privateKey);
  return { token, agentId: opts.agentId, scopes, expiresAt: new Date((iat + ttl) * 1000) };
}

export interface VerifiedToken {
  agentId: string;
  scopes: string[];
  expiresAtMs: number;
}

export class TokenError extends Error {
  override name = 'TokenError';
}

/**
 * Verifies bearer tokens. A verified token is cached until it expires (bounded), because agents send the
 * same token on every call and an Ed25519 verification costs more than a small syscall.
 */
export class TokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();

  constructor(
    private readonly publicKey: KeyObject,
    private readonly maxCache = 10_000,
  ) {}

  async verify(token: string): Promise<VerifiedToken> {
    const hit = this.cache.get(token);
    if (hit) {
      if (hit.expiresAtMs > Date.now() - CLOCK_TOLERANCE_SECONDS * 1000) return hit;
      this.cache.delete(token);
      throw new TokenError('the bearer token has expired');
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        algorithms: ['EdDSA'],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw new TokenError('the bearer token has expired');
      if (e instanceof joseErrors.JWTClaimValidationFailed) {
        throw new TokenError(`the bearer token's ${e.claim} claim is not acceptable`);
      }
      throw new TokenError('the bearer token is not valid (bad signature, format or algorithm)');
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || !AGENT_ID_RE.test(sub))
      throw new TokenError('the bearer token names no valid agent');
    let scopes: string[];
    try {
      scopes = parseScopes(
        typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
        'token',
      );
    } catch (e) {
      throw new TokenError((e as Error).message);
    }
    const verified: VerifiedToken = { agentId: sub, scopes, expiresAtMs: (payload.exp as number) * 1000 };
    if (this.cache.size >= this.maxCache) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(token, verified);
    return verified;
  }
}
