/**
 * Install, upgrade, uninstall and roll back drivers from a registry into the installed set and the running
 * kernel.
 *
 * Every change follows the same order, and nothing reaches the installed set before the last check:
 *   resolve (index, dependencies, cycles, yanked, downgrade) -> download (size cap, index digest)
 *   -> verify (container, paths, manifest signatures, component digest, publisher trust, sigstore bundle,
 *   capability policy, signed name/version = index entry) -> operator consent (imports, signer)
 *   -> stage (a temp dir on the same filesystem, outside the installed set) -> load / swap in the kernel
 *   -> rename into place and replace the lockfile atomically.
 * A failure at any step undoes the steps before it (kernel loads are unloaded, swaps rolled back, renamed
 * directories removed), so the installed set — directories and lockfile — stays byte-identical.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isKebabName } from '@cam-os/host/trust/manifest.js';
import { isSemver, isValidRange } from '@cam-os/host/trust/semver.js';
import type { TrustKeyLookup } from '@cam-os/host/trust/trust-store.js';
import type { VerifyPolicy } from '@cam-os/host/trust/verifier.js';
import { MarketplaceError, marketError } from './errors.js';
import {
  KEEP_PREVIOUS,
  type LockedPackage,
  type LockedVersion,
  type Lockfile,
  marketplaceDir,
  readLockfile,
  versionDir,
  writeLockfile,
} from './lockfile.js';
import { type VerifiedPackage, verifyPackage } from './package.js';
import { DEFAULT_MAX_PACKAGE_BYTES, PACKAGE_FILES, unsafePathReason } from './package-format.js';
import type { Registry } from './registry.js';
import { type IndexVersion, type RegistryIndex, verifyIndexSignature } from './registry-index.js';
import { compareVersions, maxSatisfying, satisfies, sortVersions } from './semver-range.js';
import type { PinnedLog } from './sigstore.js';

/** What the marketplace needs from the running kernel (the CLI adapts the admin gRPC client). */
export interface KernelControl {
  /** Names and versions of the loaded components. */
  list(): Promise<Array<{ name: string; version: string }>>;
  load(component: Uint8Array, manifestJson: string): Promise<void>;
  swap(name: string, component: Uint8Array, manifestJson: string, allowDowngrade: boolean): Promise<void>;
  unload(name: string): Promise<void>;
}

export type ProgressEvent =
  | { phase: 'resolve'; message: string }
  | { phase: 'download'; name: string; version: string; received: number; total: number }
  | { phase: 'verify'; name: string; version: string; step: string }
  | { phase: 'load' | 'commit'; name: string; version: string };

/** One driver in a plan, as shown to the operator for consent. */
export interface ReviewItem {
  name: string;
  version: string;
  action: 'install' | 'upgrade' | 'rollback';
  /** Installed version being replaced (upgrade, rollback). */
  from?: string;
  publisher: string;
  publisherLabel?: string;
  imports: readonly string[];
  /** Imports the installed version did not have (all of them for a new install). */
  addedImports: readonly string[];
  removedImports: readonly string[];
  /** True when this driver is pulled in as a dependency. */
  dependency: boolean;
}

export interface Review {
  items: ReviewItem[];
  /** True when some item asks for imports the operator has not agreed to before. */
  needsConsent: boolean;
}

export interface MarketplaceOptions {
  dataDir: string;
  registry: Registry;
  trustStore: TrustKeyLookup;
  /** The operator's capability policy (the kernel's allowedImports). */
  policy: VerifyPolicy;
  pinnedLogs?: readonly PinnedLog[];
  /** Absent: the installed set is changed on disk only (nothing is loaded). */
  kernel?: KernelControl;
  /** Asked when new imports are requested; resolve true to go ahead. Absent: refuse (consent-declined). */
  confirm?: (review: Review) => Promise<boolean>;
  onProgress?: (event: ProgressEvent) => void;
  maxPackageBytes?: number;
}

export interface ChangeResult {
  changed: Array<{ name: string; version: string; action: ReviewItem['action']; from?: string }>;
  review: Review;
  /** Packages that were already at the wanted version. */
  unchanged: Array<{ name: string; version: string }>;
  loaded: boolean;
}

