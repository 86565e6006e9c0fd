/**
 * The AssemblyScript toolchain of the build pipeline: an entry under a source folder (e.g.
 * `drivers/memory/assembly/index.ts`) -> asc (in process) -> core module with its exports renamed to the
 * canonical-ABI names -> `componentEmbed` with the WIT as one string -> `componentNew`.
 *
 * There is no wit-bindgen for AssemblyScript, so the component writes its canonical-ABI glue by hand
 * (see drivers/memory/assembly/index.ts). Two conventions link the two sides:
 *  - imports are declared with `@external("cam:kernel/<interface>@<version>", "<function>")`;
 *  - exports are named `<interface>__<function>` with `_` for `-` (`memory__write_many`), plus
 *    `cabi_post_<that>`, `cabi_realloc` and `memory`; this module renames them to
 *    `cam:kernel/memory@0.1.0#write-many` and so on, which componentEmbed/componentNew then check against
 *    the world's WIT (a wrong core signature fails the build, naming the function).
 *
 * The core module may import nothing but its world's interfaces: `--use abort=` turns AssemblyScript's
 * `abort` into a trap instead of an `env.abort` import, and the component uses no WASI.
 *
 * Compiler flags, chosen by measuring the memory component's core module with its imports answering
 * constants (guest code only; medians of 5 interleaved runs on the 2-core machine, November 2026):
 *
 *   flags                  read of 64 B   write of 64 B   health   core module
 *   minimal, -O3           1.22 us        1.76 us         0.32 us  51 KiB
 *   incremental, -O3       1.23 us        2.12 us         0.34 us  53 KiB
 *   stub, -O3              1.25 us        1.78 us         0.32 us  51 KiB
 *   minimal, -O2           1.54 us        1.91 us         0.32 us  44 KiB
 *   minimal, -O3z          1.59 us        2.42 us         0.40 us  36 KiB
 *
 *  - `--runtime minimal`: TLSF allocator + a collector that runs only when called. The component keeps its
 *    data in raw memory and calls `__collect` itself after the rare calls that created GC objects, so the
 *    incremental runtime's shadow stack and automatic collection only cost (writes ~20% slower); `stub` is
 *    no faster and never frees, which a long-running service cannot afford.
 *  - `-O3` (`--optimizeLevel 3 --shrinkLevel 0`): the fastest; the size levels save 15 KiB for ~25% more time.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { BuildError, type Diagnostic, formatDiagnostics } from './bundle.js';

/** The flags every AssemblyScript component is compiled with (part of the build cache key). */
export const ASC_FLAGS: readonly string[] = [
  '--optimizeLevel',
  '3',
  '--shrinkLevel',
  '0',
  '--runtime',
  'minimal',
  '--use',
  'abort=',
  '--noColors',
];

interface AscDiagnostic {
  code: number;
  category: number;
  message: string;
  range: { start: number; source: { normalizedPath: string } | null } | null;
}

interface Asc {
  main(
    argv: string[],
    options: {
      readFile: (name: string, baseDir: string) => Promise<string | null>;
      writeFile: (name: string, contents: Uint8Array | string, baseDir: string) => void;
      listFiles: (dir: string, baseDir: string) => Promise<string[] | null>;
      stdout: unknown;
      stderr: unknown;
      reportDiagnostic: (d: AscDiagnostic) => void;
    },
  ): Promise<{ error: Error | null }>;
  createMemoryStream(): { toString(): string };
}

let ascModule: Promise<Asc> | undefined;
function loadAsc(): Promise<Asc> {
  ascModule ??= import('assemblyscript/asc').then((m) => (m as { default: Asc }).default);
  return ascModule;
}

let toolVersions: string | undefined;
/**
 * asc's and wasm-tools' (jco-transpile's) versions, for the build cache key. From package.json, so a cache
 * hit does not pay for loading the compiler (~0.5 s).
 */
export function ascVersion(): string {
  if (toolVersions === undefined) {
    const require = createRequire(import.meta.url);
    const version = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    let asc: string;
    try {
      // The package maps './*' to itself; './asc' resolves for `import` only.
      asc = version(require.resolve('assemblyscript/package.json'));
    } catch {
      throw new BuildError('assemblyscript is not installed (npm install --save-dev assemblyscript)');
    }
    // jco-transpile's exports map hides its package.json: it sits beside the resolved entry point's folder.
    const jco = version(
      join(dirname(require.resolve('@bytecodealliance/jco-transpile')), '..', 'package.json'),
    );
    toolVersions = `${asc}, jco-transpile ${jco}`;
  }
  return toolVersions;
}

