import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { componentize } from '@bytecodealliance/componentize-js';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { componentEmbed, componentNew, componentWit } from '@bytecodealliance/jco-transpile/wasm-tools';
import { afterAll, describe, expect, it } from 'vitest';
import { GrpcStatus, WIT_ERROR_STATUS } from '../errors.js';
import {
  combineWitFiles,
  listWorlds,
  readWitFiles,
  SUPPORTED_WIT_VERSIONS,
  WitSourceError,
  witSource,
} from './source.js';

const VERSION = '0.1.0';
const PKG = `cam:kernel@${VERSION}`;

/** `name { ... }` blocks of one kind (interface or world) at the top level of a WIT source. */
function blocks(source: string, kind: 'interface' | 'world'): Map<string, string> {
  const out = new Map<string, string>();
  const re = new RegExp(`^${kind} ([a-z][a-z0-9-]*) \\{$`, 'gm');
  for (const m of source.matchAll(re)) {
    const end = source.indexOf('\n}', m.index);
    out.set(m[1]!, source.slice(m.index, end));
  }
  return out;
}

function worldItems(body: string, direction: 'import' | 'export'): string[] {
  return [...body.matchAll(new RegExp(`^\\s+${direction} ([a-z][a-z0-9-]*);`, 'gm'))].map((m) => m[1]!);
}

