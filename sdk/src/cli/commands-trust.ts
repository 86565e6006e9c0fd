/**
 * Commands for hot-swap and trust: swap, rollback, history, attest, keys, trust.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDataDir } from '@cam-os/host/server/config.js';
import { openTpm, readEventLog, replay, verifyQuote } from '@cam-os/host/tpm/index.js';
import {
  generatePublisherKeyPair,
  importPublicKey,
  readPublicKeyFile,
  readSecretKeyFile,
  writePublicKeyFile,
  writeSecretKeyFile,
} from '@cam-os/host/trust/keys.js';
import { TrustStore } from '@cam-os/host/trust/trust-store.js';
import type { SwapRecordMsg } from '../admin-client.js';
import { certsInit, certsIssueClient, tokenIssue } from './commands/auth.js';
import { marketplaceRollback } from './commands-marketplace.js';
import { type Args, type Command, str, UsageError, withAdmin } from './shared.js';

function formatSwap(r: SwapRecordMsg): string {
  const what = `${r.name}: ${r.from_version || '?'} (${r.from_digest.slice(7, 19)}) -> ${r.to_version || '?'} (${r.to_digest.slice(7, 19)})`;
  return r.result === 'swapped'
    ? `${r.at}  ${r.kind} ${what}  swapped, new calls held ${r.paused_ms.toFixed(1)} ms`
    : `${r.at}  ${r.kind} ${what}  ROLLED BACK: ${r.reason}`;
}

const swap: Command = {
  name: 'swap',
  summary: 'hot-swap a running component for a new build (state handed over, old version kept on failure)',
  usage: 'swap <name> <component.wasm> --manifest <manifest.json> [--allow-downgrade]',
  details:
    'The new build is verified (signature, digest, policy), loaded beside the old one, initialised and health-checked;\n' +
    'then new calls are held while in-flight calls finish and the state moves across (export-state -> import-state).\n' +
    'If anything fails the old version keeps serving and the error says why.',
  options: {
    manifest: { type: 'string', short: 'm', help: 'path of the new build’s signed manifest' },
    'allow-downgrade': { type: 'boolean', help: 'accept a lower version than the running one' },
  },
  async run(args, io) {
    const [name, file] = args.positionals;
    const manifestPath = str(args, 'manifest');
    if (!name || !file) throw new UsageError('missing <name> or <component.wasm>');
    if (!manifestPath) throw new UsageError('missing --manifest <manifest.json>');
    const [bytes, manifest] = await Promise.all([readFile(file), readFile(manifestPath, 'utf8')]);
    const r = await withAdmin(args, (c) =>
      c.swap(name, bytes, manifest, args.values['allow-downgrade'] === true),
    );
    io.out(args.json ? JSON.stringify(r, null, 2) : formatSwap(r));
    return 0;
  },
};

const rollback: Command = {
  name: 'rollback',
  summary:
    'return an installed driver to its previous installed version, or a component to its pre-swap version',
  usage: 'rollback <name>',
  details:
    'A driver installed with `cam-os install` that has an earlier installed version goes back to it (re-verified,\n' +
    'swapped in, lockfile updated). Any other component returns to the version that ran before its last swap.',
  async run(args, io) {
    const [name] = args.positionals;
    if (!name) throw new UsageError('missing <name>');
    const installed = await marketplaceRollback(args, io, name);
    if (installed !== undefined) return installed;
    const r = await withAdmin(args, (c) => c.rollback(name));
    io.out(args.json ? JSON.stringify(r, null, 2) : formatSwap(r));
    return 0;
  },
};

const history: Command = {
  name: 'history',
  summary: 'swap and rollback history (of one component, or all)',
  usage: 'history [name]',
  async run(args, io) {
    const records = await withAdmin(args, (c) => c.history(args.positionals[0] ?? ''));
    if (args.json) io.out(JSON.stringify(records, null, 2));
    else io.out(records.length ? records.map(formatSwap).join('\n') : 'no swaps yet');
    return 0;
  },
};

const attest: Command = {
  name: 'attest',
  summary: 'get a TPM quote over the measurement PCR with its event log, or verify one',
  usage: 'attest [--out <file>] | attest --verify <file>',
  details:
    'Without --verify: asks the running kernel for a quote over PCR 23 with a fresh random nonce and the event log of\n' +
    'every component it measured, checks it, and writes it to --out (JSON) if given.\n' +
    'With --verify <file>: replays the event log, checks the quote signature, nonce and PCR digest offline.',
  options: {
    out: { type: 'string', short: 'o', help: 'write the attestation (JSON) to this file' },
    verify: { type: 'string', help: 'verify an attestation file instead of asking the kernel' },
  },
  async run(args, io) {
    const verifyFile = str(args, 'verify');
    let doc: {
      pcr: number;
      attest: string;
      signature: string;
      publicKeyPem: string;
      eventLog: string;
      nonce: string;
    };
    if (verifyFile) {
      doc = JSON.parse(await readFile(verifyFile, 'utf8'));
    } else {
      const nonce = randomBytes(32);
      const a = await withAdmin(args, (c) => c.attest(nonce));
      doc = {
        pcr: a.pcr,
        attest: Buffer.from(a.attest).toString('base64'),
        signature: Buffer.from(a.signature).toString('base64'),
        publicKeyPem: a.public_key_pem,
        eventLog: a.event_log,
        nonce: nonce.toString('hex'),
      };
      if (!Buffer.from(a.nonce).equals(nonce)) throw new Error('the kernel answered with a different nonce');
      const out = str(args, 'out');
      if (out) await writeFile(out, `${JSON.stringify(doc, null, 2)}\n`);
    }
    // The event log is parsed by the same reader the kernel uses for its own file.
    const tmp = join(tmpdir(), `cam-attest-${process.pid}.log`);
    await writeFile(tmp, doc.eventLog);
    const events = await readEventLog(tmp).finally(() => rm(tmp, { force: true }));
    const result = verifyQuote({
      quote: { attest: Buffer.from(doc.attest, 'base64'), signature: Buffer.from(doc.signature, 'base64') },
      publicKey: doc.publicKeyPem,
      nonce: Buffer.from(doc.nonce, 'hex'),
      log: { pcr: doc.pcr, events },
    });
    const summary = {
      ok: result.ok,
      pcr: doc.pcr,
      replayed: replay(events).toString('hex'),
      events: events.map((e) => ({
        index: e.index,
        name: e.name,
        version: e.version,
        digest: e.digest,
        time: e.time,
      })),
      ...(result.ok ? {} : { reason: result.reason, detail: result.detail }),
    };
    if (args.json) io.out(JSON.stringify(summary, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
    else {
      io.out(
        `${result.ok ? 'VERIFIED' : 'NOT VERIFIED'}: PCR ${doc.pcr} = ${summary.replayed} replayed from ${events.length} events`,
      );
      for (const e of summary.events)
        io.out(`  #${e.index} ${e.name}@${e.version} ${e.digest.slice(0, 16)}… ${e.time}`);
      if (!result.ok) io.out(`reason: ${summary.reason}${summary.detail ? ` — ${summary.detail}` : ''}`);
    }
    return result.ok ? 0 : 1;
  },
};

/** The TPM to seed a new key from, as the kernel reads its `tpm` setting: a TCTI, 'auto' or 'none'. */
function keySeedTcti(setting: string | undefined): string | undefined {
  if (setting === undefined || setting === '' || setting === 'none') return undefined;
  if (setting === 'auto') return existsSync('/dev/tpmrm0') ? 'device:/dev/tpmrm0' : undefined;
  return setting;
}

