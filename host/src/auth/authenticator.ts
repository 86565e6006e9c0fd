/**
 * Who is calling: the one place that turns a gRPC call's transport (TLS peer certificate, bearer token)
 * and the request's `caller_id` into the identity and scopes a syscall runs with. Refusals are recorded
 * in the decision log.
 *
 * - development mode (loopback, no auth configured): the call runs as the `caller_id` it names
 *   ('anonymous' when empty), unrestricted.
 * - authenticated mode: the identity comes from a verified client certificate (`urn:cam-os:agent:<id>`
 *   URI SAN, else CN) and/or a bearer token (`sub`); when both are present they must agree. A non-empty
 *   `caller_id` must equal that identity (an empty one means "myself", proto3's default).
 */
import type { PeerCertificate } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { AGENT_URI_PREFIX } from './certs.js';
import type { AuthConfig, AuthMode } from './config.js';
import type { DecisionLog } from './decisions.js';
import { permissionDenied, rateLimited as rateLimitedError, unauthenticated } from './errors.js';
import { RateLimiter } from './rate-limit.js';
import { defaultScopes } from './scopes.js';
import { TokenError, TokenVerifier } from './tokens.js';

export interface Principal {
  /** Authenticated identity; empty in development mode (each call names its own). */
  id: string;
  scopes: readonly string[] | undefined;
  method: 'development' | 'mtls' | 'jwt' | 'mtls+jwt';
}

const DEVELOPMENT_PRINCIPAL: Principal = Object.freeze({
  id: '',
  scopes: undefined,
  method: 'development',
});

export interface CallTransport {
  metadata: grpc.Metadata;
  getPeer(): string;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate } | null;
}

export interface Caller {
  callerId: string;
  scopes: readonly string[] | undefined;
}

export class Authenticator {
  readonly mode: AuthMode;
  private readonly verifier: TokenVerifier | undefined;
  private readonly limiter: RateLimiter;

  constructor(
    readonly config: AuthConfig,
    readonly decisions: DecisionLog,
  ) {
    this.mode = config.mode;
    this.verifier = config.jwtPublicKey ? new TokenVerifier(config.jwtPublicKey) : undefined;
    this.limiter = new RateLimiter(config.rateLimit);
  }

  /**
   * Establish the principal of a call or stream from its transport. Synchronous when no bearer token has to be verified (development mode, a client
   * certificate alone), so the unary path pays no promise for it; a token verification returns a promise.
   * A refusal throws (or rejects) UNAUTHENTICATED and is recorded as a decision.
   */
  authenticate(t: CallTransport, action: string): Principal | Promise<Principal> {
    if (this.mode === 'development') return DEVELOPMENT_PRINCIPAL;
    const fail = (reason: string): never => {
      this.decisions.record({
        kind: 'unauthenticated',
        subject: 'unknown',
        peer: t.getPeer(),
        action,
        reason,
      });
      throw unauthenticated(reason);
    };
    const certId = this.certificateIdentity(t);
    const bearer = bearerToken(t.metadata);
    if (bearer === undefined) {
      if (certId)
        return { id: certId, scopes: this.config.grants[certId] ?? defaultScopes(certId), method: 'mtls' };
      return fail(
        this.verifier
          ? 'no credentials: send a bearer token (authorization: Bearer <jwt>) or a client certificate'
          : 'no credentials: a client certificate signed by the kernel CA is required',
      );
    }
    if (!this.verifier) fail('bearer tokens are not accepted by this kernel (use a client certificate)');
    return this.verifier!.verify(bearer).then(
      (v): Principal => {
        if (certId && certId !== v.agentId) {
          fail(`the client certificate identifies '${certId}' but the bearer token names '${v.agentId}'`);
        }
        return { id: v.agentId, scopes: v.scopes, method: certId ? 'mtls+jwt' : 'jwt' };
      },
      (e: unknown) => {
        if (e instanceof TokenError) fail(e.message);
        throw e;
      },
    );
  }

  /**
   * The identity and scopes one syscall runs with, after checking the request's caller_id against the
   * principal and taking a rate-limit token. Throws PERMISSION_DENIED or RESOURCE_EXHAUSTED.
   */
  authorize(p: Principal, requestCallerId: string, action: string, peer: string): Caller {
    let caller: Caller;
    if (p.method === 'development') {
      caller = { callerId: requestCallerId || 'anonymous', scopes: undefined };
    } else {
      if (requestCallerId && requestCallerId !== p.id) {
        const reason = `caller_id '${truncate(requestCallerId)}' does not match the authenticated identity '${p.id}'`;
        this.decisions.record({ kind: 'permission-denied', subject: p.id, peer, action, reason });
        throw permissionDenied(reason);
      }
      caller = { callerId: p.id, scopes: p.scopes };
    }
    const waitMs = this.limiter.take(caller.callerId);
    if (waitMs > 0) {
      const { perSecond, burst } = this.config.rateLimit;
      const reason = `rate limit of ${perSecond} calls/s (burst ${burst}) exceeded`;
      this.decisions.record({ kind: 'rate-limited', subject: caller.callerId, peer, action, reason });
      throw rateLimitedError(`${reason}; retry in ${waitMs} ms`, waitMs);
    }
    return caller;
  }

  /** Record a scope refusal raised further down (a namespace the caller may not touch). */
  recordDenied(subject: string, peer: string, action: string, reason: string): void {
    this.decisions.record({ kind: 'permission-denied', subject, peer, action, reason });
  }

  private certificateIdentity(t: CallTransport): string | undefined {
    const cert = t.getAuthContext?.()?.sslPeerCertificate;
    if (!cert) return undefined;
    const uri = (cert.subjectaltname ?? '')
      .split(',')
      .map((s) => s.trim())
      .find((s) => s.startsWith(`URI:${AGENT_URI_PREFIX}`));
    if (uri) return uri.slice(4 + AGENT_URI_PREFIX.length);
    const cn = cert.subject?.CN;
    return typeof cn === 'string' && cn.length > 0 ? cn : undefined;
  }
}

function bearerToken(md: grpc.Metadata): string | undefined {
  const v = md.get('authorization')[0];
  if (v === undefined) return undefined;
  const s = typeof v === 'string' ? v : v.toString('utf8');
  const m = /^bearer\s+(\S+)$/i.exec(s.trim());
  return m ? m[1] : '';
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
