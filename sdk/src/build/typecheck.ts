/**
 * Type-checking a driver folder with the TypeScript compiler (`tsc -p <dir>/tsconfig.json --noEmit`):
 * esbuild strips types without checking them, so without this a wrong WIT type would only show up as a
 * value-check failure at run time. Errors come back as diagnostics with file, line and column.
 *
 * A passing check is remembered under the cache folder by the digest of everything tsc reads (tsconfig,
 * the sources, the SDK's guest declarations, the compiler version), so a warm `driver build` does not pay
 * for it again. A folder without a tsconfig.json is not checked.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { BuildError, type Diagnostic } from './bundle.js';

export interface TypecheckResult {
  checked: boolean;
  cached: boolean;
}

function tscPath(): { bin: string; version: string } {
  const pkg = createRequire(import.meta.url).resolve('typescript/package.json');
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return { bin: join(dirname(pkg), 'bin', 'tsc'), version };
}

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (/\.(ts|mts|cts|json)$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

const LINE = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/;

export async function typecheck(dir: string, cacheDir: string): Promise<TypecheckResult> {
  const tsconfig = join(dir, 'tsconfig.json');
  if (!existsSync(tsconfig)) return { checked: false, cached: false };
  const { bin, version } = tscPath();
  const h = createHash('sha256').update(`tsc ${version}\0`);
  for (const f of sources(dir))
    h.update(`${relative(dir, f)}\0`)
      .update(readFileSync(f))
      .update('\0');
  const guest = new URL('../guest/index.d.ts', import.meta.url);
  if (existsSync(guest)) h.update(readFileSync(guest));
  const stamp = join(cacheDir, `typecheck-${h.digest('hex')}.ok`);
  if (existsSync(stamp)) return { checked: true, cached: true };

  const { code, output } = await new Promise<{ code: number; output: string }>((done, fail) => {
    const child = spawn(process.execPath, [bin, '-p', tsconfig, '--noEmit', '--pretty', 'false'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', fail);
    child.on('exit', (c) => done({ code: c ?? 1, output }));
  });
  if (code !== 0) {
    const lines = output.split('\n');
    const diagnostics: Diagnostic[] = [];
    for (const line of lines) {
      const m = LINE.exec(line.trim());
      if (!m) continue;
      const file = join(dir, m[1]!);
      const n = Number(m[2]);
      let lineText: string | undefined;
      try {
        lineText = readFileSync(file, 'utf8').split('\n')[n - 1];
      } catch {}
      diagnostics.push({
        file: relative(process.cwd(), file) || file,
        line: n,
        column: Number(m[3]),
        text: `${m[5]} (${m[4]})`,
        ...(lineText !== undefined && { lineText }),
      });
    }
    const text = diagnostics.length
      ? diagnostics.map((d) => `${d.file}:${d.line}:${d.column}: ${d.text}`).join('\n')
      : output.trim();
    throw new BuildError(`type errors in ${relative(process.cwd(), dir) || '.'}:\n${text}`, diagnostics);
  }
  await mkdir(cacheDir, { recursive: true });
  await writeFile(stamp, '');
  return { checked: true, cached: false };
}