/**
 * Every file of the entry's folder, by relative path: the sources the compiler may read, and so what the
 * build cache key covers. (A source outside the folder is refused by `compileAssemblyScript`.)
 */
export async function sourceFiles(entry: string): Promise<Array<[string, Uint8Array]>> {
  const root = dirname(resolve(entry));
  const out: Array<[string, Uint8Array]> = [];
  async function walk(dir: string): Promise<void> {
    const items = await readdir(dir, { withFileTypes: true });
    for (const item of items) {
      const path = join(dir, item.name);
      if (item.isDirectory()) {
        if (item.name !== 'node_modules' && !item.name.startsWith('.')) await walk(path);
      } else if (item.isFile()) {
        out.push([relative(root, path).split(sep).join('/'), await readFile(path)]);
      }
    }
  }
  await walk(root);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/** asc: entry -> optimized core module. */
async function compile(entry: string): Promise<Uint8Array> {
  const asc = await loadAsc();
  const entryPath = resolve(entry);
  const root = dirname(entryPath);
  const cwd = process.cwd();
  const shown = (file: string) => {
    const rel = relative(cwd, file);
    return rel.startsWith('..') ? file : rel;
  };
  const outside: string[] = [];
  /** What the compiler read, by absolute path: diagnostics carry offsets only. */
  const texts = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];
  let binary: Uint8Array | undefined;
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main(
    [relative(root, entryPath), '--baseDir', root, '--outFile', 'component.wasm', ...ASC_FLAGS],
    {
      readFile: async (name, baseDir) => {
        const file = resolve(baseDir, name);
        if (file !== root && !file.startsWith(root + sep)) {
          // The cache key covers the entry's folder only; a source elsewhere could change unnoticed.
          if (name.endsWith('.ts')) outside.push(file);
          return null;
        }
        try {
          const text = await readFile(file, 'utf8');
          texts.set(file, text);
          return text;
        } catch {
          return null;
        }
      },
      writeFile: (name, contents) => {
        if (name === 'component.wasm' && typeof contents !== 'string') binary = contents;
      },
      listFiles: async (dir, baseDir) => {
        try {
          return (await readdir(resolve(baseDir, dir))).filter((f) => f.endsWith('.ts'));
        } catch {
          return null;
        }
      },
      stdout: asc.createMemoryStream(),
      stderr,
      reportDiagnostic: (d) => {
        if (d.category !== 3) return; // errors only; warnings do not fail a build
        const source = d.range?.source?.normalizedPath;
        // Sources of the standard library are named ~lib/...; they have no file here.
        const file = source && !source.startsWith('~lib/') ? resolve(root, source) : undefined;
        const text = file ? texts.get(file) : undefined;
        const at =
          file && text !== undefined && d.range
            ? { file: shown(file), ...lineColumn(text, d.range.start) }
            : { file: source ?? shown(entryPath), line: 0, column: 0 };
        // As asc prints them: its own codes are below 1000, TypeScript's codes above.
        diagnostics.push({ ...at, text: `${d.code < 1000 ? 'AS' : 'TS'}${d.code}: ${d.message}` });
      },
    },
  );
  if (outside.length > 0) {
    throw new BuildError(
      `${shown(entryPath)} imports sources outside its folder (${outside.map(shown).join(', ')}); an AssemblyScript component's sources must all live under ${shown(root)}`,
    );
  }
  if (diagnostics.length > 0) {
    throw new BuildError(
      `asc failed for ${shown(entryPath)}:\n${formatDiagnostics(diagnostics)}`,
      diagnostics,
    );
  }
  if (error || !binary) {
    const why = (error?.message ?? stderr.toString()).split('\n').slice(0, 20).join('\n');
    throw new BuildError(`asc failed for ${shown(entryPath)}: ${why || 'no output'}`);
  }
  return binary;
}

// ---------------------------------------------------------------------------------------------------------
// Export renaming: just enough of the binary format to rewrite the export section.

function readLeb(bytes: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[pos++];
    if (b === undefined) throw new BuildError('asc produced a truncated wasm module');
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result, pos];
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

const SECTION_EXPORT = 7;
const KIND_FUNCTION = 0;

