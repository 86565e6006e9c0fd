/**
 * Build a CAM-OS component from a TypeScript entry, with one of two toolchains:
 *
 *   componentize-js (the default): esbuild bundle (bundle.ts) -> componentize-js 0.23 (JS API, WIT as one
 *     string, every WASI feature off): the guest JS runs in SpiderMonkey's interpreter inside wasm;
 *   assemblyscript: asc compiles the entry's folder to a core module, whose hand-written canonical-ABI
 *     exports are renamed and wrapped into a component (assemblyscript.ts): compiled code, for system
 *     components on the hot path (the memory component);
 *
 *   -> custom section `cam-os:abi` = the WIT version -> atomic write of `<outDir>/<name>.wasm`
 *   -> optionally `<outDir>/manifest.json` (cam-os/manifest@1, unsigned; a signing step adds signatures).
 *
 * componentize-js takes ~5-14 s per build and asc ~2-7 s, so the stamped result is cached under `cacheDir`
 * by the sha-256 of everything that determines it: the bundled JS (componentize-js) or every file of the
 * entry's folder and the compiler flags (assemblyscript), the WIT text, the world, the WIT version, the
 * source name, the toolchain's version and this pipeline's format number. An unchanged driver rebuilds
 * from the cache in the time esbuild (or hashing the sources) takes plus one file copy. Cache entries are
 * verified against their recorded digest before use, so a torn or tampered cache file is rebuilt rather
 * than shipped.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { addCustomSection } from '@cam-os/host/component/wasm-binary.js';
import { ABI_SECTION } from '@cam-os/host/kernel/kernel.js';
import { writeFileAtomic } from '@cam-os/host/trust/atomic-file.js';
import { listWorlds, SUPPORTED_WIT_VERSIONS, witSource } from '@cam-os/host/wit/source.js';
import { ASC_FLAGS, ascVersion, buildAssemblyScript, sourceFiles } from './assemblyscript.js';
import { BuildError, bundleEntry } from './bundle.js';
import { type ManifestInput, manifestFor } from './manifest.js';

/** Bump when the pipeline changes what it produces from the same inputs. */
const BUILD_FORMAT = 1;

/** How the entry becomes a component. */
export type Toolchain = 'componentize-js' | 'assemblyscript';
export const TOOLCHAINS: readonly Toolchain[] = ['componentize-js', 'assemblyscript'];

export interface BuildOptions {
  /** The TypeScript (or JavaScript) entry module; it exports the world's interfaces. */
  entry: string;
  /**
   * Default: the `toolchain` of the driver.json beside the entry's folder (or in it), else componentize-js.
   * An AssemblyScript entry's folder holds all its sources (they are what the build cache key covers).
   */
  toolchain?: Toolchain;
  /** A world of `cam:kernel@<witVersion>`, e.g. `memory-component`. */
  world: string;
  /** Default: the newest version the host supports. */
  witVersion?: string;
  /** Receives `<name>.wasm` (and `manifest.json` when `manifest` is given). Created if missing. */
  outDir: string;
  /** Default `<outDir>/.cache`. Safe to share between builds and processes. */
  cacheDir?: string;
  /** File name of the component (without `.wasm`). Default: `manifest.name`, else the world. */
  name?: string;
  /** When given, a `cam-os/manifest@1` manifest is written beside the component. */
  manifest?: ManifestInput;
  /** Told each stage as it starts (for a progress display). */
  onProgress?: (stage: BuildStage) => void;
}

/**
 * Stages of a build, in order; `cached` replaces `componentize` on a cache hit. `componentize` is making
 * the component (componentize-js, or asc + wasm-tools); an AssemblyScript build has no `bundle` stage.
 */
export type BuildStage = 'bundle' | 'cached' | 'componentize' | 'write';

export interface BuildResult {
  wasmPath: string;
  /** `sha256:<hex>` of the component bytes, as the kernel and the manifest spell it. */
  digest: string;
  size: number;
  /** True when the component came from the build cache (componentize-js or asc did not run). */
  cached: boolean;
  /** Interfaces the component imports, with versions (`cam:kernel/kv@0.1.0`). */
  imports: string[];
  manifestPath?: string;
  witVersion: string;
  toolchain: Toolchain;
}

interface CacheMeta {
  format: number;
  digest: string;
  size: number;
  imports: string[];
}

