/**
 * Marketplace commands: search, info, install, upgrade, uninstall, list, publish, and `marketplace`
 * (serve | pack | yank). `rollback` is shared with the kernel's component rollback (commands-trust.ts): an
 * installed package goes back to its previous installed version, anything else is a component rollback.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import type { BootedKernel } from '@cam-os/host/server/boot.js';
import { defaultDataDir } from '@cam-os/host/server/config.js';
import { readSecretKeyFile } from '@cam-os/host/trust/keys.js';
import { parseManifestJson, type SignedManifest, validateManifest } from '@cam-os/host/trust/manifest.js';
import {
  buildPackage,
  checkPublishable,
  type KernelControl,
  type Marketplace,
  MarketplaceError,
  openMarketplace,
  openRegistry,
  type ProgressEvent,
  parseSpec,
  type Review,
  readLockfile,
  serveRegistry,
} from '@cam-os/marketplace/index.js';
import { AdminClient, resolveAddress } from '../admin-client.js';
import { type Args, type Command, type Io, str, UsageError } from './shared.js';

const REGISTRY_OPTION = {
  registry: {
    type: 'string' as const,
    help: 'registry directory or http(s) URL (default: $CAM_OS_REGISTRY, then the last one used)',
  },
};
const CHANGE_OPTIONS = {
  ...REGISTRY_OPTION,
  yes: { type: 'boolean' as const, short: 'y', help: 'agree to the imports without asking (for scripts)' },
  'no-load': {
    type: 'boolean' as const,
    help: 'change the installed set only; do not talk to a running kernel',
  },
  'max-size': { type: 'string' as const, help: 'largest package accepted, in bytes (default 64 MiB)' },
};

function dataDir(args: Args): string {
  return str(args, 'data-dir') ?? defaultDataDir();
}

/** The running kernel, through the admin service; undefined with --no-load. */
function kernelControl(args: Args): { control: KernelControl; close(): void } | undefined {
  if (args.values['no-load'] === true) return undefined;
  let address: string;
  try {
    address = resolveAddress({ address: str(args, 'address'), dataDir: str(args, 'data-dir') });
  } catch (e) {
    throw new Error(`${(e as Error).message}; or pass --no-load to change the installed set without loading`);
  }
  const client = new AdminClient(address);
  return { close: () => client.close(), control: adminControl(client) };
}

/** A swap the kernel rolled back (failed health check, import-state refusal) is a failed upgrade. */
function requireSwapped(name: string, r: { result: string; reason?: string }): void {
  if (r.result !== 'swapped') throw new Error(`swap of ${name} rolled back: ${r.reason}`);
}

/** The marketplace's view of a kernel reached through its admin gRPC service. */
export function adminControl(client: AdminClient): KernelControl {
  return {
    list: async () => (await client.list()).map((c) => ({ name: c.name, version: c.version })),
    load: async (component, manifestJson) => {
      await client.load(component, manifestJson);
    },
    swap: async (name, component, manifestJson, allowDowngrade) =>
      requireSwapped(name, await client.swap(name, component, manifestJson, allowDowngrade)),
    unload: async (name) => {
      await client.unload(name);
    },
  };
}

function formatReview(review: Review): string[] {
  const lines: string[] = [];
  for (const i of review.items) {
    const head =
      i.action === 'install'
        ? `install ${i.name}@${i.version}${i.dependency ? ' (dependency)' : ''}`
        : `${i.action} ${i.name} ${i.from} -> ${i.version}`;
    lines.push(head);
    lines.push(
      `  signed by ${i.publisher}${i.publisherLabel ? ` (${i.publisherLabel})` : ''} — ML-DSA-65 + Ed25519, sigstore bundle verified`,
    );
    if (i.action === 'install') lines.push(`  imports: ${i.imports.join(', ') || 'none'}`);
    else {
      for (const a of i.addedImports) lines.push(`  + ${a}   (new permission)`);
      for (const r of i.removedImports) lines.push(`  - ${r}`);
      if (!i.addedImports.length && !i.removedImports.length) lines.push('  imports unchanged');
    }
  }
  return lines;
}