/** `memory__write_many` -> `cam:kernel/memory@0.1.0#write-many`; other names are kept or refused. */
export function canonicalExportName(name: string, kind: number, witVersion: string): string {
  if (name === 'memory' || name === 'cabi_realloc') return name;
  const post = name.startsWith('cabi_post_');
  const base = post ? name.slice('cabi_post_'.length) : name;
  const m = /^([a-z][a-z0-9_]*?)__([a-z][a-z0-9_]*)$/.exec(base);
  if (kind !== KIND_FUNCTION || !m) {
    throw new BuildError(
      `export '${name}' does not name a WIT function: export '<interface>__<function>' (with _ for -), its 'cabi_post_' function, 'cabi_realloc' or 'memory'`,
    );
  }
  const kebab = (s: string) => s.replaceAll('_', '-');
  const full = `cam:kernel/${kebab(m[1]!)}@${witVersion}#${kebab(m[2]!)}`;
  return post ? `cabi_post_${full}` : full;
}

export function renameExports(
  module: Uint8Array,
  rename: (name: string, kind: number) => string,
): Uint8Array {
  const parts: Uint8Array[] = [module.subarray(0, 8)];
  let pos = 8;
  while (pos < module.length) {
    const id = module[pos]!;
    const [size, body] = readLeb(module, pos + 1);
    const end = body + size;
    if (id !== SECTION_EXPORT) {
      parts.push(module.subarray(pos, end));
      pos = end;
      continue;
    }
    let [count, p] = readLeb(module, body);
    const out: number[] = leb(count);
    for (let i = 0; i < count; i++) {
      const [len, at] = readLeb(module, p);
      const name = new TextDecoder().decode(module.subarray(at, at + len));
      const kind = module[at + len]!;
      const [index, next] = readLeb(module, at + len + 1);
      p = next;
      const renamed = new TextEncoder().encode(rename(name, kind));
      out.push(...leb(renamed.length), ...renamed, kind, ...leb(index));
    }
    parts.push(Uint8Array.from([SECTION_EXPORT, ...leb(out.length), ...out]));
    pos = end;
  }
  const total = parts.reduce((n, x) => n + x.length, 0);
  const bytes = new Uint8Array(total);
  let o = 0;
  for (const x of parts) {
    bytes.set(x, o);
    o += x.length;
  }
  return bytes;
}

/** The core module's imports, as `module` names. */
function importModules(module: Uint8Array): string[] {
  return WebAssembly.Module.imports(new WebAssembly.Module(module as Uint8Array<ArrayBuffer>)).map(
    (i) => `${i.module}#${i.name}`,
  );
}

/**
 * The core module of an AssemblyScript entry, exports renamed to their canonical-ABI names: what the
 * component wraps (tests of the hand-written ABI glue instantiate it directly).
 */
export async function assemblyScriptCore(entry: string, witVersion: string): Promise<Uint8Array> {
  return renameExports(await compile(entry), (name, kind) => canonicalExportName(name, kind, witVersion));
}

/**
 * Builds the component of an AssemblyScript entry for `world` of the WIT package `wit` (one string).
 * Returns the component bytes (not yet stamped) and its imports (`cam:kernel/kv@0.1.0`, sorted).
 */
export async function buildAssemblyScript(
  entry: string,
  wit: string,
  world: string,
  witVersion: string,
): Promise<{ component: Uint8Array; imports: string[] }> {
  const core = await assemblyScriptCore(entry, witVersion);
  const imports = new Set<string>();
  for (const imp of importModules(core)) {
    const [module] = imp.split('#');
    if (!/^cam:kernel\/[a-z][a-z0-9-]*@/.test(module!) || !module!.endsWith(`@${witVersion}`)) {
      throw new BuildError(
        `${entry}: the compiled module imports '${imp}'; a component may import only its world's interfaces (@external("cam:kernel/<interface>@${witVersion}", "<function>"))`,
      );
    }
    imports.add(module!);
  }
  const { componentEmbed, componentNew } = await import('@bytecodealliance/jco-transpile/wasm-tools');
  let component: Uint8Array;
  try {
    const embedded = await componentEmbed({ binary: core, witSource: wit, world, stringEncoding: 'utf8' });
    component = await componentNew(embedded, []);
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 20).join('\n');
    throw new BuildError(`wasm-tools could not make a component of ${entry} (world ${world}):\n${why}`);
  }
  return { component, imports: [...imports].sort() };
}