function functionNames(body: string): string[] {
  return [...body.matchAll(/^\s+([a-z][a-z0-9-]*): func\(/gm)].map((m) => m[1]!);
}

const camel = (kebab: string) => kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

const source = witSource(VERSION);
const interfaces = blocks(source, 'interface');
const worlds = blocks(source, 'world');

describe('witSource / listWorlds', () => {
  it('joins every .wit file under exactly one package line', () => {
    const files = readWitFiles(VERSION);
    expect(files.map((f) => f.name)).toEqual([
      'host.wit',
      'lifecycle.wit',
      'services.wit',
      'syscalls.wit',
      'types.wit',
      'worlds.wit',
    ]);
    expect(source.match(/^\s*package\s/gm)).toEqual(['package ']);
    expect(source.startsWith(`package ${PKG};`)).toBe(true);
    for (const f of files) expect(source).toContain(`// ---- ${f.name}`);
    expect(witSource()).toBe(source);
  });

  it('lists the worlds and interfaces other code is written against', () => {
    expect(listWorlds(VERSION)).toEqual([
      'scheduler-component',
      'arbitration-component',
      'memory-component',
      'federation-component',
      'driver',
      'kernel',
    ]);
    expect([...interfaces.keys()].sort()).toEqual(
      [
        'arbitration',
        'clock',
        'context',
        'digest',
        'federation',
        'handler',
        'kv',
        'lifecycle',
        'log',
        'memory',
        'observability',
        'policy',
        'scheduler',
        'security',
        'tasks',
        'types',
      ].sort(),
    );
    expect(SUPPORTED_WIT_VERSIONS).toContain(VERSION);
  });

  it('rejects an unknown version with an error that names the supported ones', () => {
    expect(() => witSource('9.9.9')).toThrow(WitSourceError);
    expect(() => witSource('9.9.9')).toThrow(/unknown WIT version '9\.9\.9'.*supported versions are 0\.1\.0/);
    expect(() => listWorlds('0.0.1')).toThrow(WitSourceError);
  });

  it('refuses files that do not declare the same package, or declare it twice', () => {
    const ok = { name: 'a.wit', text: `package ${PKG};\ninterface a {}\n` };
    expect(combineWitFiles(PKG, [ok])).toBe(`package ${PKG};\n\n// ---- a.wit\ninterface a {}\n`);
    expect(() => combineWitFiles(PKG, [ok, { name: 'b.wit', text: 'interface b {}' }])).toThrow(
      /b\.wit: declares package '\(none\)'/,
    );
    expect(() => combineWitFiles(PKG, [{ name: 'c.wit', text: 'package cam:other@0.1.0;\n' }])).toThrow(
      /c\.wit: declares package 'cam:other@0\.1\.0'/,
    );
    expect(() => combineWitFiles(PKG, [{ name: 'd.wit', text: `package ${PKG};\npackage ${PKG};` }])).toThrow(
      /more than one package declaration/,
    );
    expect(() => combineWitFiles(PKG, [])).toThrow(/no \.wit files/);
  });
});

describe('WIT content rules', () => {
  it('documents every item with a /// comment', () => {
    const undocumented: string[] = [];
    for (const file of readWitFiles(VERSION)) {
      const lines = file.text.split('\n');
      lines.forEach((line, i) => {
        const t = line.trim();
        if (t === '' || t.startsWith('//') || t.startsWith('}') || /^(package|use) /.test(t)) return;
        const prev = (lines[i - 1] ?? '').trim();
        if (!prev.startsWith('///')) undocumented.push(`${file.name}:${i + 1}: ${t}`);
      });
    }
    expect(undocumented).toEqual([]);
  });

  it('uses none of the types the JS-value runtime cannot carry', () => {
    const code = source
      .split('\n')
      .filter((l) => !l.trim().startsWith('//'))
      .join('\n');
    // Whole WIT tokens only: `resource-exhausted` is a fine name.
    expect(code).not.toMatch(/(?<![\w-])(resource|future|stream|flags)(?![\w-])/);
    expect(code).not.toMatch(/(?<![\w-])(own|borrow)</);
  });

  it('keeps kernel-error, the README table and the kernel error catalogue in step', async () => {
    const variant = /variant kernel-error \{([\s\S]*?)\n {2}\}/.exec(interfaces.get('types')!)![1]!;
    const cases = [...variant.matchAll(/^\s+([a-z-]+)(\(string\))?,$/gm)].map((m) => m[1]!);
    expect(cases).toHaveLength(10);

    const readme = await readFile(new URL('../../../wit/README.md', import.meta.url), 'utf8');
    const rows = [...readme.matchAll(/^\| `([a-z-]+)` +\| (\d+) +\| ([A-Z_]+) +\|/gm)].map((m) => ({
      tag: m[1]!,
      code: Number(m[2]),
      status: m[3]!,
    }));
    expect(rows.map((r) => r.tag).sort()).toEqual([...cases].sort());
    for (const row of rows) {
      expect(GrpcStatus[row.status as keyof typeof GrpcStatus], row.tag).toBe(row.code);
      expect(WIT_ERROR_STATUS[row.tag], row.tag).toBe(row.status);
      // The doc comment of each case names the same code, so readers of the WIT see it too.
      expect(variant, row.tag).toMatch(new RegExp(`gRPC ${row.code} ${row.status}\\.\\n\\s+${row.tag}\\b`));
    }
    expect(Object.keys(WIT_ERROR_STATUS).sort()).toEqual([...cases].sort());
  });
});

describe('every world builds into a real component (componentEmbed + componentNew)', () => {
  for (const world of listWorlds(VERSION)) {
    it(world, async () => {
      const body = worlds.get(world)!;
      const imports = worldItems(body, 'import');
      const exports = worldItems(body, 'export');
      expect(exports.length).toBeGreaterThan(0);

      const core = await componentEmbed({ dummy: true, witSource: source, world });
      const component = await componentNew(core);
      const wit = await componentWit(component);
      for (const name of imports) expect(wit).toContain(`import cam:kernel/${name}@${VERSION};`);
      for (const name of exports) expect(wit).toContain(`export cam:kernel/${name}@${VERSION};`);
      if (world !== 'kernel') expect(exports).toContain('lifecycle');

      // jco's bindgen must accept every type, and name every function of the world in its bindings.
      const out = await transpileBytes(component, { name: world, instantiation: { tag: 'async' } });
      expect(out.exports.map(([name]) => name)).toEqual(expect.arrayContaining(exports));
      for (const name of [...imports, ...exports]) {
        const dts = new TextDecoder().decode(out.files[`interfaces/cam-kernel-${name}.d.ts`]);
        for (const fn of functionNames(interfaces.get(name)!)) {
          expect(dts, `${world}: ${name}#${fn}`).toContain(`export function ${camel(fn)}(`);
        }
      }
    });
  }
});

// A driver in plain JS: keeps one value in kv, logs, reports typed errors, and carries a call counter
// across a hot-swap through export-state / import-state.
const DRIVER_JS = `
import { log } from 'cam:kernel/log@0.1.0';
import { get, batch } from 'cam:kernel/kv@0.1.0';

let partition = null;
let calls = 0;

export const lifecycle = {
  init(config) {
    if (partition !== null) throw { tag: 'failed-precondition', val: 'init called twice' };
    const entry = config.find(([k]) => k === 'partition');
    if (!entry) throw { tag: 'invalid-argument', val: 'config needs a partition' };
    partition = entry[1];
  },
  health() {
    return { status: partition === null ? 'not-serving' : 'serving', detail: '', checks: [['calls', String(calls)]] };
  },
  exportState() {
    return new TextEncoder().encode(JSON.stringify({ format: 1, calls }));
  },
  importState(state) {
    const s = JSON.parse(new TextDecoder().decode(state));
    if (s.format !== 1) throw { tag: 'unimplemented', val: 'state format ' + s.format };
    calls = s.calls;
  },
};

export const handler = {
  handle(op, payload) {
    calls++;
    if (op === 'put') {
      batch(partition, [{ tag: 'put', val: { key: 'value', value: payload } }]);
      log('info', 'stored', [['bytes', String(payload.length)]]);
      return new Uint8Array(0);
    }
    if (op === 'get') {
      const value = get(partition, 'value');
      if (value === undefined) throw { tag: 'not-found', val: 'no value stored' };
      return value;
    }
    throw { tag: 'unimplemented', val: 'unknown op ' + op };
  },
};
`;

type KernelErrorValue = { tag: string; val?: string };
type DriverRoot = {
  lifecycle: {
    init(config: [string, string][]): void;
    health(): { status: string; detail: string; checks: [string, string][] };
    exportState(): Uint8Array;
    importState(state: Uint8Array): void;
  };
  handler: { handle(op: string, payload: Uint8Array): Uint8Array };
};
type DriverModule = {
  instantiate(
    getCoreModule: (path: string) => Promise<WebAssembly.Module>,
    imports: Record<string, Record<string, unknown>>,
  ): Promise<DriverRoot>;
};

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to throw');
}

