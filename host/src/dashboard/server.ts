/**
 * The kernel's HTTP listener: Prometheus `/metrics`, `/healthz`, `/traces` (the span ring as JSON), the
 * dashboard page and the small JSON API behind it (components, live rates, recent decisions with their
 * explanations, swap and rollback). Plaintext only on loopback, like gRPC; elsewhere it serves HTTPS with
 * the kernel's TLS certificate (auth.json). Swap and rollback need an operator (see auth.ts); every
 * other route is read-only, and in authenticated mode /traces and /api/* also need an operator (only
 * /metrics, /healthz and the page itself stay open).
 *
 * Routes (GET unless said):
 *   /                              the dashboard (static HTML/CSS/JS from assets.ts, no external files)
 *   /metrics                       Prometheus text exposition
 *   /healthz                       200 {status} when serving or degraded, 503 when a component failed
 *   /traces?trace_id=&limit=       finished spans, oldest first
 *   /api/overview                  kernel, components, syscalls, swap history
 *   /api/rates?limit=              per-second syscall rate and latency windows
 *   /api/decisions?limit=&kind=    recent audit entries (newest first) with a brief explanation
 *   /api/traces?limit=             the newest traces in the span ring, one summary each (root, spans, duration)
 *   /api/decisions/<seq>?level=    one entry explained at brief|detailed|technical|audit, with its spans
 *   /api/events                    server-sent events: a 'tick' with the latest rate window each second
 *   /api/session                   whether the request carries an operator
 *   POST /api/login {token}        sets the session cookie;  POST /api/logout
 *   POST /api/components/<name>/swap {component_base64, manifest_json, allow_downgrade?}
 *   POST /api/components/<name>/rollback
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  type AuditEntry,
  type AuditLog,
  DECISION_KINDS,
  type DecisionKind,
  EXPLAIN_LEVELS,
  type ExplainLevel,
  explain,
} from '../audit/index.js';
import { type AuthConfig, checkListen } from '../auth/config.js';
import { KernelError, sanitize } from '../errors.js';
import type { ComponentInfo, SwapRecord } from '../kernel/kernel.js';
import type { Observability, SpanRecord } from '../observability/index.js';
import { parseListen } from '../server/config.js';
import type { KernelContext } from '../server/server.js';
import { KERNEL_VERSION } from '../version.js';
import { ASSETS } from './assets.js';
import { DashboardAuth, SESSION_COOKIE } from './auth.js';

export const MAX_JSON_BYTES = 64 * 1024;
/** Open /api/events streams at most (each is a socket and a write per second). */
export const MAX_EVENT_STREAMS = 64;
/** A componentize-js component is ~12 MB; base64 adds a third. */
export const MAX_UPLOAD_BYTES = 48 * 1024 * 1024;

export interface DashboardOptions {
  ctx: KernelContext;
  obs: Observability;
  auth: AuthConfig;
  /** host:port to listen on. */
  listen: string;
  /** The audit trail, when the kernel keeps one. */
  audit?: () => AuditLog | undefined;
}

export interface DashboardServer {
  /** http(s)://host:port/ of the dashboard. */
  url: string;
  address: string;
  /** Where the development-mode dashboard token is. */
  tokenFile: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const HTTP_STATUS: Record<string, number> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 409,
  OUT_OF_RANGE: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  RESOURCE_EXHAUSTED: 429,
  UNIMPLEMENTED: 501,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
  ABORTED: 409,
};