interface PlanItem {
  name: string;
  version: string;
  entry: IndexVersion;
  action: 'install' | 'upgrade';
  from?: string;
  dependency: boolean;
  verified?: VerifiedPackage;
}

export function parseSpec(spec: string): { name: string; range: string } {
  const at = spec.indexOf('@');
  const name = at < 0 ? spec : spec.slice(0, at);
  const range = at < 0 ? '*' : spec.slice(at + 1);
  if (!isKebabName(name))
    throw marketError('invalid-argument', `'${name}' is not a package name (kebab-case)`);
  if (!isValidRange(range)) throw marketError('invalid-argument', `'${range}' is not a version or range`);
  return { name, range };
}

function highestOf(versions: string[]): string | undefined {
  return sortVersions(versions).at(-1);
}

export class Marketplace {
  constructor(readonly options: MarketplaceOptions) {}

  get #max(): number {
    return this.options.maxPackageBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
  }

  #progress(e: ProgressEvent): void {
    this.options.onProgress?.(e);
  }

  /** `install name[@range]...`: resolves, downloads, verifies, asks, stages, loads, commits. */
  install(specs: string[]): Promise<ChangeResult> {
    return this.#exclusive(() => this.#install(specs));
  }

  /** `upgrade [name]`: newest non-yanked version of one or every installed package. */
  upgrade(name?: string): Promise<ChangeResult> {
    return this.#exclusive(() => this.#upgrade(name));
  }

  /** `uninstall name`: unloads it and removes every installed version. */
  uninstall(name: string, opts: { force?: boolean } = {}) {
    return this.#exclusive(() => this.#uninstall(name, opts));
  }

  /** `rollback name`: back to the previously installed version (re-verified, swapped into the kernel). */
  rollback(name: string) {
    return this.#exclusive(() => this.#rollback(name));
  }

  /**
   * One change to the installed set at a time, across processes: an O_EXCL lock file beside (not inside)
   * the installed set, holding the owner's pid. A lock whose owner is gone is taken over.
   */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const dir = join(this.options.dataDir, 'marketplace-staging');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = join(dir, 'lock');
    for (let attempt = 0; ; attempt++) {
      try {
        await writeFile(lock, String(process.pid), { flag: 'wx' });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
        if (!isAlive(owner)) {
          await rm(lock, { force: true });
          continue;
        }
        if (attempt >= 400)
          throw marketError(
            'in-use',
            `another marketplace command (pid ${owner}) is changing the installed set; try again`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    try {
      return await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }

  lockfile(): Promise<Lockfile> {
    return readLockfile(this.options.dataDir);
  }

  /**
   * The registry's index, checked: a signed index must verify with a trusted registry key, be signed by the
   * same key as before and carry a serial no lower than the highest seen; a registry seen signed must stay
   * signed. An unsigned registry relies on the per-package checks alone (see #checkFresh).
   */
  async #readIndex(lock: Lockfile): Promise<RegistryIndex> {
    const index = await this.options.registry.index();
    const loc = this.options.registry.location;
    const known = lock.registries?.[loc];
    if (!index.signature) {
      if (known)
        throw marketError(
          'downgrade',
          `the index of ${loc} was signed before (key ${known.keyId}, serial ${known.serial}) and is not now: refusing a stale or substituted index`,
        );
      return index;
    }
    await verifyIndexSignature(index, this.options.trustStore);
    if (known && known.keyId !== index.signature.keyId)
      throw marketError(
        'bad-signature',
        `the index of ${loc} is signed by key ${index.signature.keyId}, but was signed by ${known.keyId} before`,
      );
    if (known && (index.serial ?? 0) < known.serial)
      throw marketError(
        'downgrade',
        `the index of ${loc} has serial ${index.serial}, older than serial ${known.serial} seen before: the index is stale or rolled back`,
      );
    return index;
  }

  async search(term: string) {
    const index = await this.#readIndex(await this.lockfile());
    const t = term.toLowerCase();
    return Object.entries(index.packages)
      .filter(([name, p]) => name.includes(t) || p.description.toLowerCase().includes(t))
      .map(([name, p]) => {
        const live = Object.entries(p.versions).filter(([, v]) => !v.yanked);
        return {
          name,
          description: p.description,
          latest: highestOf(live.map(([v]) => v)) ?? null,
          versions: Object.keys(p.versions).length,
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async info(name: string) {
    const lock = await this.lockfile();
    const index = await this.#readIndex(lock);
    const p = index.packages[name];
    if (!p) throw marketError('not-found', `no package '${name}' in ${this.options.registry.location}`);
    return {
      name,
      description: p.description,
      installed: lock.packages[name]?.version ?? null,
      versions: sortVersions(Object.keys(p.versions))
        .reverse()
        .map((version) => {
          const v = p.versions[version]!;
          const trust = this.options.trustStore.lookup(v.publisher);
          return {
            version,
            yanked: v.yanked,
            digest: v.digest,
            size: v.size,
            publisher: v.publisher,
            publisherTrust: trust.status,
            publisherLabel: trust.status === 'unknown' ? null : (trust.key.label ?? null),
            imports: v.imports,
            dependencies: v.dependencies,
            publishedAt: v.publishedAt,
          };
        }),
    };
  }

  /** Stale-index check: the index must still list the highest version ever seen of `name`. */
  #checkFresh(index: RegistryIndex, name: string, lock: Lockfile): void {
    const seen = lock.highestSeen[name];
    if (!seen) return;
    const offered = highestOf(Object.keys(index.packages[name]?.versions ?? {}));
    if (!offered || compareVersions(offered, seen) < 0)
      throw marketError(
        'downgrade',
        `the registry offers ${name} up to ${offered ?? 'nothing'}, but ${seen} was seen before: the index is stale or rolled back`,
      );
  }

  #choose(index: RegistryIndex, name: string, range: string): { version: string; entry: IndexVersion } {
    const p = index.packages[name];
    if (!p) throw marketError('not-found', `no package '${name}' in ${this.options.registry.location}`);
    const all = Object.keys(p.versions);
    if (isSemver(range) && p.versions[range]?.yanked)
      throw marketError('yanked', `${name}@${range} is yanked; choose another version`);
    const live = all.filter((v) => !p.versions[v]!.yanked);
    const version = maxSatisfying(live, range);
    if (!version) {
      if (maxSatisfying(all, range))
        throw marketError('yanked', `every version of ${name} matching '${range}' is yanked`);
      throw marketError(
        'no-matching-version',
        `no version of ${name} matches '${range}' (have ${sortVersions(all).join(', ') || 'none'})`,
      );
    }
    return { version, entry: p.versions[version]! };
  }

  /** Resolves `name@range` and its dependencies into an install order (dependencies first). */
  #resolve(
    index: RegistryIndex,
    lock: Lockfile,
    roots: Array<{ name: string; range: string; pinned?: string }>,
  ): { plan: PlanItem[]; unchanged: Array<{ name: string; version: string }> } {
    const plan: PlanItem[] = [];
    const unchanged: Array<{ name: string; version: string }> = [];
    const planned = new Map<string, PlanItem>();
    const visit = (
      name: string,
      range: string,
      stack: string[],
      pinned: string | undefined,
      dependency: boolean,
    ) => {
      if (stack.includes(name))
        throw marketError(
          'dependency-cycle',
          `dependency cycle: ${[...stack.slice(stack.indexOf(name)), name].join(' -> ')}`,
        );
      const already = planned.get(name);
      if (already) {
        if (!satisfies(already.version, range))
          throw marketError(
            'no-matching-version',
            `${name}@${already.version} is planned, but '${range}' is also required`,
          );
        return;
      }
      const installed = lock.packages[name];
      if (installed && !pinned && satisfies(installed.version, range) && dependency) {
        unchanged.push({ name, version: installed.version });
        return;
      }
      this.#checkFresh(index, name, lock);
      const { version, entry } = pinned
        ? { version: pinned, entry: index.packages[name]!.versions[pinned]! }
        : this.#choose(index, name, range);
      if (installed) {
        const cmp = compareVersions(version, installed.version);
        if (cmp < 0)
          throw marketError(
            'downgrade',
            `${name}@${version} is older than the installed ${installed.version} (use \`cam-os rollback ${name}\` to go back)`,
          );
        if (cmp === 0) {
          unchanged.push({ name, version });
          return;
        }
      }
      const item: PlanItem = {
        name,
        version,
        entry,
        action: installed ? 'upgrade' : 'install',
        ...(installed ? { from: installed.version } : {}),
        dependency,
      };
      planned.set(name, item);
      for (const d of entry.dependencies) visit(d.name, d.range, [...stack, name], undefined, true);
      plan.push(item);
    };
    for (const r of roots) visit(r.name, r.range, [], r.pinned, false);
    return { plan, unchanged };
  }

  async #downloadAndVerify(item: PlanItem): Promise<VerifiedPackage> {
    const { name, version, entry } = item;
    const bytes = await this.options.registry.fetchPackage(name, version, entry, {
      maxBytes: this.#max,
      onProgress: (p) => this.#progress({ phase: 'download', name, version, ...p }),
    });
    const v = await verifyPackage(bytes, {
      trustStore: this.options.trustStore,
      policy: this.options.policy,
      pinnedLogs: this.options.pinnedLogs,
      maxBytes: this.#max,
      expected: { name, version },
      onStep: (step) => this.#progress({ phase: 'verify', name, version, step }),
    });
    // The plan was made from the index; the signed manifest is what counts.
    const signedDeps = JSON.stringify(v.dependencies.map((d) => [d.name, d.range]));
    const indexDeps = JSON.stringify(entry.dependencies.map((d) => [d.name, d.range]));
    if (signedDeps !== indexDeps)
      throw marketError(
        'index-mismatch',
        `${name}@${version}: the index lists dependencies ${indexDeps}, the signed manifest ${signedDeps}`,
      );
    return v;
  }

  #review(plan: PlanItem[], lock: Lockfile): Review {
    const items = plan.map((p): ReviewItem => {
      const v = p.verified!;
      const before = new Set(lock.packages[p.name]?.imports ?? []);
      const now = new Set(v.imports);
      return {
        name: p.name,
        version: p.version,
        action: p.action,
        ...(p.from ? { from: p.from } : {}),
        publisher: v.manifest.publisher,
        ...(v.publisher.label ? { publisherLabel: v.publisher.label } : {}),
        imports: [...v.imports],
        addedImports: p.action === 'install' ? [...v.imports] : [...now].filter((i) => !before.has(i)),
        removedImports: [...before].filter((i) => !now.has(i)),
        dependency: p.dependency,
      };
    });
    return {
      items,
      needsConsent: items.some((i) => i.action === 'install' || i.addedImports.length > 0),
    };
  }

  async #consent(review: Review): Promise<void> {
    if (!review.needsConsent) return;
    const ok = this.options.confirm ? await this.options.confirm(review) : false;
    if (!ok)
      throw marketError(
        'consent-declined',
        `not agreed to the imports of ${review.items.map((i) => `${i.name}@${i.version}`).join(', ')}; nothing was changed`,
      );
  }

  async #stage(plan: PlanItem[]): Promise<string> {
    const root = join(
      this.options.dataDir,
      'marketplace-staging',
      `${Date.now()}-${randomBytes(6).toString('hex')}`,
    );
    await mkdir(root, { recursive: true, mode: 0o700 });
    try {
      for (const p of plan) {
        const dir = join(root, p.name, p.version);
        await mkdir(dir, { recursive: true });
        for (const [path, bytes] of p.verified!.files) {
          // unpack() already refused unsafe paths; checked again because this is where it would matter.
          const why = unsafePathReason(path);
          if (why) throw marketError('path-traversal', `file path '${path}' ${why}`);
          const target = join(dir, 'files', path);
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, bytes);
        }
        await writeFile(join(dir, 'package.campkg'), p.verified!.rawBytes);
      }
    } catch (e) {
      await rm(root, { recursive: true, force: true });
      throw e;
    }
    return root;
  }

  /** Applies a verified, consented plan: kernel first (undone on any later failure), then disk, then lockfile. */
  async #apply(
    plan: PlanItem[],
    lock: Lockfile,
    index: RegistryIndex | undefined,
    requestedNames: Set<string>,
  ) {
    const kernel = this.options.kernel;
    const stage = await this.#stage(plan);
    const undo: Array<() => Promise<unknown>> = [];
    const runUndo = async () => {
      for (const u of undo.reverse()) await u().catch(() => {});
    };
    try {
      if (kernel) {
        const loaded = new Map((await kernel.list()).map((c) => [c.name, c.version]));
        for (const p of plan) {
          const v = p.verified!;
          this.#progress({ phase: 'load', name: p.name, version: p.version });
          try {
            if (loaded.has(p.name)) {
              if (p.action === 'install')
                throw new Error(
                  `a component named '${p.name}' is already running and was not installed by the marketplace`,
                );
              const old = await this.#installedFiles(p.name, loaded.get(p.name)!, lock);
              await kernel.swap(p.name, v.componentBytes, v.manifestJson, false);
              undo.push(() =>
                old ? kernel.swap(p.name, old.component, old.manifestJson, true) : kernel.unload(p.name),
              );
            } else {
              await kernel.load(v.componentBytes, v.manifestJson);
              undo.push(() => kernel.unload(p.name));
            }
          } catch (e) {
            throw marketError(
              'kernel-refused',
              `${p.name}@${p.version}: ${(e as { details?: string }).details || (e as Error).message}`,
            );
          }
        }
      }
      const now = new Date().toISOString();
      const next: Lockfile = structuredClone(lock);
      next.registry = this.options.registry.location;
      if (index?.signature) {
        const seen = next.registries?.[next.registry];
        next.registries = {
          ...next.registries,
          [next.registry]: {
            keyId: index.signature.keyId,
            serial: Math.max(index.serial ?? 0, seen?.serial ?? 0),
          },
        };
      }
      for (const p of plan) {
        this.#progress({ phase: 'commit', name: p.name, version: p.version });
        const target = versionDir(this.options.dataDir, p.name, p.version);
        await mkdir(dirname(target), { recursive: true });
        await rm(target, { recursive: true, force: true }); // a leftover not named by the lockfile
        await rename(join(stage, p.name, p.version), target);
        undo.push(() => rm(target, { recursive: true, force: true }));
        const v = p.verified!;
        const entry: LockedVersion = {
          version: p.version,
          digest: v.digest,
          componentDigest: v.manifest.component.digest,
          publisher: v.manifest.publisher,
          imports: [...v.imports],
          dependencies: v.dependencies.map((d) => ({ name: d.name, range: d.range })),
          registry: this.options.registry.location,
          installedAt: now,
        };
        const old = next.packages[p.name];
        const previous = old ? [...old.previous, stripLocked(old)].slice(-KEEP_PREVIOUS) : [];
        next.packages[p.name] = {
          ...entry,
          requested: requestedNames.has(p.name) || (old?.requested ?? false),
          previous,
        };
        if (index) {
          const offered = highestOf(Object.keys(index.packages[p.name]?.versions ?? {}));
          const seen = next.highestSeen[p.name];
          if (offered && (!seen || compareVersions(offered, seen) > 0)) next.highestSeen[p.name] = offered;
        }
        if (!next.highestSeen[p.name] || compareVersions(p.version, next.highestSeen[p.name]!) > 0)
          next.highestSeen[p.name] = p.version;
      }
      await writeLockfile(this.options.dataDir, next);
      // Versions that fell out of the rollback window.
      for (const p of plan) {
        const kept = new Set([
          next.packages[p.name]!.version,
          ...next.packages[p.name]!.previous.map((v) => v.version),
        ]);
        const old = lock.packages[p.name];
        for (const v of old ? [old.version, ...old.previous.map((x) => x.version)] : [])
          if (!kept.has(v))
            await rm(versionDir(this.options.dataDir, p.name, v), { recursive: true, force: true });
      }
      return next;
    } catch (e) {
      await runUndo();
      throw e;
    } finally {
      await rm(stage, { recursive: true, force: true });
    }
  }

  async #installedFiles(name: string, version: string, lock: Lockfile) {
    const p = lock.packages[name];
    if (!p || p.version !== version) return undefined;
    const dir = join(versionDir(this.options.dataDir, name, version), 'files');
    return {
      component: await readFile(join(dir, PACKAGE_FILES.component)),
      manifestJson: await readFile(join(dir, PACKAGE_FILES.manifest), 'utf8'),
    };
  }

  async #install(specs: string[]): Promise<ChangeResult> {
    if (specs.length === 0) throw marketError('invalid-argument', 'name at least one package to install');
    const roots = specs.map(parseSpec);
    const lock = await this.lockfile();
    this.#progress({ phase: 'resolve', message: `reading ${this.options.registry.location}` });
    const index = await this.#readIndex(lock);
    const { plan, unchanged } = this.#resolve(index, lock, roots);
    return this.#run(plan, unchanged, lock, index, new Set(roots.map((r) => r.name)));
  }

  async #upgrade(name?: string): Promise<ChangeResult> {
    const lock = await this.lockfile();
    const names = name ? [name] : Object.keys(lock.packages).sort();
    if (name && !lock.packages[name]) throw marketError('not-installed', `${name} is not installed`);
    const index = await this.#readIndex(lock);
    const roots: Array<{ name: string; range: string; pinned?: string }> = [];
    const unchanged: Array<{ name: string; version: string }> = [];
    for (const n of names) {
      const installed = lock.packages[n]!;
      this.#checkFresh(index, n, lock);
      const p = index.packages[n];
      const live = Object.keys(p?.versions ?? {}).filter((v) => !p!.versions[v]!.yanked);
      const newest = highestOf(live);
      if (newest && compareVersions(newest, installed.version) > 0)
        roots.push({ name: n, range: newest, pinned: newest });
      else unchanged.push({ name: n, version: installed.version });
    }
    const resolved = this.#resolve(index, lock, roots);
    const same = [...unchanged, ...resolved.unchanged].filter(
      (u, i, all) =>
        all.findIndex((x) => x.name === u.name) === i && !resolved.plan.some((p) => p.name === u.name),
    );
    return this.#run(resolved.plan, same, lock, index, new Set());
  }

  async #run(
    plan: PlanItem[],
    unchanged: Array<{ name: string; version: string }>,
    lock: Lockfile,
    index: RegistryIndex,
    requested: Set<string>,
  ): Promise<ChangeResult> {
    for (const item of plan) item.verified = await this.#downloadAndVerify(item);
    const review = this.#review(plan, lock);
    if (plan.length === 0) return { changed: [], review, unchanged, loaded: false };
    await this.#consent(review);
    await this.#apply(plan, lock, index, requested);
    return {
      changed: plan.map((p) => ({
        name: p.name,
        version: p.version,
        action: p.action,
        ...(p.from ? { from: p.from } : {}),
      })),
      review,
      unchanged,
      loaded: this.options.kernel !== undefined,
    };
  }

  async #uninstall(name: string, opts: { force?: boolean } = {}) {
    const lock = await this.lockfile();
    const p = lock.packages[name];
    if (!p) throw marketError('not-installed', `${name} is not installed`);
    const dependents = Object.entries(lock.packages)
      .filter(([n, q]) => n !== name && q.dependencies.some((d) => d.name === name))
      .map(([n]) => n);
    if (dependents.length && !opts.force)
      throw marketError(
        'in-use',
        `${dependents.join(', ')} depend${dependents.length === 1 ? 's' : ''} on ${name} (uninstall them first, or --force)`,
      );
    const kernel = this.options.kernel;
    let unloaded = false;
    if (kernel && (await kernel.list()).some((c) => c.name === name)) {
      await kernel.unload(name);
      unloaded = true;
    }
    const dir = join(marketplaceDir(this.options.dataDir), 'packages', name);
    const trash = join(
      this.options.dataDir,
      'marketplace-staging',
      `trash-${name}-${randomBytes(6).toString('hex')}`,
    );
    await mkdir(dirname(trash), { recursive: true });
    await rename(dir, trash).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    const next = structuredClone(lock);
    delete next.packages[name];
    try {
      await writeLockfile(this.options.dataDir, next);
    } catch (e) {
      await rename(trash, dir).catch(() => {});
      throw e;
    }
    await rm(trash, { recursive: true, force: true });
    return { name, version: p.version, unloaded };
  }

  async #rollback(name: string) {
    const lock = await this.lockfile();
    const p = lock.packages[name];
    if (!p) throw marketError('not-installed', `${name} is not installed`);
    const prev = p.previous.at(-1);
    if (!prev)
      throw marketError('no-previous-version', `${name}@${p.version} has no earlier installed version`);
    const bytes = await readFile(
      join(versionDir(this.options.dataDir, name, prev.version), 'package.campkg'),
    );
    // Trust may have changed since it was installed (a revoked key): verify again.
    const v = await verifyPackage(bytes, {
      trustStore: this.options.trustStore,
      policy: this.options.policy,
      pinnedLogs: this.options.pinnedLogs,
      maxBytes: this.#max,
      expected: { name, version: prev.version },
    });
    if (v.digest !== prev.digest)
      throw marketError(
        'bad-digest',
        `the kept package for ${name}@${prev.version} changed on disk (${v.digest}, locked ${prev.digest})`,
      );
    const kernel = this.options.kernel;
    let swapped = false;
    if (kernel && (await kernel.list()).some((c) => c.name === name)) {
      try {
        await kernel.swap(name, v.componentBytes, v.manifestJson, true);
      } catch (e) {
        throw marketError(
          'kernel-refused',
          `${name}@${prev.version}: ${(e as { details?: string }).details || (e as Error).message}`,
        );
      }
      swapped = true;
    }
    const next = structuredClone(lock);
    next.packages[name] = { ...prev, requested: p.requested, previous: p.previous.slice(0, -1) };
    try {
      await writeLockfile(this.options.dataDir, next);
    } catch (e) {
      if (swapped) {
        const cur = await this.#installedFiles(name, p.version, lock);
        if (cur) await kernel!.swap(name, cur.component, cur.manifestJson, false).catch(() => {});
      }
      throw e;
    }
    await rm(versionDir(this.options.dataDir, name, p.version), { recursive: true, force: true });
    return { name, from: p.version, to: prev.version, swapped };
  }

  /**
   * Loads every installed driver the kernel is not running (after a kernel restart), dependencies first.
   * Each is verified again from its kept package file against today's trust store and policy; one that is
   * refused is reported and the others still load.
   */
  async loadInstalled() {
    const kernel = this.options.kernel;
    if (!kernel) throw marketError('invalid-argument', 'loading the installed set needs a running kernel');
    const lock = await this.lockfile();
    const running = new Set((await kernel.list()).map((c) => c.name));
    const order: string[] = [];
    const visit = (name: string, stack: string[]) => {
      if (order.includes(name) || !lock.packages[name] || stack.includes(name)) return;
      for (const d of lock.packages[name]!.dependencies) visit(d.name, [...stack, name]);
      order.push(name);
    };
    for (const name of Object.keys(lock.packages).sort()) visit(name, []);
    const loaded: Array<{ name: string; version: string }> = [];
    const failed: Array<{ name: string; version: string; error: string; code: string }> = [];
    for (const name of order) {
      const p = lock.packages[name]!;
      if (running.has(name)) continue;
      try {
        const bytes = await readFile(
          join(versionDir(this.options.dataDir, name, p.version), 'package.campkg'),
        );
        const v = await verifyPackage(bytes, {
          trustStore: this.options.trustStore,
          policy: this.options.policy,
          pinnedLogs: this.options.pinnedLogs,
          maxBytes: this.#max,
          expected: { name, version: p.version },
        });
        if (v.digest !== p.digest)
          throw marketError(
            'bad-digest',
            `the kept package changed on disk (${v.digest}, locked ${p.digest})`,
          );
        this.#progress({ phase: 'load', name, version: p.version });
        await kernel.load(v.componentBytes, v.manifestJson);
        loaded.push({ name, version: p.version });
      } catch (e) {
        const err = e as Error & { code?: unknown; details?: string };
        failed.push({
          name,
          version: p.version,
          error: err.details || err.message,
          code: String(err.code ?? err.name),
        });
      }
    }
    return { loaded, failed, alreadyRunning: order.filter((n) => running.has(n)) };
  }

  /** Installed packages, with whether the kernel is running them. */
  async list() {
    const lock = await this.lockfile();
    const running = this.options.kernel
      ? new Map((await this.options.kernel.list()).map((c) => [c.name, c.version]))
      : undefined;
    return Object.entries(lock.packages)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, p]) => ({
        name,
        version: p.version,
        digest: p.digest,
        publisher: p.publisher,
        imports: p.imports,
        requested: p.requested,
        previous: p.previous.map((v) => v.version),
        running: running ? (running.get(name) ?? null) : undefined,
        registry: p.registry,
      }));
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stripLocked(p: LockedPackage): LockedVersion {
  const { requested: _r, previous: _p, ...v } = p;
  return v;
}

export function isMarketplaceError(e: unknown): e is MarketplaceError {
  return e instanceof MarketplaceError;
}