describe('componentize-js 0.23 builds a JS driver against the WIT', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('componentizes, transpiles, instantiates and runs the driver world', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cam-wit-driver-'));
    dirs.push(dir);
    const sourcePath = join(dir, 'driver.js');
    await writeFile(sourcePath, DRIVER_JS);

    const disableFeatures: ('stdio' | 'random' | 'clocks' | 'http' | 'fetch-event')[] = [
      'random',
      'stdio',
      'clocks',
      'http',
      'fetch-event',
    ];
    // witWorld (WIT as a string) is the option that works without filesystem preopens; the package's
    // types.d.ts does not declare it, hence a variable rather than an object literal.
    const options = { sourcePath, witWorld: source, worldName: 'driver', disableFeatures };
    const { component } = await componentize(options);

    const wit = await componentWit(component);
    expect(wit).toContain(`import cam:kernel/log@${VERSION};`);
    expect(wit).toContain(`import cam:kernel/kv@${VERSION};`);
    expect(wit).toContain(`export cam:kernel/lifecycle@${VERSION};`);
    expect(wit).toContain(`export cam:kernel/handler@${VERSION};`);
    // With every WASI feature disabled the driver needs nothing but the kernel's own interfaces.
    expect(wit).not.toMatch(/import wasi:/);

    const { files } = await transpileBytes(component, { name: 'driver', instantiation: { tag: 'async' } });
    const outDir = join(dir, 'out');
    for (const [name, bytes] of Object.entries(files)) {
      await mkdir(dirname(join(outDir, name)), { recursive: true });
      await writeFile(join(outDir, name), bytes);
    }
    const mod = (await import(pathToFileURL(join(outDir, 'driver.js')).href)) as DriverModule;
    const compiled = new Map<string, WebAssembly.Module>();
    const getCoreModule = async (path: string) => {
      let m = compiled.get(path);
      if (!m) {
        m = await WebAssembly.compile(await readFile(join(outDir, path)));
        compiled.set(path, m);
      }
      return m;
    };

    const store = new Map<string, Uint8Array>();
    const logs: { level: string; message: string; fields: [string, string][] }[] = [];
    let kvDown = false;
    const imports = {
      'cam:kernel/kv': {
        get: (partition: string, key: string) => {
          if (kvDown) throw { tag: 'unavailable', val: 'kv backend down' } satisfies KernelErrorValue;
          return store.get(`${partition}/${key}`);
        },
        getMany: (partition: string, keys: string[]) => keys.map((k) => store.get(`${partition}/${k}`)),
        batch: (
          partition: string,
          ops: { tag: string; val: { key: string; value: Uint8Array } | string }[],
        ) => {
          for (const op of ops) {
            if (op.tag === 'put' && typeof op.val === 'object') {
              store.set(`${partition}/${op.val.key}`, op.val.value.slice());
            } else if (op.tag === 'delete' && typeof op.val === 'string')
              store.delete(`${partition}/${op.val}`);
          }
        },
        scan: () => [],
      },
      'cam:kernel/log': {
        log: (level: string, message: string, fields: [string, string][]) =>
          logs.push({ level, message, fields }),
      },
      'cam:kernel/types': {},
    };

    const first = await mod.instantiate(getCoreModule, imports);
    expect(first.lifecycle.health().status).toBe('not-serving');
    expect(thrown(() => first.lifecycle.init([]))).toEqual({
      tag: 'invalid-argument',
      val: 'config needs a partition',
    });
    first.lifecycle.init([['partition', 'p1']]);
    expect(thrown(() => first.lifecycle.init([['partition', 'p1']]))).toEqual({
      tag: 'failed-precondition',
      val: 'init called twice',
    });

    expect(thrown(() => first.handler.handle('get', new Uint8Array()))).toEqual({
      tag: 'not-found',
      val: 'no value stored',
    });
    expect(first.handler.handle('put', new TextEncoder().encode('hello'))).toEqual(new Uint8Array(0));
    expect(new TextDecoder().decode(store.get('p1/value'))).toBe('hello');
    expect(logs).toEqual([{ level: 'info', message: 'stored', fields: [['bytes', '5']] }]);
    expect(new TextDecoder().decode(first.handler.handle('get', new Uint8Array()))).toBe('hello');
    expect(thrown(() => first.handler.handle('frobnicate', new Uint8Array()))).toEqual({
      tag: 'unimplemented',
      val: 'unknown op frobnicate',
    });
    // A host import's typed error reaches the guest and comes back out as the export's error.
    kvDown = true;
    expect(thrown(() => first.handler.handle('get', new Uint8Array()))).toEqual({
      tag: 'unavailable',
      val: 'kv backend down',
    });
    kvDown = false;
    expect(first.lifecycle.health()).toEqual({ status: 'serving', detail: '', checks: [['calls', '5']] });

    // Hot-swap: export-state from the old instance, init + import-state on a new one of the same Module.
    const state = first.lifecycle.exportState();
    const second = await mod.instantiate(getCoreModule, imports);
    second.lifecycle.init([['partition', 'p1']]);
    expect(thrown(() => second.lifecycle.importState(new TextEncoder().encode('{"format":2}')))).toEqual({
      tag: 'unimplemented',
      val: 'state format 2',
    });
    second.lifecycle.importState(state);
    expect(second.lifecycle.health().checks).toEqual([['calls', '5']]);
    expect(new TextDecoder().decode(second.handler.handle('get', new Uint8Array()))).toBe('hello');
  });
});
