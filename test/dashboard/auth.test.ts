/**
 * The dashboard's actions in authenticated mode (auth.json with JWT): the same admin rule as the gRPC
 * AdminService — no credentials is 401, a token without group:admin is 403, an admin token (as a bearer or
 * exchanged for the session cookie) gets through to the kernel. A real kernel from boot() on loopback; no
 * system components are needed to check who may act.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSigningKey, issueToken } from '../../host/src/auth/tokens.js';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { loadConfig } from '../../host/src/server/config.js';

describe('dashboard actions in authenticated mode', () => {
  let dataDir: string;
  let k: BootedKernel;
  let url: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cam-dash-auth-'));
    const key = ensureSigningKey(dataDir);
    writeFileSync(join(dataDir, 'auth', 'auth.json'), JSON.stringify({ jwt: true }));
    tokens.admin = (await issueToken(key, { agentId: 'ops', scopes: ['group:admin'] })).token;
    tokens.agent = (await issueToken(key, { agentId: 'agent-a', scopes: ['group:context'] })).token;
    k = await boot(loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {}), {
      systemComponents: false,
      log: () => {},
    });
    if (!k.dashboard) throw new Error('boot started no HTTP listener');
    url = k.dashboard.url;
  });

  afterAll(async () => {
    await k?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(new URL(path, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('answers 401 without credentials and 403 for a token without group:admin', async () => {
    expect(k.authMode).toBe('authenticated');
    const none = await post('/api/components/memory/rollback', {});
    expect(none.status).toBe(401);
    const agent = await post(
      '/api/components/memory/rollback',
      {},
      { authorization: `Bearer ${tokens.agent}` },
    );
    expect(agent.status).toBe(403);
    expect((await agent.json()).error).toMatch(/group:admin/);
    const login = await post('/api/login', { token: tokens.agent });
    expect(login.status).toBe(403);
    expect(login.headers.get('set-cookie')).toBeNull();
    expect((await post('/api/login', { token: 'not-a-jwt' })).status).toBe(401);
  });

  it('keeps decisions, traces and the component API for operators; /metrics and /healthz stay open', async () => {
    for (const path of ['/api/overview', '/api/decisions', '/traces', '/api/rates']) {
      const res = await fetch(new URL(path, url));
      expect(res.status, path).toBe(401);
    }
    const admin = await fetch(new URL('/api/overview', url), {
      headers: { authorization: `Bearer ${tokens.admin}` },
    });
    expect(admin.status).toBe(200);
    expect(await admin.json()).toMatchObject({ auth_mode: 'authenticated', components: [] });
    expect((await fetch(new URL('/metrics', url))).status).toBe(200);
    expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    expect((await fetch(new URL('/', url))).status).toBe(200);
  });

  it('lets an admin token through, as a bearer or as the session cookie', async () => {
    const bearer = await post(
      '/api/components/memory/rollback',
      {},
      { authorization: `Bearer ${tokens.admin}` },
    );
    // Past authorisation, the kernel answers: nothing named memory is loaded here.
    expect(bearer.status).toBe(404);
    expect((await bearer.json()).error).toMatch(/no component named 'memory'/);
    const login = await post('/api/login', { token: tokens.admin });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^cam_os_session=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=\//);
    const session = cookie.split(';')[0]!;
    const status = await fetch(new URL('/api/session', url), { headers: { cookie: session } });
    expect(await status.json()).toMatchObject({
      authenticated: true,
      operator: 'ops',
      mode: 'authenticated',
    });
    const viaCookie = await post('/api/components/memory/rollback', {}, { cookie: session });
    expect(viaCookie.status).toBe(404);
    await post('/api/logout', {}, { cookie: session });
    expect((await post('/api/components/memory/rollback', {}, { cookie: session })).status).toBe(401);
  });
});

describe('the HTTP listener address', () => {
  it('refuses plaintext off loopback, like gRPC, and leaves nothing running', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cam-dash-listen-'));
    try {
      const config = loadConfig(
        { dataDir, listen: '127.0.0.1:0', tpm: 'none' },
        { CAM_OS_HTTP: '0.0.0.0:0' },
      );
      await expect(boot(config, { systemComponents: false, log: () => {} })).rejects.toThrow(
        /^http: refusing to listen on 0\.0\.0\.0:0 without TLS: plaintext is only allowed on loopback$/,
      );
      expect(existsSync(join(dataDir, 'kernel.json'))).toBe(false);
      expect(existsSync(join(dataDir, 'dashboard-token'))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