interface Componentizer {
  componentize: (
    source: string,
    wit: string,
    opts: Record<string, unknown>,
  ) => Promise<{ component: Uint8Array; imports: Array<[string, string]> }>;
  version: string;
}

let componentizer: Promise<Componentizer> | undefined;
function loadComponentizer(): Promise<Componentizer> {
  componentizer ??= import('@bytecodealliance/componentize-js') as unknown as Promise<Componentizer>;
  return componentizer;
}

let componentizeVersion: string | undefined;
/**
 * Read from package.json rather than the module's `version` export: importing componentize-js costs ~300 ms,
 * which a cache hit should not pay. (Its exports map hides package.json from require.resolve.)
 */
function componentizeJsVersion(): string {
  if (componentizeVersion === undefined) {
    const name = '@bytecodealliance/componentize-js';
    const dirs = createRequire(import.meta.url).resolve.paths(name) ?? [];
    const file = dirs.map((d) => join(d, name, 'package.json')).find((f) => existsSync(f));
    if (!file) throw new BuildError(`${name} is not installed`);
    componentizeVersion = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return componentizeVersion;
}

/** Builds of the same inputs in one process share one componentize run. */
const inflight = new Map<string, Promise<{ bytes: Uint8Array; meta: CacheMeta }>>();

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readCache(
  dir: string,
  key: string,
): Promise<{ bytes: Uint8Array; meta: CacheMeta } | undefined> {
  let meta: CacheMeta;
  let bytes: Uint8Array;
  try {
    meta = JSON.parse(await readFile(join(dir, `${key}.json`), 'utf8')) as CacheMeta;
    bytes = await readFile(join(dir, `${key}.wasm`));
  } catch {
    return undefined;
  }
  if (
    meta.format !== BUILD_FORMAT ||
    meta.size !== bytes.length ||
    meta.digest !== `sha256:${sha256Hex(bytes)}`
  ) {
    return undefined;
  }
  return { bytes, meta };
}

async function componentizeBundle(
  code: string,
  wit: string,
  world: string,
  witVersion: string,
  sourceName: string,
  entry: string,
): Promise<{ bytes: Uint8Array; meta: CacheMeta }> {
  const { componentize } = await loadComponentizer();
  let out: Awaited<ReturnType<Componentizer['componentize']>>;
  try {
    out = await componentize(code, wit, {
      worldName: world,
      sourceName,
      // A pure component: no WASI at all, so the kernel grants nothing the WIT world does not list.
      disableFeatures: ['random', 'stdio', 'clocks', 'http', 'fetch-event'],
    });
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 20).join('\n');
    throw new BuildError(`componentize-js failed for ${entry} (world ${world}):\n${why}`);
  }
  const bytes = addCustomSection(out.component, ABI_SECTION, new TextEncoder().encode(witVersion));
  const imports = [...new Set(out.imports.map(([iface]) => iface))].sort();
  return {
    bytes,
    meta: { format: BUILD_FORMAT, digest: `sha256:${sha256Hex(bytes)}`, size: bytes.length, imports },
  };
}

/** The toolchain a driver.json next to (or one folder above) the entry names, if any. */
function toolchainOf(entry: string): Toolchain {
  const folder = dirname(resolve(entry));
  for (const dir of [folder, dirname(folder)]) {
    const file = join(dir, 'driver.json');
    if (!existsSync(file)) continue;
    let declared: unknown;
    try {
      declared = (JSON.parse(readFileSync(file, 'utf8')) as { toolchain?: unknown }).toolchain;
    } catch (e) {
      throw new BuildError(`${file}: ${(e as Error).message}`);
    }
    if (declared === undefined) return 'componentize-js';
    if (!(TOOLCHAINS as readonly unknown[]).includes(declared)) {
      throw new BuildError(
        `${file}: unknown toolchain ${JSON.stringify(declared)} (known: ${TOOLCHAINS.join(', ')})`,
      );
    }
    return declared as Toolchain;
  }
  return 'componentize-js';
}

async function assemblyScriptBuild(
  entry: string,
  wit: string,
  world: string,
  witVersion: string,
): Promise<{ bytes: Uint8Array; meta: CacheMeta }> {
  const out = await buildAssemblyScript(entry, wit, world, witVersion);
  const bytes = addCustomSection(out.component, ABI_SECTION, new TextEncoder().encode(witVersion));
  return {
    bytes,
    meta: {
      format: BUILD_FORMAT,
      digest: `sha256:${sha256Hex(bytes)}`,
      size: bytes.length,
      imports: out.imports,
    },
  };
}

