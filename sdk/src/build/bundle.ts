/**
 * Step 1 of a component build: bundle a TypeScript entry into one ES module for componentize-js.
 *
 * The guest runs in SpiderMonkey inside wasm with no Node and no filesystem, so the bundle is built for the
 * neutral platform (a `node:` import fails here, with its location, instead of at instantiation) and only
 * the component's own WIT imports stay external. Those must name the WIT version being built against: a
 * driver importing `cam:kernel/kv@0.2.0` into a 0.1.0 build is refused here with the file and line, not
 * later by componentize-js with a message about the world.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Message } from 'esbuild';

export interface Diagnostic {
  /** Path relative to the working directory when inside it, else absolute. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  text: string;
  lineText?: string;
}

export class BuildError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(message: string, diagnostics: readonly Diagnostic[] = []) {
    super(message);
    this.name = 'BuildError';
    this.diagnostics = diagnostics;
  }
}

export interface Bundle {
  /** The bundled ES module. */
  code: string;
  /** External imports of the bundle (`cam:kernel/kv@0.1.0`, ...), sorted. */
  externals: string[];
}

function location(file: string, cwd: string): string {
  const abs = isAbsolute(file) ? file : resolve(cwd, file);
  const rel = relative(cwd, abs);
  return rel.startsWith('..') ? abs : rel;
}

function toDiagnostic(m: Message, base: string, cwd: string): Diagnostic {
  const loc = m.location;
  if (!loc) return { file: '<bundle>', line: 0, column: 0, text: m.text };
  return {
    file: location(resolve(base, loc.file), cwd),
    line: loc.line,
    column: loc.column + 1,
    text: m.text,
    lineText: loc.lineText,
  };
}

export function formatDiagnostics(diagnostics: readonly Diagnostic[]): string {
  return diagnostics
    .map((d) => (d.line > 0 ? `${d.file}:${d.line}:${d.column}: ${d.text}` : `${d.file}: ${d.text}`))
    .join('\n');
}

/**
 * `@cam-os/sdk/guest` (the guest-side helpers) resolves to this SDK's copy wherever the driver lives, so a
 * driver folder outside this repository needs no node_modules of its own.
 */
function guestHelpers(): string {
  const js = fileURLToPath(new URL('../guest/index.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

/** Externals a component may import: its WIT package's interfaces, and WASI. */
const EXTERNAL = ['cam:kernel/*', 'wasi:*'];

/**
 * `format` is `esm` for componentize-js; the development path (dev.ts) takes `cjs`, which turns the WIT
 * imports into `require` calls its guest runtime answers.
 */
export async function bundleEntry(
  entry: string,
  witVersion: string,
  format: 'esm' | 'cjs' = 'esm',
): Promise<Bundle> {
  const cwd = process.cwd();
  const entryPath = resolve(entry);
  // esbuild names each bundled file in a comment, relative to its working directory. Relative to the
  // entry, those names (and so the bundle and the build cache key) do not depend on where the source
  // tree lives or where the build is started from.
  const base = dirname(entryPath);
  let result: Awaited<ReturnType<typeof build>> & { metafile: NonNullable<unknown> };
  try {
    result = (await build({
      entryPoints: [entryPath],
      bundle: true,
      write: false,
      format,
      target: 'es2022',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      conditions: ['import', 'default'],
      external: EXTERNAL,
      alias: { '@cam-os/sdk/guest': guestHelpers() },
      metafile: true,
      sourcemap: false,
      legalComments: 'none',
      charset: 'utf8',
      logLevel: 'silent',
      absWorkingDir: base,
    })) as typeof result;
  } catch (e) {
    const errors = (e as { errors?: Message[] }).errors;
    if (!Array.isArray(errors))
      throw new BuildError(`bundling ${location(entryPath, cwd)} failed: ${String(e)}`);
    const diagnostics = errors.map((m) => toDiagnostic(m, base, cwd));
    throw new BuildError(
      `bundling ${location(entryPath, cwd)} failed:\n${formatDiagnostics(diagnostics)}`,
      diagnostics,
    );
  }
  const output = result.outputFiles?.[0];
  if (!output) throw new BuildError(`bundling ${location(entryPath, cwd)} produced no output`);

  const externals = new Set<string>();
  const wrong: Diagnostic[] = [];
  for (const [file, input] of Object.entries(result.metafile.inputs)) {
    for (const imp of input.imports) {
      if (!imp.external) continue;
      externals.add(imp.path);
      const m = /^cam:kernel\/[a-z][a-z0-9-]*@(.+)$/.exec(imp.path);
      if (imp.path.startsWith('cam:kernel/') && m?.[1] !== witVersion) {
        wrong.push({
          file: location(resolve(base, file), cwd),
          ...findImport(resolve(base, file), imp.path),
          text: `imports '${imp.path}', but this build targets cam:kernel@${witVersion}: import 'cam:kernel/<interface>@${witVersion}'`,
        });
      }
    }
  }
  if (wrong.length > 0) {
    throw new BuildError(`bundling ${location(entryPath, cwd)} failed:\n${formatDiagnostics(wrong)}`, wrong);
  }
  return { code: output.text, externals: [...externals].sort() };
}

/** Line and column of the first mention of `specifier` in `file` (metafile imports carry no location). */
function findImport(file: string, specifier: string): { line: number; column: number } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { line: 0, column: 0 };
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    // At the opening quote, where esbuild points for its own import diagnostics.
    const col = lines[i]!.search(
      new RegExp(`['"\`]${specifier.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}['"\`]`),
    );
    if (col >= 0) return { line: i + 1, column: col + 1 };
  }
  return { line: 0, column: 0 };
}
