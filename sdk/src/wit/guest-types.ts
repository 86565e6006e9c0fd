/**
 * TypeScript declarations for driver authors, generated from `wit/` by jco's guest type generator
 * (jco-transpile's js-component-bindgen, `guest: true`): one `declare module 'cam:kernel/<iface>@<ver>'`
 * per interface of a world, exactly as componentize-js presents imports and expects exports.
 *
 * One mechanism, two uses: `cam-os driver new` writes the file for the chosen world into the new driver
 * (`src/wit.d.ts`), and the repository's own drivers reference the committed copies in `sdk/generated/`
 * (regenerate with `node sdk/dist/wit/guest-types.js`; a test fails when they drift from `wit/`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { listWorlds, SUPPORTED_WIT_VERSIONS, witSource } from '@cam-os/host/wit/source.js';

interface Bindgen {
  $init: Promise<void>;
  generateTypes(name: string, opts: Record<string, unknown>): Array<[string, Uint8Array]>;
}

let bindgen: Promise<Bindgen> | undefined;
function loadBindgen(): Promise<Bindgen> {
  bindgen ??= (async () => {
    // The package's exports map exposes only a path-based API (which cannot read WIT from disk under
    // preview2-shim 0.26); the vendored bindgen takes the WIT as a string.
    const req = createRequire(import.meta.url);
    const file = join(
      dirname(req.resolve('@bytecodealliance/jco-transpile')),
      '..',
      'vendor',
      'js-component-bindgen-component.js',
    );
    const m = (await import(pathToFileURL(file).href)) as Bindgen;
    await m.$init;
    return m;
  })();
  return bindgen;
}

/** Globals the engine inside a component provides (StarlingMonkey: WHATWG encoding API and console). */
const GUEST_GLOBALS = `declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
declare const console: { log(...a: unknown[]): void; error(...a: unknown[]): void };`;

/** The guest declarations of one world as ONE .d.ts text. */
export async function guestTypes(
  world: string,
  witVersion: string = SUPPORTED_WIT_VERSIONS.at(-1)!,
): Promise<string> {
  if (!listWorlds(witVersion).includes(world) || world === 'kernel')
    throw new Error(`unknown component world '${world}' in cam:kernel@${witVersion}`);
  const m = await loadBindgen();
  const files = m.generateTypes(world, {
    wit: { tag: 'source', val: witSource(witVersion) },
    world,
    guest: true,
    tlaCompat: false,
    features: { tag: 'list', val: [] },
  });
  const parts = files
    .filter(([name]) => name.startsWith('interfaces/'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([name, bytes]) =>
        `// ---- ${name}\n${new TextDecoder()
          .decode(bytes)
          .split('\n')
          .filter((l) => !l.startsWith('/// <reference'))
          .join('\n')
          .trim()}`,
    );
  return [
    `// Generated from wit/kernel@${witVersion} (world ${world}) by jco's guest type generator. Do not edit:\n` +
      '// regenerate with `cam-os driver types` (or `node sdk/dist/wit/guest-types.js` in the CAM-OS repository).',
    GUEST_GLOBALS,
    ...parts,
    '',
  ].join('\n\n');
}

/** Where the repository keeps the committed declarations of every component world. */
export const TYPES_DIR = fileURLToPath(new URL('../../generated/', import.meta.url));

export function typesFile(world: string, witVersion: string = SUPPORTED_WIT_VERSIONS.at(-1)!): string {
  return join(TYPES_DIR, `kernel@${witVersion}`, `${world}.d.ts`);
}

export async function writeAllGuestTypes(): Promise<string[]> {
  const written: string[] = [];
  for (const v of SUPPORTED_WIT_VERSIONS) {
    for (const w of listWorlds(v).filter((x) => x !== 'kernel')) {
      const file = typesFile(w, v);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, await guestTypes(w, v));
      written.push(file);
    }
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const f of await writeAllGuestTypes()) console.log(f);
}