const keys: Command = {
  name: 'keys',
  summary: 'publisher keys (ML-DSA-65 + Ed25519): generate, export, import, show',
  usage:
    'keys generate --out <secret.json> [--tpm <tcti>] | keys export <secret.json> --out <public.json> | keys import <file> | keys show <file>',
  details:
    'generate writes a secret key file (mode 0600) and prints its key id; export writes the public half that\n' +
    'operators add with `cam-os trust add`; import checks a secret or public key file (the key id is re-derived\n' +
    'from the key material) and copies it into <data-dir>/keys/<key-id>.json (secret: mode 0600); show prints the\n' +
    'key id of a public or secret key file.',
  options: {
    out: { type: 'string', short: 'o', help: 'output file' },
    force: { type: 'boolean', help: 'overwrite an existing secret key file' },
    tpm: {
      type: 'string',
      help: "generate: seed the key from this TPM's RNG (TCTI, 'auto' or 'none'; default: CAM_OS_TPM)",
    },
  },
  async run(args, io) {
    const [sub, file] = args.positionals;
    const out = str(args, 'out');
    if (sub === 'generate') {
      if (!out) throw new UsageError('missing --out <secret.json>');
      const tcti = keySeedTcti(str(args, 'tpm') ?? process.env.CAM_OS_TPM);
      // A TPM the operator named must work: falling back to the OS RNG would make the output lie.
      const tpm = tcti ? await openTpm(tcti) : undefined;
      let pair: Awaited<ReturnType<typeof generatePublisherKeyPair>>;
      try {
        pair = await generatePublisherKeyPair(tpm ? { seedSource: (n) => tpm.getRandom(n) } : {});
      } finally {
        await tpm?.close();
      }
      await writeSecretKeyFile(out, pair, { overwrite: args.values.force === true });
      const rng = tpm ? `the TPM RNG (${tcti})` : 'the operating system RNG';
      io.out(
        args.json
          ? JSON.stringify({ keyId: pair.keyId, file: out, rng: tpm ? 'tpm' : 'os', tcti: tcti ?? null })
          : `generated key ${pair.keyId} in ${out}, seeded by ${rng} (keep it secret)`,
      );
      return 0;
    }
    if (sub === 'export') {
      if (!file || !out) throw new UsageError('usage: keys export <secret.json> --out <public.json>');
      const pair = await readSecretKeyFile(file);
      await writePublicKeyFile(out, pair);
      io.out(
        args.json
          ? JSON.stringify({ keyId: pair.keyId, file: out })
          : `wrote public key ${pair.keyId} to ${out}`,
      );
      return 0;
    }
    if (sub === 'import') {
      if (!file) throw new UsageError('usage: keys import <file>');
      const raw = JSON.parse(await readFile(file, 'utf8')) as { format?: string };
      const dir = join(str(args, 'data-dir') ?? defaultDataDir(), 'keys');
      const secret = raw.format?.includes('secret');
      const keyId = secret ? (await readSecretKeyFile(file)).keyId : importPublicKey(raw, file).keyId;
      const dest = join(dir, `${keyId}${secret ? '.secret' : '.public'}.json`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (secret)
        await writeSecretKeyFile(dest, await readSecretKeyFile(file), {
          overwrite: args.values.force === true,
        });
      else await writePublicKeyFile(dest, importPublicKey(raw, file));
      io.out(
        args.json
          ? JSON.stringify({ keyId, file: dest, secret })
          : `imported ${secret ? 'secret' : 'public'} key ${keyId} to ${dest}`,
      );
      return 0;
    }
    if (sub === 'show') {
      if (!file) throw new UsageError('usage: keys show <file>');
      const raw = JSON.parse(await readFile(file, 'utf8')) as { format?: string };
      const keyId = raw.format?.includes('secret')
        ? (await readSecretKeyFile(file)).keyId
        : importPublicKey(raw, file).keyId;
      io.out(args.json ? JSON.stringify({ keyId }) : keyId);
      return 0;
    }
    throw new UsageError(`unknown keys subcommand '${sub ?? ''}' (generate, export, import, show)`);
  },
};

async function store(args: Args): Promise<TrustStore> {
  return TrustStore.open(join(str(args, 'data-dir') ?? defaultDataDir(), 'trust'));
}

const trust: Command = {
  name: 'trust',
  summary: 'the trust store of publisher keys: list, add, remove, revoke',
  usage:
    'trust list | trust add <public.json> [--label <text>] | trust remove <key-id> | trust revoke <key-id> --reason <text>',
  details:
    'Changes take effect at the next load in a running kernel. A revoked key stays in the store so that\n' +
    'everything it signed keeps being refused; it cannot be re-added.',
  options: {
    label: { type: 'string', help: 'a name for the key (add)' },
    reason: { type: 'string', help: 'why the key is revoked (revoke)' },
  },
  async run(args, io) {
    const [sub, arg] = args.positionals;
    const s = await store(args);
    if (sub === 'list' || sub === undefined) {
      const list = s.list().map((k) => ({
        keyId: k.keyId,
        label: k.label ?? '',
        addedAt: k.addedAt,
        revoked: k.revoked ?? null,
      }));
      if (args.json) io.out(JSON.stringify(list, null, 2));
      else if (list.length === 0) io.out('the trust store is empty');
      else
        for (const k of list)
          io.out(
            `${k.keyId}  ${k.revoked ? `REVOKED ${k.revoked.at}: ${k.revoked.reason}` : 'trusted'}  ${k.label}`,
          );
      return 0;
    }
    if (sub === 'add') {
      if (!arg) throw new UsageError('missing <public.json>');
      const key = await readPublicKeyFile(arg);
      const label = str(args, 'label');
      await s.add(key, label ? { label } : {});
      io.out(
        args.json
          ? JSON.stringify({ ok: true, keyId: key.keyId })
          : `trusted ${key.keyId}${label ? ` (${label})` : ''}`,
      );
      return 0;
    }
    if (sub === 'remove') {
      if (!arg) throw new UsageError('missing <key-id>');
      await s.remove(arg);
      io.out(args.json ? JSON.stringify({ ok: true, removed: arg }) : `removed ${arg}`);
      return 0;
    }
    if (sub === 'revoke') {
      const reason = str(args, 'reason');
      if (!arg || !reason) throw new UsageError('usage: trust revoke <key-id> --reason <text>');
      await s.revoke(arg, reason);
      io.out(args.json ? JSON.stringify({ ok: true, revoked: arg }) : `revoked ${arg}: ${reason}`);
      return 0;
    }
    throw new UsageError(`unknown trust subcommand '${sub}' (list, add, remove, revoke)`);
  },
};

export const TRUST_COMMANDS: Command[] = [swap, rollback, history, attest, keys, trust];

const token: Command = {
  name: 'token',
  summary: 'issue a JWT bearer token for an agent (switches JWT auth on for the kernel)',
  usage: 'token issue --agent <id> [--scope <scope>]... [--ttl <seconds>]',
  details:
    'Scopes: syscall groups (group:tasks, group:context, group:security, group:observability, group:policy,\n' +
    'group:admin) and context namespaces (ns:<name>, ns:* for all). Default: every group but admin, and the\n' +
    "agent's own namespace. The signing key is kept in <data-dir>/auth (mode 0600); a running kernel uses it\n" +
    'from its next start.',
  options: {
    agent: { type: 'string', help: 'agent id the token is for (required)' },
    scope: { type: 'string', multiple: true, help: 'a scope; repeat for several' },
    ttl: { type: 'string', help: 'lifetime in seconds (default 3600)' },
  },
  async run(args, io) {
    if (args.positionals[0] !== 'issue') throw new UsageError("the only subcommand is 'issue'");
    const agentId = str(args, 'agent');
    if (!agentId) throw new UsageError('missing --agent <id>');
    const ttl = str(args, 'ttl');
    if (ttl !== undefined && !/^\d+$/.test(ttl))
      throw new UsageError('--ttl must be a whole number of seconds');
    const scopes = args.values.scope as unknown as string[] | undefined;
    const r = await tokenIssue({
      dataDir: str(args, 'data-dir') ?? defaultDataDir(),
      agentId,
      scopes: scopes?.length ? scopes : undefined,
      ttlSeconds: ttl ? Number(ttl) : undefined,
    });
    if (args.json) io.out(JSON.stringify(r, null, 2));
    else {
      io.out(r.token);
      io.err(
        `token for ${r.agentId}, scopes ${r.scopes.join(' ')}, expires ${r.expiresAt}${r.keyCreated ? ` (new signing key ${r.keyFile}; JWT auth on)` : ''}`,
      );
    }
    return 0;
  },
};

const certs: Command = {
  name: 'certs',
  summary: 'TLS for non-loopback listeners: create a CA and server certificate, issue client certificates',
  usage:
    'certs init [--host <name>]... [--client-auth require|optional|none] | certs client --agent <id> [--out <dir>]',
  options: {
    host: { type: 'string', multiple: true, help: 'a name or address the kernel is reached at (init)' },
    'client-auth': { type: 'string', help: 'require|optional|none (init)' },
    agent: { type: 'string', help: 'agent id for the client certificate (client)' },
    out: { type: 'string', help: 'directory for the client certificate and key (client)' },
  },
  async run(args, io) {
    const dataDir = str(args, 'data-dir') ?? defaultDataDir();
    const [sub] = args.positionals;
    if (sub === 'init') {
      const clientAuth = str(args, 'client-auth');
      if (clientAuth && !['require', 'optional', 'none'].includes(clientAuth)) {
        throw new UsageError('--client-auth must be require, optional or none');
      }
      const hosts = args.values.host as unknown as string[] | undefined;
      const r = certsInit({
        dataDir,
        hosts: hosts?.length ? hosts : undefined,
        clientAuth: clientAuth as never,
      });
      io.out(
        args.json
          ? JSON.stringify(r, null, 2)
          : `CA ${r.ca}\nserver certificate ${r.serverCert} (${r.subjectAltNames})\nTLS on in ${r.authFile}`,
      );
      return 0;
    }
    if (sub === 'client') {
      const agentId = str(args, 'agent');
      if (!agentId) throw new UsageError('missing --agent <id>');
      const r = certsIssueClient({ dataDir, agentId, outDir: str(args, 'out') });
      io.out(args.json ? JSON.stringify(r, null, 2) : `client certificate ${r.cert}\nkey ${r.key}`);
      return 0;
    }
    throw new UsageError(`unknown certs subcommand '${sub ?? ''}' (init, client)`);
  },
};

TRUST_COMMANDS.push(token, certs);
