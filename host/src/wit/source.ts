/**
 * Loads a released `cam:kernel` WIT package from `wit/kernel@<version>/` as ONE source string, because
 * jco's JS APIs (componentEmbed's `witSource`, componentize-js's `witWorld`) take a single string and
 * since preview2-shim 0.26 cannot read WIT folders from disk without an explicit preopen.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** WIT package versions this kernel ships, oldest first. The last one is current. */
export const SUPPORTED_WIT_VERSIONS = ['0.1.0'] as const;
export type WitVersion = (typeof SUPPORTED_WIT_VERSIONS)[number];

export const WIT_PACKAGE = 'cam:kernel';

export class WitSourceError extends Error {
  override name = 'WitSourceError';
}

// host/src/wit and host/dist/wit are both three levels below the repository root.
const WIT_ROOT = new URL('../../../wit/', import.meta.url);

const PACKAGE_LINE = /^\s*package\s+([^\s;]+)\s*;\s*$/;
const WORLD_LINE = /^\s*world\s+([a-z][a-z0-9-]*)\s*\{/;

const cache = new Map<string, string>();

function assertSupported(version: string): asserts version is WitVersion {
  if (!(SUPPORTED_WIT_VERSIONS as readonly string[]).includes(version)) {
    throw new WitSourceError(
      `unknown WIT version '${version}' for ${WIT_PACKAGE}: supported versions are ${SUPPORTED_WIT_VERSIONS.join(', ')}`,
    );
  }
}

/** URL of the folder holding `cam:kernel@<version>`. */
export function witDir(version: string = SUPPORTED_WIT_VERSIONS.at(-1)!): URL {
  assertSupported(version);
  return new URL(`kernel@${version}/`, WIT_ROOT);
}

/** One `.wit` file: its name (for error messages) and its text. */
export interface WitFile {
  name: string;
  text: string;
}

/**
 * Join the files of one package into one WIT source with a single `package <pkg>;` line. Each file must
 * declare exactly that package (so its folder also parses on its own with wasm-tools); a file that
 * declares none, another one, or two is rejected rather than merged.
 */
export function combineWitFiles(pkg: string, files: readonly WitFile[]): string {
  if (files.length === 0) throw new WitSourceError(`package ${pkg} has no .wit files`);
  const parts = [`package ${pkg};`];
  for (const file of files) {
    let declared: string | undefined;
    const body = file.text.split('\n').filter((line) => {
      const m = PACKAGE_LINE.exec(line);
      if (!m) return true;
      if (declared !== undefined) throw new WitSourceError(`${file.name}: more than one package declaration`);
      declared = m[1];
      return false;
    });
    if (declared !== pkg) {
      throw new WitSourceError(
        `${file.name}: declares package '${declared ?? '(none)'}' but every file of the package must declare '${pkg}'`,
      );
    }
    parts.push(`// ---- ${file.name}\n${body.join('\n').trim()}\n`);
  }
  return parts.join('\n\n');
}

/** The `.wit` files of `wit/kernel@<version>/`, in file-name order. */
export function readWitFiles(version: string = SUPPORTED_WIT_VERSIONS.at(-1)!): WitFile[] {
  const dir = witDir(version);
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => f.endsWith('.wit'))
      .sort();
  } catch (e) {
    throw new WitSourceError(`cannot read WIT folder ${dir.pathname}: ${(e as Error).message}`);
  }
  if (names.length === 0) throw new WitSourceError(`WIT folder ${dir.pathname} has no .wit files`);
  return names.map((name) => ({ name, text: readFileSync(new URL(name, dir), 'utf8') }));
}

/**
 * The whole `cam:kernel@<version>` package as one WIT source string (what jco's `witSource` and
 * componentize-js's `witWorld` options take). Throws WitSourceError for a version this host does not ship.
 */
export function witSource(version: string = SUPPORTED_WIT_VERSIONS.at(-1)!): string {
  const hit = cache.get(version);
  if (hit !== undefined) return hit;
  const source = combineWitFiles(`${WIT_PACKAGE}@${version}`, readWitFiles(version));
  cache.set(version, source);
  return source;
}

/** Names of the worlds of `cam:kernel@<version>`, in source order. */
export function listWorlds(version: string = SUPPORTED_WIT_VERSIONS.at(-1)!): string[] {
  const worlds: string[] = [];
  for (const line of witSource(version).split('\n')) {
    const m = WORLD_LINE.exec(line);
    if (m) worlds.push(m[1]!);
  }
  return worlds;
}
