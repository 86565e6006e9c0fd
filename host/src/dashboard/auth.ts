/**
 * Who may press the dashboard's swap and rollback buttons. The same rule as the AdminService:
 *
 * - authenticated mode: an admin bearer token (JWT with group:admin) or a client certificate holding
 *   group:admin, checked by the kernel's admin guard (grpc/admin-guard.ts) — one authorisation path;
 * - development mode: the gRPC admin service is open on loopback, but a web page is reachable by any local
 *   browser tab, so actions need the dashboard token: 32 random bytes written at start to
 *   `<data-dir>/dashboard-token` (mode 0600) — whoever can read the data dir operates the kernel.
 *
 * A login exchanges the token for an HttpOnly, SameSite=Strict session cookie; API clients may send
 * `Authorization: Bearer <token>` on each request instead.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { KernelError } from '../errors.js';
import { requireAdmin } from '../grpc/admin-guard.js';
import type { KernelContext } from '../server/server.js';

export const DASHBOARD_TOKEN_FILE = 'dashboard-token';
export const SESSION_COOKIE = 'cam_os_session';
const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
const MAX_SESSIONS = 1_000;

export interface Operator {
  id: string;
  method: string;
}

export class DashboardAuth {
  readonly tokenFile: string;
  private readonly token: Buffer;
  private readonly sessions = new Map<string, { operator: Operator; expires: number }>();

  constructor(private readonly ctx: KernelContext) {
    this.tokenFile = join(ctx.config.dataDir, DASHBOARD_TOKEN_FILE);
    this.token = Buffer.from(randomBytes(32).toString('base64url'));
    writeFileSync(this.tokenFile, `${this.token.toString()}\n`, { mode: 0o600 });
  }

  /** Check a token (dashboard token in development mode, admin credentials otherwise). Throws 401/403. */
  async verify(req: IncomingMessage, token: string | undefined): Promise<Operator> {
    if (this.ctx.authMode === 'development') {
      const given = Buffer.from(token ?? '');
      if (given.length === 0) throw unauthenticated('sign in with the dashboard token');
      if (given.length !== this.token.length || !timingSafeEqual(given, this.token))
        throw unauthenticated(`the dashboard token is wrong (it is in ${this.tokenFile})`);
      return { id: 'operator', method: 'dashboard-token' };
    }
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    const socket = req.socket as Partial<TLSSocket>;
    const p = await requireAdmin(
      this.ctx,
      {
        metadata: md,
        getPeer: () => `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`,
        getAuthContext: () =>
          typeof socket.getPeerCertificate === 'function' && socket.authorized
            ? { sslPeerCertificate: socket.getPeerCertificate() }
            : null,
      },
      'Dashboard.Action',
    );
    return { id: p.id, method: p.method };
  }

  async login(req: IncomingMessage, token: string): Promise<{ session: string; operator: Operator }> {
    const operator = await this.verify(req, token);
    const now = Date.now();
    for (const [k, v] of this.sessions) if (v.expires <= now) this.sessions.delete(k);
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    const session = randomBytes(32).toString('base64url');
    this.sessions.set(session, { operator, expires: now + SESSION_TTL_MS });
    return { session, operator };
  }

  logout(req: IncomingMessage): void {
    const s = cookie(req, SESSION_COOKIE);
    if (s) this.sessions.delete(s);
  }

  /** The operator behind a request (session cookie or bearer token), or undefined. */
  async operatorOf(req: IncomingMessage): Promise<Operator | undefined> {
    const s = cookie(req, SESSION_COOKIE);
    if (s) {
      const hit = this.sessions.get(s);
      if (hit && hit.expires > Date.now()) return hit.operator;
    }
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) return this.verify(req, bearer);
    if (this.ctx.authMode === 'authenticated' && (req.socket as Partial<TLSSocket>).authorized) {
      // A client certificate alone may carry group:admin.
      return this.verify(req, undefined).catch(() => undefined);
    }
    return undefined;
  }

  /** Like operatorOf, but a missing identity is a 401. */
  async require(req: IncomingMessage): Promise<Operator> {
    const op = await this.operatorOf(req);
    if (!op) throw unauthenticated('sign in first: swap and rollback need an operator');
    return op;
  }

  close(): void {
    rmSync(this.tokenFile, { force: true });
    this.sessions.clear();
  }
}

function unauthenticated(msg: string): KernelError {
  return new KernelError('KERNEL_ERR_AUTH_UNAUTHENTICATED', msg, { auth: 'unauthenticated' });
}

export function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
