/**
 * Operator helpers for mTLS: a private CA, the kernel's server certificate, and agents' client
 * certificates (identity = the certificate's `urn:cam-os:agent:<id>` URI SAN, else its CN).
 *
 * No X.509 writer is among the project's dependencies, so these drive the `openssl` CLI (OpenSSL >= 1.1.1
 * for -addext); the kernel itself only reads PEM files. Keys are EC P-256, written with mode 0600; every
 * file is produced in a temporary directory and moved into place only when all steps succeeded.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { AuthConfigError } from './errors.js';

export const TLS_DIR = join('auth', 'tls');
export const AGENT_URI_PREFIX = 'urn:cam-os:agent:';

export interface CertPaths {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new AuthConfigError(
        'the openssl command is needed to create certificates and was not found on PATH',
      );
    }
    const detail = err.stderr?.toString().trim().split('\n')[0] ?? err.message;
    throw new AuthConfigError(`openssl ${args[0]} failed: ${detail}`);
  }
}

function checkDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new AuthConfigError('days must be 1-3650');
}

function subjectValue(s: string, what: string): string {
  if (!/^[A-Za-z0-9._:@ -]{1,64}$/.test(s)) {
    throw new AuthConfigError(
      `${what} '${s}' must be 1-64 characters of letters, digits, space and . _ : @ -`,
    );
  }
  return s;
}

/** Move `files` (name -> tmp path) into `dir`, refusing to overwrite unless `overwrite`. */
function install(tmp: string, dir: string, names: string[], overwrite: boolean): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!overwrite) {
    const clash = names.filter((n) => existsSync(join(dir, n)));
    if (clash.length)
      throw new AuthConfigError(`${clash.map((n) => join(dir, n)).join(', ')} already exist(s)`);
  }
  for (const n of names) {
    if (n.endsWith('.key')) chmodSync(join(tmp, n), 0o600);
    renameSync(join(tmp, n), join(dir, n));
  }
}

function withTmp<T>(fn: (tmp: string) => T): T {
  const tmp = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'cam-os-certs-'));
  try {
    return fn(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function newKey(tmp: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name], tmp);
}

/** Create a CA (`ca.crt`, `ca.key`) in `dir`. */
export function createCa(
  dir: string,
  opts: { commonName?: string; days?: number; overwrite?: boolean } = {},
): CertPaths {
  const days = opts.days ?? 3650;
  checkDays(days);
  const cn = subjectValue(opts.commonName ?? 'cam-os local CA', 'common name');
  withTmp((tmp) => {
    newKey(tmp, 'ca.key');
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-sha256',
        '-days',
        String(days),
        '-subj',
        `/CN=${cn}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-out',
        'ca.crt',
      ],
      tmp,
    );
    install(tmp, dir, ['ca.key', 'ca.crt'], opts.overwrite ?? false);
  });
  return { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
}

function sign(
  tmp: string,
  ca: CertPaths,
  name: string,
  cn: string,
  days: number,
  extensions: string[],
): void {
  newKey(tmp, `${name}.key`);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], tmp);
  writeFileSync(join(tmp, `${name}.ext`), `${extensions.join('\n')}\n`);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex')}`,
      '-days',
      String(days),
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    tmp,
  );
}

/** The kernel's server certificate for `hosts` (DNS names and IP addresses), signed by the CA. */
export function issueServerCert(
  ca: CertPaths,
  dir: string,
  opts: { hosts?: string[]; days?: number; name?: string; overwrite?: boolean } = {},
): CertPaths {
  const hosts = opts.hosts?.length ? opts.hosts : ['localhost', '127.0.0.1', '::1'];
  const days = opts.days ?? 825;
  checkDays(days);
  const name = opts.name ?? 'server';
  const san = hosts.map((h) => {
    if (isIP(h)) return `IP:${h}`;
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(h))
      throw new AuthConfigError(`'${h}' is not a host name or IP address`);
    return `DNS:${h}`;
  });
  withTmp((tmp) => {
    sign(tmp, ca, name, subjectValue(hosts[0]!, 'host'), days, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san.join(',')}`,
    ]);
    install(tmp, dir, [`${name}.key`, `${name}.crt`], opts.overwrite ?? false);
  });
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A client certificate for `agentId` (CN and `urn:cam-os:agent:<id>` SAN), signed by the CA. */
export function issueClientCert(
  ca: CertPaths,
  dir: string,
  agentId: string,
  opts: { days?: number; overwrite?: boolean } = {},
): CertPaths {
  const days = opts.days ?? 365;
  checkDays(days);
  const id = subjectValue(agentId, 'agent id');
  if (/\s/.test(id)) throw new AuthConfigError(`agent id '${id}' must not contain spaces`);
  withTmp((tmp) => {
    sign(tmp, ca, id, id, days, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=clientAuth',
      `subjectAltName=URI:${AGENT_URI_PREFIX}${id}`,
    ]);
    install(tmp, dir, [`${id}.key`, `${id}.crt`], opts.overwrite ?? false);
  });
  return { cert: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) };
}

/** Summary of a PEM certificate, for the CLI to print. */
export function describeCert(path: string): {
  subject: string;
  san: string;
  validTo: string;
  fingerprint: string;
} {
  const c = new X509Certificate(readFileSync(path));
  return {
    subject: c.subject,
    san: c.subjectAltName ?? '',
    validTo: c.validTo,
    fingerprint: c.fingerprint256,
  };
}
