/**
 * (c) Authentication and authorisation on a TLS listener: the kernel's CA, server and client certificates
 * and JWTs come from the operator helpers; unauthenticated calls, a wrong caller_id, cross-namespace
 * access and expired tokens are refused with the right status and recorded as decisions. Also: mTLS
 * identities, group scopes, rate limits, message size limits and client deadlines.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthConfig,
  authConfigFrom,
  checkListen,
  developmentAuth,
  serverCredentials,
  serverOptions,
} from '../../host/src/auth/config.js';
import { ensureSigningKey, issueToken } from '../../host/src/auth/tokens.js';
import { gatewayServices, requireAdmin } from '../../host/src/grpc/index.js';
import { certsInit, certsIssueClient, tokenIssue } from '../../sdk/src/cli/commands/auth.js';
import { SessionClient } from '../../sdk/src/client/session-client.js';
import { SyscallClient } from '../../sdk/src/client/syscall-client.js';
import { startTestKernel, type TestKernel } from './harness.js';
import { type Outcome, SpecClient } from './spec-client.js';

// The certificate helpers drive the openssl CLI; without it this file cannot set up its TLS listener.
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasOpenssl) {
  if (process.env.CI === 'true')
    throw new Error('openssl is required by test/grpc/auth.test.ts and is not installed');
  console.warn('skipping test/grpc/auth.test.ts: the openssl command is not installed');
}

const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;
const RESOURCE_EXHAUSTED = 8;

let dataDir: string;
let k: TestKernel;
let tlsServer: grpc.Server;
let tlsAddress: string;
let auth: AuthConfig;
let ca: Buffer;
const tokens: Record<string, string> = {};
const certs: Record<string, { cert: Buffer; key: Buffer }> = {};
const clients: SpecClient[] = [];

function tlsClient(opts: { cert?: string } = {}): SpecClient {
  const pair = opts.cert ? certs[opts.cert]! : undefined;
  const c = new SpecClient(tlsAddress, grpc.credentials.createSsl(ca, pair?.key ?? null, pair?.cert ?? null));
  clients.push(c);
  return c;
}

function bearer(token: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return md;
}

function code(o: Outcome): number {
  return o.ok ? 0 : o.code;
}

const hasMemory = () => k.loaded.some((l) => l.name === 'memory');

beforeAll(async () => {
  if (!hasOpenssl) return;
  dataDir = mkdtempSync(join(tmpdir(), 'cam-grpc-auth-'));
  certsInit({ dataDir });
  for (const agent of ['agent-a', 'agent-b']) {
    const c = certsIssueClient({ dataDir, agentId: agent });
    certs[agent] = { cert: readFileSync(c.cert), key: readFileSync(c.key) };
  }
  ca = readFileSync(join(dataDir, 'auth', 'tls', 'ca.crt'));
  tokens.a = (await tokenIssue({ dataDir, agentId: 'agent-a' })).token;
  tokens.b = (await tokenIssue({ dataDir, agentId: 'agent-b' })).token;
  // agent-c may read and write agent-a's namespace (a namespace grant) but nothing of its own.
  tokens.c = (
    await tokenIssue({ dataDir, agentId: 'agent-c', scopes: ['group:context', 'ns:agent-a'] })
  ).token;
  const key = ensureSigningKey(dataDir);
  tokens.expired = (
    await issueToken(key, { agentId: 'agent-a', ttlSeconds: 60, issuedAt: new Date(Date.now() - 3600_000) })
  ).token;
  const foreign = generateKeyPairSync('ed25519');
  tokens.forged = (
    await issueToken(
      { kid: 'x', privateKey: foreign.privateKey, publicKey: foreign.publicKey },
      { agentId: 'agent-a' },
    )
  ).token;

  auth = authConfigFrom(dataDir);
  k = await startTestKernel({ auth, dataDir });
  // The TLS listener: the same kernel (same gateway) served with the credentials auth.json describes.
  tlsServer = new grpc.Server(serverOptions(auth));
  for (const s of gatewayServices({ auth })) await s.register(tlsServer, k.running);
  const port = await new Promise<number>((resolve, reject) =>
    tlsServer.bindAsync('127.0.0.1:0', serverCredentials(auth), (e, p) => (e ? reject(e) : resolve(p))),
  );
  tlsAddress = `localhost:${port}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  tlsServer?.forceShutdown();
  await k?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl)('auth configuration', () => {
  it('reads TLS + JWT from auth.json written by the helpers', () => {
    expect(auth.mode).toBe('authenticated');
    expect(auth.tls?.clientAuth).toBe('optional');
    expect(auth.jwtPublicKey).toBeDefined();
    expect(k.running.authMode).toBe('authenticated');
  });

  it('refuses plaintext and development mode off loopback', () => {
    expect(() => checkListen(developmentAuth(), '0.0.0.0:50051')).toThrow(/without TLS/);
    expect(() => checkListen({ ...developmentAuth(), tls: auth.tls }, '10.1.2.3:50051')).toThrow(
      /development mode/,
    );
    expect(() => checkListen(auth, '0.0.0.0:50051')).not.toThrow();
    expect(() => checkListen(developmentAuth(), '127.0.0.1:50051')).not.toThrow();
  });
});

describe.skipIf(!hasOpenssl)('on the TLS listener', () => {
  it('refuses a call without credentials with UNAUTHENTICATED and records it', async () => {
    const o = await tlsClient().call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-a' });
    expect(code(o)).toBe(UNAUTHENTICATED);
    expect(k.gateway.decisions.query({ kind: 'unauthenticated' }).length).toBeGreaterThan(0);
  });

  it('refuses a plaintext client', async () => {
    const c = new SpecClient(tlsAddress);
    clients.push(c);
    const o = await c.call('HealthCheck', {}, new grpc.Metadata(), 3000);
    expect(code(o)).toBe(grpc.status.UNAVAILABLE);
  });

  it('accepts a valid token and runs the call as its agent', async () => {
    const o = await tlsClient().call(
      'EmitMetric',
      { name: 'auth.ok', value: 1, caller_id: 'agent-a' },
      bearer(tokens.a),
    );
    expect(code(o)).toBe(0);
    expect(k.gateway.env.telemetry.listSamples('auth.ok')[0]?.callerId).toBe('agent-a');
    // An empty caller_id means "myself".
    expect(code(await tlsClient().call('EmitMetric', { name: 'auth.ok', value: 2 }, bearer(tokens.a)))).toBe(
      0,
    );
  });

  it('refuses a caller_id that is not the authenticated identity with PERMISSION_DENIED', async () => {
    const o = await tlsClient().call(
      'EmitMetric',
      { name: 'm', value: 1, caller_id: 'agent-b' },
      bearer(tokens.a),
    );
    expect(code(o)).toBe(PERMISSION_DENIED);
    expect(o.ok ? '' : o.message).toMatch(/does not match the authenticated identity 'agent-a'/);
    const d = k.gateway.decisions.query({ kind: 'permission-denied', subject: 'agent-a' });
    expect(d[0]).toMatchObject({ action: 'EmitMetric', peer: expect.stringMatching(/127\.0\.0\.1/) });
  });

  it('refuses expired and forged tokens with UNAUTHENTICATED', async () => {
    const expired = await tlsClient().call('HealthCheck', { caller_id: 'agent-a' }, bearer(tokens.expired));
    expect(code(expired)).toBe(UNAUTHENTICATED);
    expect(expired.ok ? '' : expired.message).toMatch(/expired/);
    expect(code(await tlsClient().call('HealthCheck', {}, bearer(tokens.forged)))).toBe(UNAUTHENTICATED);
    expect(code(await tlsClient().call('HealthCheck', {}, bearer('not-a-jwt')))).toBe(UNAUTHENTICATED);
  });

  it('keeps agents out of each other’s namespaces unless granted', async () => {
    const write = (token: string, ns: string) =>
      tlsClient().call('ContextWrite', { namespace: ns, key: 'k', data: Buffer.from('x') }, bearer(token));
    if (!hasMemory()) {
      // The namespace check runs inside the handler, which needs the memory service to be present.
      expect(code(await write(tokens.a!, 'agent-a'))).toBe(grpc.status.UNIMPLEMENTED);
      return;
    }
    expect(code(await write(tokens.a!, 'agent-a'))).toBe(0);
    expect(code(await write(tokens.a!, 'agent-a.notes'))).toBe(0);
    const cross = await write(tokens.b!, 'agent-a');
    expect(code(cross)).toBe(PERMISSION_DENIED);
    expect(cross.ok ? '' : cross.message).toMatch(/no scope for namespace 'agent-a'/);
    const read = await tlsClient().call('ContextRead', { namespace: 'agent-a', key: 'k' }, bearer(tokens.b));
    expect(code(read)).toBe(PERMISSION_DENIED);
    // agent-c holds ns:agent-a.
    const granted = await tlsClient().call(
      'ContextRead',
      { namespace: 'agent-a', key: 'k' },
      bearer(tokens.c),
    );
    expect(code(granted)).toBe(0);
    // A snapshot of agent-a's namespace cannot be restored by agent-b, even with the id in hand.
    const snap = await tlsClient().call('ContextSnapshot', { namespace: 'agent-a' }, bearer(tokens.a));
    const id = snap.ok ? (snap.res.snapshot_id as string) : '';
    expect(
      code(await tlsClient().call('ContextRestore', { snapshot_id: id, force: true }, bearer(tokens.b))),
    ).toBe(PERMISSION_DENIED);
    expect(
      k.gateway.decisions.query({ kind: 'permission-denied', subject: 'agent-b' }).length,
    ).toBeGreaterThan(0);
  });

  it('enforces group scopes: admin syscalls need group:admin, agent-c has only context', async () => {
    const tuning = await tlsClient().call('SystemTuning', { tuning_profile: 'balanced' }, bearer(tokens.a));
    const expected = k.loaded.some((l) => l.name === 'scheduler')
      ? PERMISSION_DENIED
      : grpc.status.UNIMPLEMENTED;
    expect(code(tuning)).toBe(expected);
    const metric = await tlsClient().call('EmitMetric', { name: 'm', value: 1 }, bearer(tokens.c));
    expect(code(metric)).toBe(PERMISSION_DENIED);
    // Liveness answers every authenticated caller.
    expect(code(await tlsClient().call('HealthCheck', {}, bearer(tokens.c)))).toBe(0);
  });

  it('takes the identity from a client certificate (mTLS)', async () => {
    const c = tlsClient({ cert: 'agent-a' });
    expect(code(await c.call('EmitMetric', { name: 'mtls.ok', value: 1, caller_id: 'agent-a' }))).toBe(0);
    expect(k.gateway.env.telemetry.listSamples('mtls.ok')[0]?.callerId).toBe('agent-a');
    expect(code(await c.call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-b' }))).toBe(
      PERMISSION_DENIED,
    );
    // A certificate and a token that disagree are refused.
    const mixed = await c.call('EmitMetric', { name: 'm', value: 1 }, bearer(tokens.b));
    expect(code(mixed)).toBe(UNAUTHENTICATED);
  });

  it('guards the admin service: group:admin is required in authenticated mode', async () => {
    const transport = (token: string | undefined) => ({
      metadata: bearer(token),
      getPeer: () => 'test-peer',
    });
    await expect(requireAdmin(k.running, transport(tokens.a), 'Admin.LoadComponent')).rejects.toMatchObject({
      status: 'PERMISSION_DENIED',
    });
    await expect(requireAdmin(k.running, transport(undefined), 'Admin.Status')).rejects.toMatchObject({
      status: 'UNAUTHENTICATED',
    });
    const ops = (await tokenIssue({ dataDir, agentId: 'operator', scopes: ['group:admin'] })).token;
    await expect(requireAdmin(k.running, transport(ops), 'Admin.Status')).resolves.toMatchObject({
      id: 'operator',
    });
  });

  it('authenticates a streaming session once and checks caller_id per call', async () => {
    const s = await SessionClient.open({
      address: tlsAddress,
      tls: { ca },
      token: tokens.a,
    });
    expect(s.welcome).toMatchObject({ identity: 'agent-a', auth_mode: 'authenticated' });
    await expect(
      s.call('EmitMetric', { name: 'session.ok', value: 1, caller_id: 'agent-a' }),
    ).resolves.toBeDefined();
    await expect(s.call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-b' })).rejects.toMatchObject({
      code: PERMISSION_DENIED,
    });
    await s.close();
    await expect(SessionClient.open({ address: tlsAddress, tls: { ca } })).rejects.toMatchObject({
      code: UNAUTHENTICATED,
    });
  });

  it('refuses messages above the size limit', async () => {
    const c = new SyscallClient({
      address: tlsAddress,
      tls: { ca },
      token: tokens.a,
      maxMessageBytes: 64 * 1024 * 1024,
    });
    await expect(
      c.call('ContextWrite', {
        namespace: 'agent-a',
        key: 'big',
        data: Buffer.alloc(auth.maxMessageBytes + 1),
      }),
    ).rejects.toMatchObject({ code: RESOURCE_EXHAUSTED });
    c.close();
  });

  it('honours the client deadline', async () => {
    const c = new SyscallClient({ address: tlsAddress, tls: { ca }, token: tokens.a });
    await c.waitForReady();
    await expect(c.call('HealthCheck', { detailed: true }, { timeoutMs: 1 })).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
    c.close();
  });
});

describe('rate limits', () => {
  let dev: TestKernel;
  beforeAll(async () => {
    dev = await startTestKernel({
      auth: developmentAuth({ rateLimit: { perSecond: 1, burst: 5 } }),
      system: false,
    });
  });
  afterAll(async () => {
    await dev?.stop();
  });

  it('answers RESOURCE_EXHAUSTED past the bucket and records the throttling as a decision', async () => {
    const c = new SpecClient(dev.address);
    clients.push(c);
    const codes: number[] = [];
    for (let i = 0; i < 8; i++)
      codes.push(code(await c.call('EmitMetric', { name: 'r', value: i, caller_id: 'greedy' })));
    expect(codes.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(codes.slice(5)).toEqual([RESOURCE_EXHAUSTED, RESOURCE_EXHAUSTED, RESOURCE_EXHAUSTED]);
    // Another agent has its own bucket.
    expect(code(await c.call('EmitMetric', { name: 'r', value: 1, caller_id: 'polite' }))).toBe(0);
    const [d] = dev.gateway.decisions.query({ kind: 'rate-limited', subject: 'greedy' });
    expect(d).toMatchObject({
      action: 'EmitMetric',
      count: 3,
      reason: expect.stringMatching(/rate limit of 1 calls\/s/),
    });
    expect(dev.running.authMode).toBe('development');
  });
});
