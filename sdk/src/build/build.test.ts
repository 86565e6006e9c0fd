/**
 * The build pipeline: esbuild diagnostics mapped to source lines, refusals before any work, one real
 * componentize-js build of a small driver (cached across runs) that is stamped, described by a valid
 * manifest, and runs in a real kernel; and the same for a small AssemblyScript driver (its toolchain named
 * by its driver.json), with asc diagnostics and the checks on its exports, imports and sources.
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

/** A driver (world `driver`) in AssemblyScript, with the canonical-ABI glue written out by hand. */
const AS_DRIVER = `// @ts-ignore: decorator
@external('cam:kernel/log@0.1.0', 'log')
declare function log(level: i32, mp: usize, ml: usize, fp: usize, fl: usize): void;

const RET: usize = heap.alloc(32);
// Every allocation of a call, freed by its post-return.
const CALL: usize = heap.alloc(1024);
let allocated = 0;

export function cabi_realloc(old: usize, oldSize: usize, align: usize, size: usize): usize {
  if (allocated == 256) unreachable();
  const p = heap.alloc(size);
  if (old != 0) memory.copy(p, old, oldSize < size ? oldSize : size);
  store<usize>(CALL + (<usize>allocated << 2), p);
  allocated++;
  return p;
}

function freeCall(): void {
  for (let i = 0; i < allocated; i++) heap.free(load<usize>(CALL + (<usize>i << 2)));
  allocated = 0;
}

function empty(): usize {
  memory.fill(RET, 0, 32);
  return RET;
}

export function lifecycle__init(ptr: usize, len: usize): usize { return empty(); }
export function cabi_post_lifecycle__init(ret: usize): void { freeCall(); }
export function lifecycle__health(): usize { return empty(); }
export function lifecycle__export_state(): usize { return empty(); }
export function lifecycle__import_state(ptr: usize, len: usize): usize { return empty(); }
export function cabi_post_lifecycle__import_state(ret: usize): void { freeCall(); }

/** echo: returns the payload (and logs the op); any other op: unimplemented, with the op as message. */
export function handler__handle(op: usize, opLen: usize, payload: usize, len: usize): usize {
  empty();
  if (opLen == 4 && load<u32>(op) == 0x6f686365) {
    log(2, op, opLen, 0, 0);
    store<usize>(RET, payload, 4);
    store<usize>(RET, len, 8);
  } else {
    store<u8>(RET, 1);
    store<u8>(RET, 8, 4);
    store<usize>(RET, op, 8);
    store<usize>(RET, opLen, 12);
  }
  return RET;
}
export function cabi_post_handler__handle(ret: usize): void { freeCall(); }
`;

describe('an AssemblyScript build', () => {
  let asDir: string;
  const entry = () => join(asDir, 'assembly', 'index.ts');

  async function asSource(text: string, name = 'index.ts'): Promise<string> {
    const file = join(asDir, 'assembly', name);
    await writeFile(file, text);
    return file;
  }

  beforeAll(async () => {
    asDir = join(dir, 'as-driver');
    await mkdir(join(asDir, 'assembly'), { recursive: true });
    await writeFile(
      join(asDir, 'driver.json'),
      JSON.stringify({ name: 'as-echo', toolchain: 'assemblyscript', entry: 'assembly/index.ts' }),
    );
  });

  it('compiles with asc (toolchain from driver.json), stamps, caches, and runs in a real kernel', {
    timeout: 120_000,
  }, async () => {
    await asSource(AS_DRIVER);
    const opts = {
      entry: entry(),
      world: 'driver',
      outDir: join(asDir, 'dist'),
      cacheDir: join(asDir, 'cache'),
    };
    const first = await buildComponent({
      ...opts,
      manifest: { name: 'as-echo', version: '1.0.0', publisher: PUBLISHER },
    });
    expect(first).toMatchObject({
      toolchain: 'assemblyscript',
      cached: false,
      imports: ['cam:kernel/log@0.1.0'],
    });
    const second = await buildComponent(opts);
    expect(second).toMatchObject({ cached: true, digest: first.digest });
    const bytes = await readFile(first.wasmPath);
    expect(Buffer.from(customSections(bytes).get('cam-os:abi')!).toString()).toBe('0.1.0');
    expect(parseManifest(JSON.parse(await readFile(first.manifestPath!, 'utf8')))).toMatchObject({
      component: { digest: first.digest, size: first.size },
      capabilities: { imports: ['cam:kernel/log@0.1.0'] },
    });

    const h = await ComponentHarness.start();
    try {
      await h.load({ name: 'as-echo', wasmPath: first.wasmPath, imports: first.imports });
      const call = (op: string, payload = new Uint8Array()) =>
        h.call<Uint8Array>('as-echo', 'cam:kernel/handler', 'handle', op, payload);
      expect(Buffer.from(await call('echo', new Uint8Array([1, 2, 3])))).toEqual(Buffer.from([1, 2, 3]));
      expect(h.logs.at(-1)).toMatchObject({ component: 'as-echo', level: 'info', msg: 'echo' });
      await expect(call('nope')).rejects.toMatchObject({ status: 'UNIMPLEMENTED', message: 'nope' });
    } finally {
      await h.stop();
    }

    // A change anywhere in the source folder is a new build.
    await asSource('// a helper nobody imports yet\n', 'helper.ts');
    expect((await buildComponent(opts)).cached).toBe(false);
  });

  it('maps asc errors to file:line:column of the source', { timeout: 60_000 }, async () => {
    const file = await asSource('export function handler__handle(): usize {\n  return missing;\n}\n');
    const e = await buildError(buildComponent({ entry: file, world: 'driver', outDir: join(asDir, 'dist') }));
    expect(e.diagnostics[0]).toMatchObject({ line: 2, column: 10 });
    expect(e.message).toContain(":2:10: TS2304: Cannot find name 'missing'.");
  });

  it('refuses exports without a WIT name, imports outside the world, and sources outside the folder', {
    timeout: 60_000,
  }, async () => {
    const build = (file: string) =>
      buildError(buildComponent({ entry: file, world: 'driver', outDir: join(asDir, 'dist') }));
    const named = await build(await asSource('export function handle(): void {}\n'));
    expect(named.message).toContain("export 'handle' does not name a WIT function");
    const imported = await build(
      await asSource(
        "// @ts-ignore: decorator\n@external('env', 'now')\ndeclare function now(): i64;\nexport function lifecycle__health(): i64 { return now(); }\n",
      ),
    );
    expect(imported.message).toContain("imports 'env#now'");
    await writeFile(join(asDir, 'outside.ts'), 'export const X: i32 = 1;\n');
    const outside = await build(
      await asSource(
        "import { X } from '../outside';\nexport function lifecycle__health(): i32 { return X; }\n",
      ),
    );
    expect(outside.message).toContain('imports sources outside its folder');
    const unknown = await buildError(
      buildComponent({
        entry: entry(),
        world: 'driver',
        outDir: join(asDir, 'dist'),
        toolchain: 'rust' as never,
      }),
    );
    expect(unknown.message).toContain("unknown toolchain 'rust'");
  });
});
