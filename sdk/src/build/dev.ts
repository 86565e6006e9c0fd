/**
 * The development build: TypeScript entry -> esbuild bundle (CommonJS) -> dev artifact (host/src/dev). No
 * componentize-js, so a save turns into a runnable version in tens of milliseconds; the kernel runs it in
 * the same workers, with the same grants, links and hot-swap, and checks every value that crosses the
 * boundary against the world's WIT types. `buildComponent` (build.ts) remains what ships.
 */
import { join, resolve } from 'node:path';
import { type DevBuild, writeDevArtifact } from '@cam-os/host/dev/artifact.js';
import { KernelError } from '@cam-os/host/errors.js';
import { listWorlds, SUPPORTED_WIT_VERSIONS } from '@cam-os/host/wit/source.js';
import { BuildError, bundleEntry } from './bundle.js';

export interface DevBuildOptions {
  entry: string;
  world: string;
  witVersion?: string;
  /** Where dev artifacts go (one file per version, named by digest). */
  outDir: string;
  /** Component name, for messages and stack traces. */
  name: string;
}

export type DevBuildResult = DevBuild;

export async function buildDev(options: DevBuildOptions): Promise<DevBuildResult> {
  const witVersion = options.witVersion ?? SUPPORTED_WIT_VERSIONS.at(-1)!;
  if (!(SUPPORTED_WIT_VERSIONS as readonly string[]).includes(witVersion)) {
    throw new BuildError(
      `unknown WIT version '${witVersion}': this SDK builds for cam:kernel ${SUPPORTED_WIT_VERSIONS.join(', ')}`,
    );
  }
  if (!listWorlds(witVersion).includes(options.world) || options.world === 'kernel') {
    throw new BuildError(`unknown world '${options.world}' in cam:kernel@${witVersion}`);
  }
  const bundle = await bundleEntry(options.entry, witVersion, 'cjs');
  const wasi = bundle.externals.filter((x) => x.startsWith('wasi:'));
  if (wasi.length > 0) {
    throw new BuildError(
      `${options.entry} imports ${wasi.join(', ')}; CAM-OS drivers are built without WASI (use the cam:kernel interfaces)`,
    );
  }
  try {
    return await writeDevArtifact({
      code: bundle.code,
      externals: bundle.externals,
      world: options.world,
      witVersion,
      dir: resolve(options.outDir),
      sourceName: `${options.name}.js`,
    });
  } catch (e) {
    if (e instanceof KernelError) throw new BuildError(e.message);
    throw e;
  }
}

/** Default place for dev artifacts of a driver folder. */
export function devDir(driverDir: string): string {
  return join(driverDir, '.cam-os', 'dev');
}
