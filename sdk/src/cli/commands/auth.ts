/**
 * Operator helpers behind `cam-os token issue` and `cam-os certs ...` (the CLI wiring lives in
 * commands.ts). Each works on a data dir, returns what it did for the CLI to print, and turns the feature
 * on in `<data-dir>/auth/auth.json`; a running kernel picks the change up at its next start.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  createCa,
  describeCert,
  issueClientCert,
  issueServerCert,
  TLS_DIR,
} from '@cam-os/host/auth/certs.js';
import { AUTH_FILE, authConfigFrom, type ClientAuth, updateAuthFile } from '@cam-os/host/auth/config.js';
import { ensureSigningKey, issueToken, readSigningKey, signingKeyPath } from '@cam-os/host/auth/tokens.js';

export interface TokenIssueOptions {
  dataDir: string;
  agentId: string;
  /** Default: every syscall group but admin, and the agent's own namespaces. */
  scopes?: string[];
  ttlSeconds?: number;
}

export interface TokenIssueResult {
  token: string;
  agentId: string;
  scopes: string[];
  expiresAt: string;
  /** True when this call created the signing key (and switched JWT auth on). */
  keyCreated: boolean;
  keyFile: string;
  authFile: string;
}

export async function tokenIssue(o: TokenIssueOptions): Promise<TokenIssueResult> {
  const keyCreated = readSigningKey(o.dataDir) === undefined;
  const key = ensureSigningKey(o.dataDir);
  const issued = await issueToken(key, { agentId: o.agentId, scopes: o.scopes, ttlSeconds: o.ttlSeconds });
  const authFile = updateAuthFile(o.dataDir, { jwt: true });
  authConfigFrom(o.dataDir);
  return {
    token: issued.token,
    agentId: issued.agentId,
    scopes: issued.scopes,
    expiresAt: issued.expiresAt.toISOString(),
    keyCreated,
    keyFile: signingKeyPath(o.dataDir),
    authFile,
  };
}

export interface CertsInitOptions {
  dataDir: string;
  /** Names and addresses the kernel is reached at; default localhost, 127.0.0.1, ::1. */
  hosts?: string[];
  days?: number;
  /** Default: optional when JWT is on, else require. */
  clientAuth?: ClientAuth;
}

export interface CertsInitResult {
  ca: string;
  serverCert: string;
  serverKey: string;
  subjectAltNames: string;
  authFile: string;
}

/** Create the kernel's CA and server certificate under `<data-dir>/auth/tls/` and switch TLS on. */
export function certsInit(o: CertsInitOptions): CertsInitResult {
  const dir = join(o.dataDir, TLS_DIR);
  if (existsSync(join(dir, 'ca.crt'))) {
    throw new Error(`${join(dir, 'ca.crt')} already exists; remove ${dir} to start over`);
  }
  const ca = createCa(dir, { days: 3650 });
  const server = issueServerCert(ca, dir, { hosts: o.hosts, days: o.days });
  const tls: Record<string, string> = {
    cert: 'tls/server.crt',
    key: 'tls/server.key',
    clientCa: 'tls/ca.crt',
  };
  if (o.clientAuth) tls.clientAuth = o.clientAuth;
  const authFile = updateAuthFile(o.dataDir, { tls });
  authConfigFrom(o.dataDir);
  return {
    ca: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    subjectAltNames: describeCert(server.cert).san,
    authFile,
  };
}

export interface CertsClientOptions {
  dataDir: string;
  agentId: string;
  /** Where the agent's certificate and key go; default `<data-dir>/auth/clients/`. */
  outDir?: string;
  days?: number;
}

export interface CertsClientResult {
  cert: string;
  key: string;
  ca: string;
  subject: string;
  validTo: string;
}

/** Issue a client certificate for an agent, signed by the kernel's CA. */
export function certsIssueClient(o: CertsClientOptions): CertsClientResult {
  const dir = join(o.dataDir, TLS_DIR);
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  if (!existsSync(ca.cert)) throw new Error(`no CA in ${dir}: run \`cam-os certs init\` first`);
  const out = issueClientCert(ca, o.outDir ?? join(o.dataDir, 'auth', 'clients'), o.agentId, {
    days: o.days,
  });
  const d = describeCert(out.cert);
  return { cert: out.cert, key: out.key, ca: ca.cert, subject: d.subject, validTo: d.validTo };
}

export { AUTH_FILE };
