/**
 * `cam-os marketplace serve <dir>`: a directory registry over HTTP. GET serves the index and package files
 * (only paths of the registry layout; anything else is 404). POST /publish and POST /yank need
 * `Authorization: Bearer <token>` with the token the server was started with; without one, publishing
 * over HTTP is off.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import { isKebabName } from '@cam-os/host/trust/manifest.js';
import { isSemver } from '@cam-os/host/trust/semver.js';
import { MarketplaceError, marketError } from './errors.js';
import { DEFAULT_MAX_PACKAGE_BYTES } from './package-format.js';
import { publishToDirectory, yankInDirectory } from './registry.js';
import { emptyIndex, INDEX_FILE, serializeIndex } from './registry-index.js';

export interface ServeOptions {
  /** host:port, default 127.0.0.1:0 (a free port). */
  listen?: string;
  /** Bearer token for POST /publish and /yank; absent disables them. */
  token?: string;
  maxPackageBytes?: number;
  /** Registry signing key: every publish and yank re-signs the index (a signed registry needs it). */
  signingKey?: PublisherKeyPair;
  log?: (line: string) => void;
}

export interface RunningRegistry {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

const PACKAGE_RE = /^\/packages\/([a-z][a-z0-9-]*)\/([a-z][a-z0-9-]*)-([0-9A-Za-z.+-]+)\.campkg$/;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function tokenOk(header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m) return false;
  // Compare fixed-length digests so neither length nor content leaks through timing.
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max)
    throw marketError('too-large', `request body is ${declared} bytes, the limit is ${max}`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw marketError('too-large', `request body exceeds ${max} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function serveRegistry(dir: string, opts: ServeOptions = {}): Promise<RunningRegistry> {
  const root = resolve(dir);
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw marketError('invalid-argument', `registry directory ${root} does not exist`);
  if (opts.token !== undefined && opts.token.length < 16)
    throw marketError('invalid-argument', 'the publish token must be at least 16 characters');
  const max = opts.maxPackageBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
  const log = opts.log ?? (() => {});

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err =
        e instanceof MarketplaceError ? e : marketError('registry-unreachable', (e as Error).message);
      const status =
        err.code === 'unauthorized'
          ? 401
          : err.code === 'conflict'
            ? 409
            : err.code === 'too-large'
              ? 413
              : err.code === 'not-found'
                ? 404
                : 400;
      log(`${req.method} ${req.url} -> ${status} ${err.message}`);
      if (!res.headersSent) sendJson(res, status, { ok: false, code: err.code, error: err.message });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://registry');
    const path = decodeURIComponent(url.pathname);
    if (req.method === 'GET' || req.method === 'HEAD') {
      let file: string | undefined;
      if (path === `/${INDEX_FILE}`) file = join(root, INDEX_FILE);
      const m = PACKAGE_RE.exec(path);
      if (m && m[1] === m[2] && isKebabName(m[1]!) && isSemver(m[3]!)) file = join(root, path.slice(1));
      const fst = file ? await stat(file).catch(() => undefined) : undefined;
      if (path === `/${INDEX_FILE}` && !fst) {
        // A registry nobody has published to yet: an empty index, not an error.
        const text = serializeIndex(emptyIndex());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      if (!file || !fst?.isFile()) {
        sendJson(res, 404, { ok: false, code: 'not-found', error: `no ${path} in this registry` });
        return;
      }
      res.writeHead(200, {
        'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        'content-length': fst.size,
        'cache-control': 'no-cache',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      await new Promise<void>((done, fail) => {
        createReadStream(file).on('error', fail).pipe(res).on('finish', done).on('error', fail);
      });
      return;
    }
    if (req.method === 'POST' && (path === '/publish' || path === '/yank')) {
      if (opts.token === undefined)
        throw marketError('unauthorized', 'publishing over HTTP is off (start the registry with --token)');
      if (!tokenOk(req.headers.authorization, opts.token))
        throw marketError('unauthorized', 'missing or wrong bearer token');
      if (path === '/publish') {
        const body = await readBody(req, max);
        const r = await publishToDirectory(root, body, { maxBytes: max, key: opts.signingKey });
        log(`published ${r.name}@${r.version} ${r.digest}${r.created ? '' : ' (already present)'}`);
        sendJson(res, r.created ? 201 : 200, { ok: true, ...r });
        return;
      }
      const body = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as Record<string, unknown>;
      if (
        typeof body.name !== 'string' ||
        typeof body.version !== 'string' ||
        typeof body.yanked !== 'boolean'
      )
        throw marketError('invalid-argument', 'yank needs { name, version, yanked }');
      await yankInDirectory(root, body.name, body.version, body.yanked, { key: opts.signingKey });
      log(`${body.yanked ? 'yanked' : 'unyanked'} ${body.name}@${body.version}`);
      sendJson(res, 200, { ok: true, name: body.name, version: body.version, yanked: body.yanked });
      return;
    }
    sendJson(res, 405, {
      ok: false,
      code: 'invalid-argument',
      error: `${req.method} ${path} is not supported`,
    });
  }

  const listen = opts.listen ?? '127.0.0.1:0';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw marketError('invalid-argument', `listen address '${listen}' must be host:port`);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), () => ok());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    server,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
