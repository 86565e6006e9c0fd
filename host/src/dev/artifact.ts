/**
 * Dev artifacts: what the development path hands the kernel instead of a component. A dev artifact is an
 * ES module on disk with jco's instantiation signature (see guest-runtime.ts) that embeds the driver's
 * bundled JS and the WIT types of its world. The kernel loads and hot-swaps it through the same
 * `Kernel.load` / `Kernel.swap` as a component (LoadSpec.dev), so grants, linking, workers, deadlines,
 * supervision and state handover are the real ones; only componentize-js (~14 s) is skipped.
 *
 * Each version is written under a new name (its digest): Node never unloads an ES module, so a new URL per
 * version is what lets a swapped-in version run its new code.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KernelError } from '../errors.js';
import { writeFileAtomic } from '../trust/atomic-file.js';
import { SUPPORTED_WIT_VERSIONS, witSource } from '../wit/source.js';
import { parseWitPackage, type WitPackage, type WorldTypes, worldTypes } from './wit-model.js';

/** What `LoadSpec.dev` carries. */
export interface DevArtifact {
  /** Absolute path of the instantiation module. */
  jsPath: string;
  /** Interfaces the guest imports, qualified (`cam:kernel/kv@0.1.0`). */
  imports: string[];
  /** Interfaces the guest exports, qualified. */
  exports: string[];
  /** The WIT version it was built against (checked like a component's `cam-os:abi` section). */
  abi: string;
}

export interface DevBuild extends DevArtifact {
  /** The module's bytes: what `LoadSpec.bytes` should be (its digest identifies the version). */
  bytes: Uint8Array;
  digest: string;
}

const packages = new Map<string, WitPackage>();

/** The parsed `cam:kernel@<version>` package (cached). */
export function witPackage(version: string): WitPackage {
  let p = packages.get(version);
  if (!p) {
    p = parseWitPackage(witSource(version));
    packages.set(version, p);
  }
  return p;
}

export interface DevArtifactOptions {
  /** The guest bundle in CommonJS form (esbuild `format: 'cjs'`), its WIT imports left as `require`s. */
  code: string;
  /** The bundle's external imports (`cam:kernel/kv@0.1.0`...). */
  externals: string[];
  world: string;
  witVersion?: string;
  /** Where artifacts are written. */
  dir: string;
  /** File name shown in guest stack traces. */
  sourceName: string;
}

const RUNTIME_URL = new URL('./guest-runtime.js', import.meta.url).href;

export async function writeDevArtifact(opts: DevArtifactOptions): Promise<DevBuild> {
  const witVersion = opts.witVersion ?? SUPPORTED_WIT_VERSIONS.at(-1)!;
  const pkg = witPackage(witVersion);
  let world: WorldTypes;
  try {
    world = worldTypes(pkg, opts.world);
  } catch (e) {
    throw new KernelError('KERNEL_ERR_REQUEST_INVALID', (e as Error).message);
  }
  const allowed = new Set(world.imports.map((i) => `${pkg.name}/${i}@${pkg.version}`));
  const wrong = opts.externals.filter((x) => !allowed.has(x));
  if (wrong.length > 0) {
    throw new KernelError(
      'KERNEL_ERR_REQUEST_INVALID',
      `${opts.sourceName} imports ${wrong.join(', ')}, which world ${opts.world} does not import (it imports ${[...allowed].join(', ') || 'nothing'})`,
    );
  }
  const text = [
    '// CAM-OS dev artifact (generated): jco instantiation signature over the driver bundle.',
    `import { instantiateDev } from ${JSON.stringify(RUNTIME_URL)};`,
    `const CODE = ${JSON.stringify(opts.code)};`,
    `const WORLD = ${JSON.stringify(world)};`,
    `export function instantiate(_getCoreModule, imports, _instantiateCore) {`,
    `  return instantiateDev(CODE, WORLD, imports, ${JSON.stringify(opts.sourceName)});`,
    '}',
    '',
  ].join('\n');
  const bytes = new TextEncoder().encode(text);
  const hex = createHash('sha256').update(bytes).digest('hex');
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const jsPath = join(dir, `${hex}.mjs`);
  await writeFileAtomic(jsPath, bytes);
  return {
    jsPath,
    imports: opts.externals.filter((x) => allowed.has(x)).sort(),
    exports: world.exports.map((e) => `${pkg.name}/${e}@${pkg.version}`),
    abi: witVersion,
    bytes,
    digest: `sha256:${hex}`,
  };
}
