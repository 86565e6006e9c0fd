/**
 * The build pipeline: esbuild diagnostics mapped to source lines, refusals before any work, and one real
 * componentize-js build of a small driver (cached across runs) that is stamped, described by a valid
 * manifest, and runs in a real kernel.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { customSections } from '@cam-os/host/component/wasm-binary.js';
import { parseManifest } from '@cam-os/host/trust/manifest.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from './harness.js';
import { BuildError, buildComponent } from './index.js';

const PUBLISHER = '0123456789abcdef0123456789abcdef';
const CACHE = join(tmpdir(), 'cam-os-test-cache', 'sdk-build');

let dir: string;

async function source(name: string, text: string): Promise<string> {
  const file = join(dir, 'src', name);
  await writeFile(file, text);
  return file;
}

async function buildError(p: Promise<unknown>): Promise<BuildError> {
  const e = await p.then(
    () => {
      throw new Error('expected the build to fail');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(BuildError);
  return e as BuildError;
}

const ECHO_DRIVER = `import { log } from 'cam:kernel/log@0.1.0';
import { get, batch } from 'cam:kernel/kv@0.1.0';
import { shout } from './shout.js';

let greeting = 'hello';
export const lifecycle = {
  init(config: Array<[string, string]>) {
    for (const [k, v] of config) if (k === 'greeting') greeting = v;
  },
  health() {
    return { status: 'serving', detail: '', checks: [] };
  },
  exportState() {
    return new TextEncoder().encode(greeting);
  },
  importState(state: Uint8Array) {
    greeting = new TextDecoder().decode(state);
  },
};
export const handler = {
  handle(op: string, payload: Uint8Array): Uint8Array {
    if (op === 'echo') return payload;
    if (op === 'greet') return new TextEncoder().encode(shout(greeting));
    if (op === 'count') {
      const n = Number(new TextDecoder().decode(get('counters', 'n') ?? new TextEncoder().encode('0'))) + 1;
      batch('counters', [{ tag: 'put', val: { key: 'n', value: new TextEncoder().encode(String(n)) } }]);
      log('info', 'counted', [['n', String(n)]]);
      return new TextEncoder().encode(String(n));
    }
    throw { tag: 'unimplemented', val: 'unknown op ' + op };
  },
};
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-build-'));
  await mkdir(join(dir, 'src'));
  await source('shout.ts', "export const shout = (s: string): string => s.toUpperCase() + '!';\n");
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('refusals before componentize', () => {
  it('maps esbuild errors to file:line:column of the source', async () => {
    const entry = await source(
      'broken.ts',
      'export const handler = {\n  handle(op: string) {\n    return op +;\n  },\n};\n',
    );
    const e = await buildError(
      buildComponent({ entry, world: 'driver', outDir: join(dir, 'out'), cacheDir: CACHE }),
    );
    expect(e.diagnostics).toHaveLength(1);
    expect(e.diagnostics[0]).toMatchObject({ file: entry, line: 3, column: 16 });
    expect(e.message).toContain(`${entry}:3:16: Unexpected ";"`);
  });

  it('names the file and line of an import that cannot be resolved, including Node built-ins', async () => {
    const entry = await source(
      'imports.ts',
      "import { x } from './missing.js';\nimport { readFileSync } from 'node:fs';\nexport { x, readFileSync };\n",
    );
    const e = await buildError(
      buildComponent({ entry, world: 'driver', outDir: join(dir, 'out'), cacheDir: CACHE }),
    );
    expect(e.message).toContain(`${entry}:1:19: Could not resolve "./missing.js"`);
    expect(e.diagnostics.map((d) => d.line).sort()).toEqual([1, 2]);
  });

  it('refuses an import of another WIT version, naming where it is', async () => {
    const entry = await source(
      'version.ts',
      "// a driver\nimport { log } from 'cam:kernel/log@0.2.0';\nexport const handler = { handle() { log('info', 'x', []); return new Uint8Array(); } };\n",
    );
    const e = await buildError(
      buildComponent({ entry, world: 'driver', outDir: join(dir, 'out'), cacheDir: CACHE }),
    );
    expect(e.message).toContain(
      `${entry}:2:21: imports 'cam:kernel/log@0.2.0', but this build targets cam:kernel@0.1.0`,
    );
  });

  it('refuses unknown worlds, WIT versions and names', async () => {
    const entry = join(dir, 'src', 'shout.ts');
    const world = await buildError(buildComponent({ entry, world: 'kernel', outDir: dir }));
    expect(world.message).toContain('scheduler-component, arbitration-component, memory-component');
    const version = await buildError(
      buildComponent({ entry, world: 'driver', witVersion: '9.9.9', outDir: dir }),
    );
    expect(version.message).toContain("unknown WIT version '9.9.9'");
    const name = await buildError(buildComponent({ entry, world: 'driver', outDir: dir, name: 'Bad Name' }));
    expect(name.message).toContain('kebab-case');
  });
});

describe('a real build', () => {
  let entry: string;
  const outDir = () => join(dir, 'dist');

  beforeAll(async () => {
    entry = await source('echo.ts', ECHO_DRIVER);
  });

  it('produces a stamped component and a valid manifest, then serves the same inputs from the cache', {
    timeout: 180_000,
  }, async () => {
    const manifest = {
      name: 'echo',
      version: '1.2.3',
      publisher: PUBLISHER,
      memoryMaxPages: 2048,
      concurrency: 1,
    };
    const first = await buildComponent({
      entry,
      world: 'driver',
      outDir: outDir(),
      cacheDir: CACHE,
      manifest,
    });
    const second = await buildComponent({
      entry,
      world: 'driver',
      outDir: outDir(),
      cacheDir: CACHE,
      manifest,
    });
    expect(second.cached).toBe(true);
    expect(second.digest).toBe(first.digest);
    expect(first.imports).toEqual(['cam:kernel/kv@0.1.0', 'cam:kernel/log@0.1.0']);
    expect(first.wasmPath).toBe(join(outDir(), 'echo.wasm'));

    const bytes = await readFile(first.wasmPath);
    expect(bytes.length).toBe(first.size);
    expect(Buffer.from(customSections(bytes).get('cam-os:abi')!).toString()).toBe('0.1.0');

    const m = parseManifest(JSON.parse(await readFile(first.manifestPath!, 'utf8')));
    expect(m).toMatchObject({
      schema: 'cam-os/manifest@1',
      name: 'echo',
      version: '1.2.3',
      publisher: PUBLISHER,
      component: { digest: first.digest, size: first.size },
      world: 'cam:kernel/driver',
      abiVersion: '0.1.0',
      capabilities: { imports: first.imports, memoryMaxPages: 2048, concurrency: 1 },
    });
    expect(m.signatures).toBeUndefined();
  });

  it('refuses a manifest the kernel would refuse, without touching the output', {
    timeout: 180_000,
  }, async () => {
    const before = await readFile(join(outDir(), 'manifest.json'), 'utf8');
    const e = await buildError(
      buildComponent({
        entry,
        world: 'driver',
        outDir: outDir(),
        cacheDir: CACHE,
        manifest: { name: 'echo', version: 'one', publisher: 'nobody' },
      }),
    );
    expect(e.message).toContain('manifest.version');
    expect(e.message).toContain('manifest.publisher');
    expect(await readFile(join(outDir(), 'manifest.json'), 'utf8')).toBe(before);
  });

  it('runs in a real kernel with the host interfaces', { timeout: 60_000 }, async () => {
    const h = await ComponentHarness.start();
    try {
      const wasmPath = join(outDir(), 'echo.wasm');
      const imports = ['cam:kernel/kv@0.1.0', 'cam:kernel/log@0.1.0'];
      await h.load({ name: 'echo', wasmPath, imports, config: { greeting: 'hi' } });
      const call = (op: string, payload = new Uint8Array()) =>
        h.call<Uint8Array>('echo', 'cam:kernel/handler', 'handle', op, payload);
      expect(Buffer.from(await call('echo', new Uint8Array([1, 2, 3])))).toEqual(Buffer.from([1, 2, 3]));
      expect(Buffer.from(await call('greet')).toString()).toBe('HI!');
      expect(Buffer.from(await call('count')).toString()).toBe('1');
      expect(Buffer.from(await call('count')).toString()).toBe('2');
      expect(h.logs.at(-1)).toMatchObject({ component: 'echo', msg: 'counted', fields: { n: '2' } });
      await expect(call('nope')).rejects.toMatchObject({
        status: 'UNIMPLEMENTED',
        message: 'unknown op nope',
      });
    } finally {
      await h.stop();
    }
  });
});