export async function buildComponent(options: BuildOptions): Promise<BuildResult> {
  const witVersion = options.witVersion ?? SUPPORTED_WIT_VERSIONS.at(-1)!;
  if (!(SUPPORTED_WIT_VERSIONS as readonly string[]).includes(witVersion)) {
    throw new BuildError(
      `unknown WIT version '${witVersion}': this SDK builds for cam:kernel ${SUPPORTED_WIT_VERSIONS.join(', ')}`,
    );
  }
  const worlds = listWorlds(witVersion);
  if (!worlds.includes(options.world) || options.world === 'kernel') {
    throw new BuildError(
      `unknown world '${options.world}' in cam:kernel@${witVersion}; components target one of ${worlds
        .filter((w) => w !== 'kernel')
        .join(', ')}`,
    );
  }
  const name = options.name ?? options.manifest?.name ?? options.world;
  if (!/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new BuildError(`component name '${name}' must be kebab-case (a-z, 0-9, '-')`);
  }
  const outDir = resolve(options.outDir);
  const cacheDir = resolve(options.cacheDir ?? join(outDir, '.cache'));
  const wit = witSource(witVersion);
  if (options.toolchain !== undefined && !TOOLCHAINS.includes(options.toolchain)) {
    throw new BuildError(`unknown toolchain '${options.toolchain}' (known: ${TOOLCHAINS.join(', ')})`);
  }
  const toolchain = options.toolchain ?? toolchainOf(options.entry);

  let key: string;
  let produce: () => Promise<{ bytes: Uint8Array; meta: CacheMeta }>;
  if (toolchain === 'assemblyscript') {
    const files = await sourceFiles(options.entry);
    key = sha256Hex(
      [
        `format ${BUILD_FORMAT}`,
        `assemblyscript ${ascVersion()}`,
        ASC_FLAGS.join(' '),
        witVersion,
        options.world,
        wit,
        `entry ${relative(dirname(resolve(options.entry)), resolve(options.entry))}`,
        ...files.map(([path, bytes]) => `${path} ${sha256Hex(bytes)}`),
      ].join('\0'),
    );
    produce = () => assemblyScriptBuild(options.entry, wit, options.world, witVersion);
  } else {
    options.onProgress?.('bundle');
    const bundle = await bundleEntry(options.entry, witVersion);
    key = sha256Hex(
      [
        `format ${BUILD_FORMAT}`,
        `componentize-js ${componentizeJsVersion()}`,
        witVersion,
        options.world,
        // Stack traces inside the component name this file, so it is part of what gets built.
        `${name}.js`,
        wit,
        bundle.code,
      ].join('\0'),
    );
    produce = () =>
      componentizeBundle(bundle.code, wit, options.world, witVersion, `${name}.js`, options.entry);
  }

  let cached = true;
  let built = await readCache(cacheDir, key);
  options.onProgress?.(built ? 'cached' : 'componentize');
  if (!built) {
    cached = false;
    let job = inflight.get(key);
    if (!job) {
      job = (async () => {
        const result = await produce();
        await mkdir(cacheDir, { recursive: true });
        // Bytes first: a reader that finds the meta file finds complete bytes beside it.
        await writeFileAtomic(join(cacheDir, `${key}.wasm`), result.bytes);
        await writeFileAtomic(join(cacheDir, `${key}.json`), `${JSON.stringify(result.meta)}\n`);
        return result;
      })().finally(() => inflight.delete(key));
      inflight.set(key, job);
    }
    built = await job;
  }

  // The manifest is checked before anything is written, so a bad one leaves the output folder as it was.
  const manifest = options.manifest
    ? manifestFor(options.manifest, {
        world: options.world,
        witVersion,
        digest: built.meta.digest,
        size: built.meta.size,
        imports: built.meta.imports,
      })
    : undefined;
  options.onProgress?.('write');
  await mkdir(outDir, { recursive: true });
  const wasmPath = join(outDir, `${name}.wasm`);
  await writeFileAtomic(wasmPath, built.bytes);
  const result: BuildResult = {
    wasmPath,
    digest: built.meta.digest,
    size: built.meta.size,
    cached,
    imports: built.meta.imports,
    witVersion,
    toolchain,
  };
  if (manifest) {
    result.manifestPath = join(outDir, 'manifest.json');
    await writeFileAtomic(result.manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  }
  return result;
}