export async function startDashboard(opts: DashboardOptions): Promise<DashboardServer> {
  const { ctx, obs } = opts;
  const { host, loopback } = parseListen(opts.listen);
  try {
    checkListen(opts.auth, opts.listen);
  } catch (e) {
    throw new KernelError('KERNEL_ERR_CONFIG_INVALID', `http: ${(e as Error).message}`);
  }
  const tls = loopback ? undefined : opts.auth.tls;
  const auth = new DashboardAuth(ctx);
  const secure = tls !== undefined;
  const clients = new Set<ServerResponse>();

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    route(req, res).catch((e: unknown) => sendError(res, e));
  };
  const server: Server = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: tls.clientAuth !== 'none' } : {}),
          rejectUnauthorized: false,
        },
        handler,
      )
    : createHttpServer(handler);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kernel');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      const asset = ASSETS[path === '/' ? '/index.html' : path];
      if (asset) return send(res, 200, asset.body, asset.type);
      // In authenticated mode the kernel may listen beyond loopback: what it decided and traced (inputs,
      // callers, tags) is for operators only. /metrics and /healthz stay open for scrapers and probes.
      if (
        ctx.authMode === 'authenticated' &&
        (path === '/traces' || (path.startsWith('/api/') && path !== '/api/session'))
      )
        await auth.require(req);
      switch (path) {
        case '/metrics':
          return send(res, 200, await obs.metrics.text(), obs.metrics.contentType);
        case '/healthz':
          return healthz(res);
        case '/traces':
          return json(res, 200, {
            spans: obs.tracing.ring.list({
              traceId: optionalHex(url.searchParams.get('trace_id'), 'trace_id'),
              limit: intParam(url.searchParams.get('limit'), 'limit', 1, 5_000, 500),
            }),
          });
        case '/api/overview':
          return json(res, 200, overview());
        case '/api/rates':
          return json(res, 200, {
            points: obs.rates.list(intParam(url.searchParams.get('limit'), 'limit', 1, 300, 120)),
          });
        case '/api/decisions':
          return json(res, 200, decisions(url));
        case '/api/traces':
          return json(res, 200, {
            traces: traceSummaries(
              obs.tracing.ring.list(),
              intParam(url.searchParams.get('limit'), 'limit', 1, 200, 30),
            ),
          });
        case '/api/events':
          return events(req, res);
        case '/api/session': {
          const op = await auth.operatorOf(req).catch(() => undefined);
          return json(res, 200, {
            authenticated: op !== undefined,
            operator: op?.id ?? null,
            mode: ctx.authMode,
            token_file: ctx.authMode === 'development' ? auth.tokenFile : null,
          });
        }
      }
      const m = /^\/api\/decisions\/(\d{1,15})$/.exec(path);
      if (m) return json(res, 200, decision(Number(m[1]), url));
      throw new HttpError(404, `no route GET ${path}`);
    }
    if (method !== 'POST') throw new HttpError(405, `${method} is not allowed (GET or POST)`);
    checkPostOrigin(req);
    switch (path) {
      case '/api/login': {
        const body = await readJson(req, MAX_JSON_BYTES);
        if (typeof body.token !== 'string' || body.token.length === 0 || body.token.length > 8192)
          throw new HttpError(400, 'token must be a non-empty string');
        const { session, operator } = await auth.login(req, body.token);
        res.setHeader(
          'Set-Cookie',
          `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}`,
        );
        obs.logger.info('dashboard sign-in', { operator: operator.id, method: operator.method });
        return json(res, 200, { authenticated: true, operator: operator.id });
      }
      case '/api/logout':
        auth.logout(req);
        res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
        return json(res, 200, { authenticated: false });
    }
    const m = /^\/api\/components\/([a-z][a-z0-9-]{0,62})\/(swap|rollback)$/.exec(path);
    if (!m) throw new HttpError(404, `no route POST ${path}`);
    const operator = await auth.require(req);
    const name = m[1]!;
    if (!ctx.kernel.has(name)) throw new HttpError(404, `no component named '${name}' is loaded`);
    let record: SwapRecord;
    if (m[2] === 'swap') {
      const body = await readJson(req, MAX_UPLOAD_BYTES);
      if (typeof body.component_base64 !== 'string' || body.component_base64.length === 0)
        throw new HttpError(400, 'component_base64 must hold the component bytes, base64-encoded');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body.component_base64))
        throw new HttpError(400, 'component_base64 is not base64');
      if (typeof body.manifest_json !== 'string' || body.manifest_json.length === 0)
        throw new HttpError(400, 'manifest_json must hold the signed manifest (JSON text)');
      if (body.allow_downgrade !== undefined && typeof body.allow_downgrade !== 'boolean')
        throw new HttpError(400, 'allow_downgrade must be true or false');
      const bytes = Buffer.from(body.component_base64, 'base64');
      record = await obs.tracing.inSpan(
        `dashboard swap ${name}`,
        { attributes: { 'cam.component': name, 'cam.operator': operator.id } },
        () =>
          ctx.loader.swap(name, bytes, body.manifest_json as string, {
            allowDowngrade: body.allow_downgrade === true,
          }),
      );
    } else {
      record = await obs.tracing.inSpan(
        `dashboard rollback ${name}`,
        { attributes: { 'cam.component': name, 'cam.operator': operator.id } },
        () => ctx.kernel.rollback(name),
      );
    }
    obs.logger.info(`${record.kind} of ${name} by ${operator.id}: ${record.result}`, {
      component: name,
      operator: operator.id,
      from: record.from.version ?? '',
      to: record.to.version ?? '',
      result: record.result,
    });
    return json(res, 200, { record: swapJson(record), component: componentJson(ctx.kernel.info(name)) });
  }

  function healthz(res: ServerResponse): void {
    const components: Record<string, string> = {};
    let status: 'serving' | 'degraded' | 'not-serving' = 'serving';
    for (const c of ctx.kernel.list()) {
      components[c.name] = c.status.health;
      if (c.status.health === 'failed') status = 'not-serving';
      else if (c.status.health !== 'healthy' && status === 'serving') status = 'degraded';
    }
    if (ctx.warnings.length > 0 && status === 'serving') status = 'degraded';
    json(res, status === 'not-serving' ? 503 : 200, { status, version: KERNEL_VERSION, components });
  }

  function overview() {
    return {
      version: KERNEL_VERSION,
      auth_mode: ctx.authMode,
      started_at: ctx.startedAt,
      uptime_s: Math.floor((Date.now() - ctx.startedAt) / 1000),
      rss_bytes: process.memoryUsage.rss(),
      warnings: ctx.warnings,
      components: ctx.kernel.list().map(componentJson),
      syscalls: ctx.dispatcher.metrics(),
      swaps: ctx.kernel.swapHistory().slice(-50).reverse().map(swapJson),
      audit: opts.audit?.() !== undefined,
    };
  }

  function auditLog(): AuditLog {
    const log = opts.audit?.();
    if (!log) throw new HttpError(503, 'this kernel keeps no audit trail, so there are no decisions to show');
    return log;
  }

  function decisions(url: URL) {
    const log = auditLog();
    const limit = intParam(url.searchParams.get('limit'), 'limit', 1, 500, 50);
    const kind = url.searchParams.get('kind') || undefined;
    if (kind !== undefined && !DECISION_KINDS.includes(kind as DecisionKind))
      throw new HttpError(400, `kind must be one of ${DECISION_KINDS.join(', ')}`);
    return {
      decisions: log
        .recent(limit, kind ? { kind: kind as DecisionKind } : undefined)
        .map((e) => ({ ...e, brief: explain(e, 'brief', log) })),
    };
  }

  function decision(seq: number, url: URL) {
    const log = auditLog();
    const level = (url.searchParams.get('level') || 'detailed') as ExplainLevel;
    if (!EXPLAIN_LEVELS.includes(level))
      throw new HttpError(400, `level must be one of ${EXPLAIN_LEVELS.join(', ')}`);
    const entry: AuditEntry | undefined = log.get(seq);
    if (!entry) throw new HttpError(404, `no decision #${seq}`);
    return {
      entry,
      level,
      explanation: explain(entry, level, log),
      spans: entry.traceId ? obs.tracing.ring.list({ traceId: entry.traceId }) : [],
    };
  }

  function events(req: IncomingMessage, res: ServerResponse): void {
    if (clients.size >= MAX_EVENT_STREAMS)
      throw new HttpError(503, `already ${MAX_EVENT_STREAMS} event streams open; poll /api/rates instead`);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
  }

  // One tick per second to every event stream: the latest rate window and the components' health.
  const ticker = setInterval(() => {
    if (clients.size === 0) return;
    const point = obs.rates.list(1)[0];
    const data = JSON.stringify({
      point,
      components: ctx.kernel
        .list()
        .map((c) => ({ name: c.name, version: c.version ?? '', health: c.status.health })),
      decisions: opts.audit?.()?.recent(1)[0]?.seq ?? null,
    });
    for (const c of clients) c.write(`event: tick\ndata: ${data}\n\n`);
  }, 1_000);
  ticker.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: host.replace(/^\[|\]$/g, ''), port: parseListen(opts.listen).port }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: Error) => {
    clearInterval(ticker);
    auth.close();
    throw new KernelError(
      'KERNEL_ERR_CONFIG_INVALID',
      `cannot listen on ${opts.listen} (http): ${e.message}`,
    );
  });
  const port = (server.address() as AddressInfo).port;
  const address = `${host}:${port}`;
  const url = `${secure ? 'https' : 'http'}://${address}/`;
  obs.logger.info(`dashboard listening on ${url}`, { address });
  return {
    url,
    address,
    tokenFile: auth.tokenFile,
    async close() {
      clearInterval(ticker);
      for (const c of clients) c.end();
      clients.clear();
      auth.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TraceSummary {
  traceId: string;
  /** The span with no parent in the ring (the earliest one if several). */
  root: string;
  spans: number;
  startMs: number;
  durationMs: number;
  errors: number;
  sources: Array<SpanRecord['source']>;
}

/** Group spans by trace, newest trace first. */
export function traceSummaries(spans: SpanRecord[], limit: number): TraceSummary[] {
  const by = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    const list = by.get(s.traceId);
    if (list) list.push(s);
    else by.set(s.traceId, [s]);
  }
  const out: TraceSummary[] = [];
  for (const [traceId, list] of by) {
    const ids = new Set(list.map((s) => s.spanId));
    const roots = list.filter((s) => !s.parentSpanId || !ids.has(s.parentSpanId));
    const root = (roots.length ? roots : list).reduce((a, b) => (b.startMs < a.startMs ? b : a));
    const start = Math.min(...list.map((s) => s.startMs));
    const end = Math.max(...list.map((s) => s.startMs + s.durationMs));
    out.push({
      traceId,
      root: root.name,
      spans: list.length,
      startMs: start,
      durationMs: end - start,
      errors: list.filter((s) => s.status === 'error').length,
      sources: [...new Set(list.map((s) => s.source))],
    });
  }
  return out.sort((a, b) => b.startMs - a.startMs).slice(0, limit);
}

function componentJson(c: ComponentInfo) {
  const s = c.status;
  return {
    name: c.name,
    version: c.version ?? '',
    digest: c.digest,
    abi: c.abi ?? '',
    health: s.health,
    restarts: s.restarts,
    calls: s.calls,
    failed_calls: s.failedCalls,
    instances: s.instances,
    queued: s.queued,
    last_error: s.lastError ?? null,
    replica: s.replica,
    exports: c.exports,
    imports: c.imports,
    memory_max_bytes: c.memoryMaxPages * 65536,
    deadline_ms: c.deadlineMs,
    loaded_at: c.loadedAt,
  };
}

function swapJson(r: SwapRecord) {
  return {
    name: r.name,
    at: r.at,
    kind: r.kind,
    result: r.result,
    from_version: r.from.version ?? '',
    from_digest: r.from.digest,
    to_version: r.to.version ?? '',
    to_digest: r.to.digest,
    reason: r.reason ?? '',
    paused_ms: r.pausedMs ?? 0,
  };
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    // Everything the page needs is served from here: no external script, style, font or frame.
    'Content-Security-Policy':
      "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body), 'application/json; charset=utf-8');
}

function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (e instanceof HttpError) {
    json(res, e.status, { error: e.message });
    return;
  }
  const err = sanitize(e);
  json(res, HTTP_STATUS[err.status] ?? 500, { error: err.message, code: err.code });
}

/** Cross-site form posts and foreign pages cannot act: JSON only, and a same-origin Origin when sent. */
function checkPostOrigin(req: IncomingMessage): void {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'POST bodies must be application/json');
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new HttpError(403, `malformed Origin '${origin}'`);
    }
    if (host !== req.headers.host) throw new HttpError(403, `cross-origin POST from ${origin} refused`);
  }
}

async function readJson(req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) throw new HttpError(413, `the request body is over ${max} bytes`);
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `the body is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new HttpError(400, 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

function intParam(v: string | null, name: string, min: number, max: number, dflt: number): number {
  if (v === null || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  return n;
}

function optionalHex(v: string | null, name: string): string | undefined {
  if (v === null || v === '') return undefined;
  if (!/^[0-9a-fA-F]{1,64}$/.test(v)) throw new HttpError(400, `${name} must be 1-64 hex digits`);
  return v.toLowerCase();
}
