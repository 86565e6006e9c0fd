import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { authConfigFrom } from './config.js';
import { DecisionLog } from './decisions.js';
import { AuthConfigError } from './errors.js';
import { RateLimiter } from './rate-limit.js';
import { allowsGroup, allowsNamespace, defaultScopes, parseScopes } from './scopes.js';
import { ensureSigningKey, issueToken, readSigningKey, TOKEN_ISSUER, TokenVerifier } from './tokens.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'cam-auth-unit-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('scopes', () => {
  it('gives an agent every group but admin and its own namespaces by default', () => {
    const s = defaultScopes('agent-a');
    expect(allowsGroup(s, 'context')).toBe(true);
    expect(allowsGroup(s, 'admin')).toBe(false);
    expect(allowsNamespace(s, 'agent-a')).toBe(true);
    expect(allowsNamespace(s, 'agent-a.notes')).toBe(true);
    expect(allowsNamespace(s, 'agent-ab')).toBe(false);
    expect(allowsNamespace(s, 'agent-b')).toBe(false);
  });

  it('matches exact, prefix and wildcard namespace grants; undefined is unrestricted', () => {
    expect(allowsNamespace(['ns:shared.*'], 'shared.x')).toBe(true);
    expect(allowsNamespace(['ns:shared.*'], 'shared')).toBe(false);
    expect(allowsNamespace(['ns:*'], 'anything')).toBe(true);
    expect(allowsNamespace(undefined, 'anything')).toBe(true);
    expect(allowsGroup(['group:*'], 'admin')).toBe(true);
  });

  it('rejects malformed scopes naming the bad one', () => {
    expect(() => parseScopes(['group:tasks', 'group:root'], 'x')).toThrow(
      /unknown syscall group in 'group:root'/,
    );
    expect(() => parseScopes(['ns:a b'], 'x')).toThrow(/'ns:a b' is not a scope/);
    expect(() => parseScopes('group:tasks', 'x')).toThrow(AuthConfigError);
  });
});

describe('rate limiter', () => {
  it('grants the burst, then refills at the rate, per identity', () => {
    let now = 0;
    const rl = new RateLimiter({ perSecond: 10, burst: 3 }, () => now);
    expect([rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([0, 0, 0]);
    expect(rl.take('a')).toBe(100);
    expect(rl.take('b')).toBe(0);
    now += 100;
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBeGreaterThan(0);
    now += 10_000;
    expect([rl.take('a'), rl.take('a'), rl.take('a'), rl.take('a')].filter((w) => w === 0)).toHaveLength(3);
  });
});

describe('decision log', () => {
  it('folds repeats within a second, keeps the newest first, and stays bounded', () => {
    const log = new DecisionLog(3);
    const e = { kind: 'rate-limited' as const, subject: 'a', peer: 'p', action: 'X', reason: 'r' };
    log.record(e, 1000);
    log.record(e, 1500);
    expect(log.query()).toMatchObject([{ count: 2, subject: 'a' }]);
    log.record(e, 3000);
    log.record({ ...e, subject: 'b' }, 3000);
    log.record({ ...e, kind: 'unauthenticated', subject: 'unknown' }, 3000);
    expect(log.size).toBe(3);
    expect(log.query({ subject: 'a' })).toHaveLength(1);
    expect(log.query({ kind: 'unauthenticated' })[0]?.subject).toBe('unknown');
    expect(log.query({ sinceMs: 2000 })).toHaveLength(3);
    expect(log.query({ limit: 1 })[0]?.kind).toBe('unauthenticated');
  });
});

describe('tokens', () => {
  it('creates the signing key once (0600) and verifies what it issues', async () => {
    const dir = tmp();
    expect(readSigningKey(dir)).toBeUndefined();
    const key = ensureSigningKey(dir);
    expect(ensureSigningKey(dir).kid).toBe(key.kid);
    const t = await issueToken(key, {
      agentId: 'agent-a',
      scopes: ['group:context', 'ns:agent-a'],
      ttlSeconds: 60,
    });
    const v = await new TokenVerifier(key.publicKey).verify(t.token);
    expect(v).toMatchObject({ agentId: 'agent-a', scopes: ['group:context', 'ns:agent-a'] });
  });

  it('refuses expired tokens, foreign audiences and bad agent ids', async () => {
    const key = ensureSigningKey(tmp());
    const verifier = new TokenVerifier(key.publicKey);
    const old = await issueToken(key, {
      agentId: 'a',
      ttlSeconds: 10,
      issuedAt: new Date(Date.now() - 60_000),
    });
    await expect(verifier.verify(old.token)).rejects.toThrow(/expired/);
    const other = await new SignJWT({ scope: '' })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience('somebody-else')
      .setSubject('a')
      .setExpirationTime('1h')
      .sign(key.privateKey);
    await expect(verifier.verify(other)).rejects.toThrow(/aud/);
    await expect(issueToken(key, { agentId: 'has space' })).rejects.toThrow(/agent id/);
    await expect(issueToken(key, { agentId: 'a', ttlSeconds: 0 })).rejects.toThrow(/lifetime/);
  });
});

describe('auth.json', () => {
  it('means development mode when absent and names a bad key or file when wrong', () => {
    const dir = tmp();
    expect(authConfigFrom(dir).mode).toBe('development');
    mkdirSync(join(dir, 'auth'), { recursive: true });
    writeFileSync(join(dir, 'auth', 'auth.json'), JSON.stringify({ jwt: true, color: 'red' }));
    expect(() => authConfigFrom(dir)).toThrow(/unknown key\(s\) color/);
    writeFileSync(join(dir, 'auth', 'auth.json'), JSON.stringify({ jwt: true }));
    expect(() => authConfigFrom(dir)).toThrow(/does not exist \(issue a token first\)/);
    writeFileSync(
      join(dir, 'auth', 'auth.json'),
      JSON.stringify({ tls: { cert: 'nope.crt', key: 'nope.key' } }),
    );
    expect(() => authConfigFrom(dir)).toThrow(/needs tls.clientCa/);
    writeFileSync(join(dir, 'auth', 'auth.json'), JSON.stringify({ rateLimit: { perSecond: -1 } }));
    expect(() => authConfigFrom(dir)).toThrow(/rateLimit.perSecond/);
    ensureSigningKey(dir);
    writeFileSync(
      join(dir, 'auth', 'auth.json'),
      JSON.stringify({ jwt: true, grants: { ops: ['group:*', 'ns:*'] } }),
    );
    const c = authConfigFrom(dir);
    expect(c).toMatchObject({ mode: 'authenticated', grants: { ops: ['group:*', 'ns:*'] } });
  });
});