function confirmer(args: Args, io: Io): (review: Review) => Promise<boolean> {
  return async (review) => {
    if (!args.json) for (const l of formatReview(review)) io.out(l);
    if (args.values.yes === true) return true;
    if (args.json || !process.stdin.isTTY) {
      io.err('consent needed for the imports above: re-run with --yes to agree non-interactively');
      return false;
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question('Allow these drivers these imports? [y/N] ');
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}

function progressPrinter(args: Args, io: Io): (e: ProgressEvent) => void {
  const lastPct = new Map<string, number>();
  return (e) => {
    if (args.json) {
      io.err(JSON.stringify({ progress: e }));
      return;
    }
    if (e.phase === 'download') {
      const key = `${e.name}@${e.version}`;
      const pct = e.total ? Math.floor((e.received / e.total) * 4) * 25 : 100;
      if (lastPct.get(key) === pct) return;
      lastPct.set(key, pct);
      io.err(
        `downloading ${key}: ${(e.received / 1024).toFixed(0)}/${(e.total / 1024).toFixed(0)} KiB (${pct}%)`,
      );
    } else if (e.phase === 'verify') io.err(`verifying ${e.name}@${e.version}: ${e.step}`);
    else if (e.phase === 'resolve') io.err(e.message);
    else io.err(`${e.phase === 'load' ? 'loading' : 'installing'} ${e.name}@${e.version}`);
  };
}

function maxSize(args: Args): number | undefined {
  const v = str(args, 'max-size');
  if (v === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(v)) throw new UsageError('--max-size must be a whole number of bytes');
  return Number(v);
}

async function withMarketplace<T>(
  args: Args,
  io: Io,
  fn: (m: Marketplace) => Promise<T>,
  opts: { kernel?: boolean } = {},
): Promise<T> {
  const kernel = opts.kernel ? kernelControl(args) : undefined;
  try {
    const m = await openMarketplace({
      dataDir: dataDir(args),
      registry: str(args, 'registry'),
      ...(kernel ? { kernel: kernel.control } : {}),
      confirm: confirmer(args, io),
      onProgress: progressPrinter(args, io),
      maxPackageBytes: maxSize(args),
    });
    return await fn(m);
  } finally {
    kernel?.close();
  }
}

const search: Command = {
  name: 'search',
  summary: 'search the driver registry by name or description',
  usage: 'search <term> [--registry <dir|url>]',
  options: REGISTRY_OPTION,
  async run(args, io) {
    const term = args.positionals[0] ?? '';
    const hits = await withMarketplace(args, io, (m) => m.search(term));
    if (args.json) io.out(JSON.stringify(hits, null, 2));
    else if (!hits.length) io.out(`no driver matches '${term}'`);
    else for (const h of hits) io.out(`${h.name}@${h.latest ?? '(all yanked)'}  ${h.description}`);
    return 0;
  },
};

const info: Command = {
  name: 'info',
  summary: 'versions, publisher, imports and dependencies of a driver in the registry',
  usage: 'info <name> [--registry <dir|url>]',
  options: REGISTRY_OPTION,
  async run(args, io) {
    const [name] = args.positionals;
    if (!name) throw new UsageError('missing <name>');
    const i = await withMarketplace(args, io, (m) => m.info(name));
    if (args.json) {
      io.out(JSON.stringify(i, null, 2));
      return 0;
    }
    io.out(`${i.name}  ${i.description}${i.installed ? `  (installed: ${i.installed})` : ''}`);
    for (const v of i.versions) {
      io.out(`  ${v.version}${v.yanked ? '  YANKED' : ''}  ${v.size} bytes  ${v.digest}`);
      io.out(
        `    publisher ${v.publisher} (${v.publisherTrust}${v.publisherLabel ? `: ${v.publisherLabel}` : ''})`,
      );
      io.out(`    imports: ${v.imports.join(', ') || 'none'}`);
      if (v.dependencies.length)
        io.out(`    depends on: ${v.dependencies.map((d) => `${d.name}@${d.range}`).join(', ')}`);
    }
    return 0;
  },
};

function printChange(args: Args, io: Io, verb: string, r: Awaited<ReturnType<Marketplace['install']>>): void {
  if (args.json) {
    io.out(JSON.stringify({ ok: true, ...r }, null, 2));
    return;
  }
  for (const c of r.changed)
    io.out(
      `${c.action === 'install' ? 'installed' : 'upgraded'} ${c.name}@${c.version}${c.from ? ` (was ${c.from})` : ''}${r.loaded ? ', running' : ''}`,
    );
  for (const u of r.unchanged)
    io.out(`${u.name}@${u.version} is already ${verb === 'upgrade' ? 'the newest' : 'installed'}`);
}

const install: Command = {
  name: 'install',
  summary: 'install drivers (and their dependencies) from the registry, verified, and load them',
  usage: 'install <name>[@range]... [--registry <dir|url>] [--yes] [--no-load]',
  details:
    'Resolves dependencies, downloads, and verifies the package (digest, ML-DSA-65 + Ed25519 manifest signatures,\n' +
    "publisher in the trust store, sigstore bundle, the operator's import policy) before anything is written.\n" +
    'Shows the imports each driver asks for and who signed it, and asks for consent (--yes for scripts).\n' +
    'Installs atomically under <data-dir>/marketplace and loads into the running kernel.',
  options: CHANGE_OPTIONS,
  async run(args, io) {
    if (!args.positionals.length) throw new UsageError('missing <name>[@range]');
    for (const s of args.positionals) parseSpec(s);
    const r = await withMarketplace(args, io, (m) => m.install(args.positionals), { kernel: true });
    printChange(args, io, 'install', r);
    return 0;
  },
};

const upgrade: Command = {
  name: 'upgrade',
  summary: 'upgrade one or every installed driver to its newest version (shows the permission diff)',
  usage: 'upgrade [name] [--registry <dir|url>] [--yes] [--no-load]',
  details:
    'New imports need consent again. The running component is hot-swapped; the old version is kept for rollback.',
  options: CHANGE_OPTIONS,
  async run(args, io) {
    const r = await withMarketplace(args, io, (m) => m.upgrade(args.positionals[0]), { kernel: true });
    printChange(args, io, 'upgrade', r);
    if (!args.json && !r.changed.length && !r.unchanged.length) io.out('nothing is installed');
    return 0;
  },
};

const uninstall: Command = {
  name: 'uninstall',
  summary: 'unload an installed driver and remove it from the installed set',
  usage: 'uninstall <name> [--force] [--no-load]',
  options: {
    force: { type: 'boolean', help: 'remove it even if other installed drivers depend on it' },
    'no-load': { type: 'boolean', help: 'do not talk to a running kernel' },
  },
  async run(args, io) {
    const [name] = args.positionals;
    if (!name) throw new UsageError('missing <name>');
    const kernel = kernelControl(args);
    try {
      const m = await openMarketplaceLocal(dataDir(args), kernel?.control);
      const r = await m.uninstall(name, { force: args.values.force === true });
      io.out(
        args.json
          ? JSON.stringify({ ok: true, ...r })
          : `uninstalled ${r.name}@${r.version}${r.unloaded ? ' (unloaded)' : ''}`,
      );
    } finally {
      kernel?.close();
    }
    return 0;
  },
};

/** For commands that need no registry (uninstall, list, rollback): any location will do, it is not read. */
async function openMarketplaceLocal(dir: string, kernel: KernelControl | undefined): Promise<Marketplace> {
  const lock = await readLockfile(dir);
  return openMarketplace({
    dataDir: dir,
    registry: lock.registry || process.env.CAM_OS_REGISTRY || dir,
    ...(kernel ? { kernel } : {}),
  });
}

const list: Command = {
  name: 'list',
  summary: 'installed drivers: versions, digests, publishers, imports, and whether they run',
  usage: 'list [--no-load]',
  options: { 'no-load': { type: 'boolean', help: 'do not ask a running kernel what it runs' } },
  async run(args, io) {
    let kernel: ReturnType<typeof kernelControl>;
    try {
      kernel = kernelControl(args);
    } catch {
      kernel = undefined; // no kernel running: list the installed set alone
    }
    try {
      const m = await openMarketplaceLocal(dataDir(args), kernel?.control);
      let rows: Awaited<ReturnType<Marketplace['list']>>;
      try {
        rows = await m.list();
      } catch (e) {
        if (!kernel) throw e;
        rows = await (await openMarketplaceLocal(dataDir(args), undefined)).list();
      }
      if (args.json) io.out(JSON.stringify(rows, null, 2));
      else if (!rows.length) io.out('no drivers installed');
      else
        for (const r of rows)
          io.out(
            `${r.name}@${r.version}  ${r.running === undefined ? '' : r.running ? `running ${r.running}  ` : 'not running  '}publisher ${r.publisher}  imports: ${r.imports.join(', ') || 'none'}${r.previous.length ? `  (rollback to ${r.previous.at(-1)})` : ''}`,
          );
    } finally {
      kernel?.close();
    }
    return 0;
  },
};

/**
 * `rollback <name>` for an installed package with an earlier version: swaps it back and updates the
 * lockfile. Returns undefined when `name` is not a marketplace package (the caller does a component
 * rollback instead).
 */
export async function marketplaceRollback(args: Args, io: Io, name: string): Promise<number | undefined> {
  const lock = await readLockfile(dataDir(args));
  const p = lock.packages[name];
  if (!p || p.previous.length === 0) return undefined;
  const kernel = kernelControl(args);
  try {
    const m = await openMarketplaceLocal(dataDir(args), kernel?.control);
    const r = await m.rollback(name);
    io.out(
      args.json
        ? JSON.stringify({ ok: true, ...r })
        : `rolled back ${r.name} ${r.from} -> ${r.to}${r.swapped ? ' (swapped in the kernel)' : ''}`,
    );
    return 0;
  } finally {
    kernel?.close();
  }
}

/** The registry signing key (`--registry-key <secret.json>`), if given. */
async function registryKey(args: Args) {
  const file = str(args, 'registry-key');
  return file ? readSecretKeyFile(file) : undefined;
}

function token(args: Args): string | undefined {
  return str(args, 'token') ?? process.env.CAM_OS_REGISTRY_TOKEN;
}

const publish: Command = {
  name: 'publish',
  summary: 'publish a driver package to a registry (a directory, or over HTTP with a bearer token)',
  usage: 'publish <package.campkg> --registry <dir|url> [--token <t>] [--registry-key <secret.json>]',
  details:
    'The registry checks the package is consistent (container, manifest signatures with the key it ships, sigstore\n' +
    'bundle) and adds it to the index. Over HTTP the token is the one `marketplace serve` was started with\n' +
    '(--token or $CAM_OS_REGISTRY_TOKEN). A directory registry signed with a registry key is re-signed with\n' +
    '--registry-key (a publisher-format secret key); giving one to an unsigned directory registry starts signing it.',
  options: {
    ...REGISTRY_OPTION,
    token: { type: 'string', help: 'bearer token for an HTTP registry' },
    'registry-key': { type: 'string', help: 'directory registry: secret key that signs the index' },
  },
  async run(args, io) {
    const [file] = args.positionals;
    const location = str(args, 'registry');
    if (!file) throw new UsageError('missing <package.campkg>');
    if (!location) throw new UsageError('missing --registry <dir|url>');
    const bytes = await readFile(file);
    const t = token(args);
    const r = await openRegistry(location).publish(bytes, { token: t, key: await registryKey(args) });
    io.out(
      args.json
        ? JSON.stringify({ ok: true, ...r })
        : `${r.created ? 'published' : 'already published'} ${r.name}@${r.version} (${r.size} bytes, ${r.digest}) to ${location}`,
    );
    return 0;
  },
};

const marketplace: Command = {
  name: 'marketplace',
  summary: 'registry tools: serve a directory, pack a signed driver, yank a version; load the installed set',
  usage:
    'marketplace serve <dir> [--listen <host:port>] [--token <t>] [--registry-key <secret.json>] | marketplace pack <component.wasm> --manifest <signed.json> --key <secret.json> --readme <file> --license <file> --out <pkg.campkg> | marketplace yank <name>@<version> --registry <dir|url> [--undo] [--token <t> | --registry-key <secret.json>] | marketplace load',
  details:
    'serve: GET /index.json and /packages/<name>/<name>-<version>.campkg; POST /publish and /yank need the bearer token.\n' +
    'pack: builds a cam-os/package@1 file; the manifest must already be signed by --key (ML-DSA-65 + Ed25519);\n' +
    'the sigstore bundle is signed with the same key.\n' +
    'load: loads every installed driver the running kernel does not run (after a restart), each verified again.',
  options: {
    ...REGISTRY_OPTION,
    listen: { type: 'string', help: 'serve: address to listen on (default 127.0.0.1:8790)' },
    token: {
      type: 'string',
      help: 'serve: bearer token required to publish (at least 16 characters); yank: token to send',
    },
    manifest: { type: 'string', short: 'm', help: 'pack: the signed manifest' },
    key: { type: 'string', help: 'pack: the publisher secret key file' },
    readme: { type: 'string', help: 'pack: README file' },
    license: { type: 'string', help: 'pack: LICENSE file' },
    out: { type: 'string', short: 'o', help: 'pack: output package file' },
    undo: { type: 'boolean', help: 'yank: un-yank the version' },
    'registry-key': {
      type: 'string',
      help: 'serve, yank: secret key that signs the registry index (operators trust its public half)',
    },
  },
  async run(args, io) {
    const [sub, arg] = args.positionals;
    if (sub === 'serve') {
      if (!arg) throw new UsageError('missing <dir>');
      const t = token(args);
      const signingKey = await registryKey(args);
      const reg = await serveRegistry(arg, {
        listen: str(args, 'listen') ?? '127.0.0.1:8790',
        ...(t ? { token: t } : {}),
        ...(signingKey ? { signingKey } : {}),
        log: args.json ? (l) => io.err(JSON.stringify({ log: l })) : (l) => io.err(l),
      });
      io.out(
        args.json
          ? JSON.stringify({ ok: true, url: reg.url, dir: arg, publish: t !== undefined })
          : `registry ${arg} served at ${reg.url}${t ? ' (publish with the bearer token)' : ' (read-only: no --token)'}`,
      );
      const stop = () => reg.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return -1;
    }
    if (sub === 'pack') {
      if (!arg) throw new UsageError('missing <component.wasm>');
      const need = (k: string) => {
        const v = str(args, k);
        if (!v) throw new UsageError(`missing --${k}`);
        return v;
      };
      const [component, manifestText, pair, readme, license] = await Promise.all([
        readFile(arg),
        readFile(need('manifest')),
        readSecretKeyFile(need('key')),
        readFile(need('readme')),
        readFile(need('license')),
      ]);
      const out = need('out');
      const parsed = parseManifestJson(manifestText);
      if (!parsed.ok)
        throw new MarketplaceError('malformed-package', `${parsed.issue.field}: ${parsed.issue.message}`);
      const valid = validateManifest(parsed.value);
      if (!valid.ok)
        throw new MarketplaceError(
          'malformed-package',
          valid.issues.map((i) => `${i.field}: ${i.message}`).join('; '),
        );
      if (!valid.manifest.signatures)
        throw new MarketplaceError('bad-signature', 'the manifest is not signed (sign it first)');
      const bytes = buildPackage({
        componentBytes: component,
        manifest: valid.manifest as SignedManifest,
        keyPair: pair,
        readme,
        license,
      });
      // Refuse to write a package a registry would refuse.
      const { manifest } = await checkPublishable(bytes, Number.MAX_SAFE_INTEGER);
      await writeFile(out, bytes);
      io.out(
        args.json
          ? JSON.stringify({
              ok: true,
              file: out,
              name: manifest.name,
              version: manifest.version,
              size: bytes.byteLength,
            })
          : `packed ${manifest.name}@${manifest.version} into ${out} (${bytes.byteLength} bytes)`,
      );
      return 0;
    }
    if (sub === 'yank') {
      const location = str(args, 'registry');
      if (!arg?.includes('@'))
        throw new UsageError('usage: marketplace yank <name>@<version> --registry <dir|url>');
      if (!location) throw new UsageError('missing --registry <dir|url>');
      const { name, range: version } = parseSpec(arg);
      const yanked = args.values.undo !== true;
      const t = token(args);
      await openRegistry(location).setYanked(name, version, yanked, {
        token: t,
        key: await registryKey(args),
      });
      io.out(
        args.json
          ? JSON.stringify({ ok: true, name, version, yanked })
          : `${yanked ? 'yanked' : 'un-yanked'} ${name}@${version}`,
      );
      return 0;
    }
    if (sub === 'load') {
      const kernel = kernelControl(args);
      try {
        const m = await openMarketplaceLocal(dataDir(args), kernel?.control);
        const r = await m.loadInstalled();
        if (args.json) io.out(JSON.stringify({ ok: r.failed.length === 0, ...r }, null, 2));
        else {
          for (const l of r.loaded) io.out(`loaded ${l.name}@${l.version}`);
          for (const n of r.alreadyRunning) io.out(`${n} is already running`);
          for (const f of r.failed) io.err(`refused ${f.name}@${f.version}: ${f.error}`);
        }
        return r.failed.length === 0 ? 0 : 1;
      } finally {
        kernel?.close();
      }
    }
    throw new UsageError(`unknown marketplace subcommand '${sub ?? ''}' (serve, pack, yank, load)`);
  },
};

/**
 * `cam-os up`: load the installed set into the kernel it just started, each package verified again (digest,
 * signatures, publisher trust, capability policy) exactly as `marketplace load` does over the admin API.
 */
export async function loadInstalledAtStart(dataDir: string, k: BootedKernel) {
  if (Object.keys((await readLockfile(dataDir)).packages).length === 0) return undefined;
  const m = await openMarketplaceLocal(dataDir, {
    list: async () => k.kernel.list().map((c) => ({ name: c.name, version: c.version ?? '' })),
    load: async (component, manifestJson) => {
      await k.loader.load(component, manifestJson);
    },
    swap: async (name, component, manifestJson, allowDowngrade) =>
      requireSwapped(name, await k.loader.swap(name, component, manifestJson, { allowDowngrade })),
    unload: (name) => k.kernel.unload(name),
  });
  return m.loadInstalled();
}

export const MARKETPLACE_COMMANDS: Command[] = [
  search,
  info,
  install,
  upgrade,
  uninstall,
  list,
  publish,
  marketplace,
];
