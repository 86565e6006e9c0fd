/**
 * The jco binding patches (transpile.ts): each one applied to the code shape jco emits, then run, against
 * the behaviour of the code it replaces. The whole suite also runs every component through patched bindings.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFixture } from '../testing/fixtures.js';
import { patchBindings, TranspileCache } from './transpile.js';

const dir = mkdtempSync(join(tmpdir(), 'cam-transpile-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Evaluate patched binding code that ends in an expression list, with `memory0` in scope. */
function run<T>(src: string, ret: string, memory0: WebAssembly.Memory): T {
  return new Function('memory0', `${src}\nreturn ${ret};`)(memory0) as T;
}

describe('jco binding patches', () => {
  it('dataview-cache: serves the cached view until the memory grows, then a view of the grown memory', () => {
    const src = patchBindings(
      'let dv = new DataView(new ArrayBuffer());\n  const dataView = mem => dv.buffer === mem.buffer ? dv : dv = new DataView(mem.buffer);',
    );
    expect(src).not.toContain('dv.buffer === mem.buffer ? dv');
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const other = new WebAssembly.Memory({ initial: 2 });
    const dataView = run<(m: WebAssembly.Memory) => DataView>(src, 'dataView', memory);
    const first = dataView(memory);
    expect(first.byteLength).toBe(65536);
    expect(dataView(memory) === first).toBe(true);
    first.setUint32(8, 0xdeadbeef, true);
    memory.grow(1);
    const grown = dataView(memory);
    expect(grown === first).toBe(false);
    expect(grown.byteLength).toBe(2 * 65536);
    expect(grown.getUint32(8, true)).toBe(0xdeadbeef);
    // Another memory gets its own view.
    expect(dataView(other).byteLength).toBe(2 * 65536);
    expect(dataView(memory).byteLength).toBe(2 * 65536);
  });

  it('dataview-cache: a shared memory keeps the full buffer comparison', () => {
    const src = patchBindings(
      'let dv = new DataView(new ArrayBuffer());\n  const dataView = mem => dv.buffer === mem.buffer ? dv : dv = new DataView(mem.buffer);',
    );
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    const dataView = run<(m: WebAssembly.Memory) => DataView>(src, 'dataView', shared);
    expect(dataView(shared).byteLength).toBe(65536);
    shared.grow(1);
    expect(dataView(shared).byteLength).toBe(2 * 65536);
  });

  it('list-copy: lifts a list<u8> as a fresh, exactly-sized copy', () => {
    const src = patchBindings(
      'const lift = (ptr5, len5) => new Uint8Array(memory0.buffer.slice(ptr5, ptr5 + len5 * 1));',
    );
    expect(src).toContain('new Uint8Array(memory0.buffer, ptr5, len5).slice()');
    const memory = new WebAssembly.Memory({ initial: 1 });
    new Uint8Array(memory.buffer).set([1, 2, 3, 4, 5], 100);
    const lift = run<(p: number, l: number) => Uint8Array>(src, 'lift', memory);
    const got = lift(101, 3);
    expect([...got]).toEqual([2, 3, 4]);
    expect(got.byteOffset).toBe(0);
    expect(got.buffer.byteLength).toBe(3);
    new Uint8Array(memory.buffer)[101] = 9;
    expect(got[0]).toBe(2);
    expect(lift(0, 0).byteLength).toBe(0);
  });

  it('import-arguments-copy: passes every argument after the first through', () => {
    const src = patchBindings(
      'function _lowerImportBackwardsCompat(args) {\n    const params = [...arguments].slice(1);\n    return params;\n  }',
    );
    expect(src).toContain('Array.prototype.slice.call(arguments, 1)');
    const f = run<(...a: unknown[]) => unknown[]>(
      src,
      '_lowerImportBackwardsCompat',
      new WebAssembly.Memory({ initial: 0 }),
    );
    expect(f({}, 1, 2n, 'x')).toEqual([1, 2n, 'x']);
    expect(f({})).toEqual([]);
  });

  it('sync-host-import: real jco output calls a sync host function directly and returns its flat result', async () => {
    const t = await new TranspileCache(dir).get(await buildFixture('relay'));
    expect(readFileSync(t.jsPath, 'utf8')).toContain('_trampoline0.camSyncHost = true;');
    const mod = (await import(pathToFileURL(t.jsPath).href)) as {
      instantiate: (
        get: (name: string) => WebAssembly.Module,
        imports: Record<string, unknown>,
      ) => Promise<Record<string, Record<string, (...a: unknown[]) => unknown>>>;
    };
    const instance = async (add: (a: number, b: number) => number) =>
      (
        await mod.instantiate(
          (name) => new WebAssembly.Module(t.coreModules.get(name)! as Uint8Array<ArrayBuffer>),
          {
            'test:fixtures/calc': { add },
          },
        )
      )['test:fixtures/relay@0.1.0']!;
    const seen: number[][] = [];
    const relay = await instance((a, b) => {
      seen.push([a, b]);
      return a + b;
    });
    expect(relay.addVia!(2, 40)).toBe(42);
    expect(relay.addVia!(0xffff_fff0, 0x0f)).toBe(0xffff_ffff);
    expect(seen).toEqual([
      [2, 40],
      [0xffff_fff0, 0x0f],
    ]);
    // A host function that throws traps the call, as without the patch.
    const failing = await instance(() => {
      throw new Error('host add failed');
    });
    expect(() => failing.addVia!(1, 2)).toThrow(/host add failed/);
    // A sync import must not answer a promise: the call traps instead of lowering a promise object.
    const asyncHost = await instance((() => Promise.resolve(3)) as unknown as (
      a: number,
      b: number,
    ) => number);
    expect(() => asyncHost.addVia!(1, 2)).toThrow(/a sync host function answered a promise/);
  });

  it('sync-host-import: leaves trampolines that handle resources to the full machinery', () => {
    const trampoline = (name: string, extra: string) =>
      [
        `  const ${name} = function(arg0) {`,
        '    const hostProvided = true;',
        '    const createTask = () => {',
        '      const results = createNewCurrentTask({',
        '        componentIdx: -1,',
        '        isAsync: false,',
        '      });',
        '    };',
        '    taskCreation: {',
        '      createTask();',
        '    }',
        `    ${extra}`,
        '    const hostRet0 = _withGlobalCurrentTaskMeta({',
        '      componentIdx: task.componentIdx(),',
        '      taskID: task.id(),',
        '      fn: () => _trackHostOperation(() => f(arg0)),',
        '    })',
        '  }',
        `  ${name}.fnName = 'x:y/z#f';`,
      ].join('\n');
    const src = patchBindings(
      [
        'function _lowerImportBackwardsCompat(args) {',
        '    const params = [...arguments].slice(1);',
        '    const { importFn } = args;',
        '    ',
        '    _checkMayLeave(componentIdx);',
        '  }',
        '  function createNewCurrentTask(args) {}',
        trampoline('_trampoline0', 'var x = 1;'),
        trampoline('_trampoline1', 'var rep = handleTable0[arg0];'),
      ].join('\n'),
    );
    expect(src).toContain('_trampoline0.camSyncHost = true;');
    expect(src).not.toContain('_trampoline1.camSyncHost');
    expect(src).toContain('class CamHostTask');
    expect(src).toMatch(/_checkMayLeave\(componentIdx\);\n {4}if \(importFn\.camSyncHost\) \{/);
    // The marked trampoline calls its host function straight; the other keeps jco's wrapper and its task.
    expect(src).toContain('const hostRet0 = camSyncResult(f(arg0))');
    expect(src.split('_trackHostOperation(() => f(arg0))')).toHaveLength(2);
    expect(src.split('const createTask')).toHaveLength(2);
  });

  it('lazy-task-promises: a task settles without promises and hands out settled ones when asked', async () => {
    const t = await new TranspileCache(dir).get(await buildFixture('relay'));
    const src = readFileSync(t.jsPath, 'utf8');
    expect(src).toContain('new CamDeferred(true)');
    expect(src).toContain('completionPromise() { return this.#completionPromise.promise; }');
    // The deferred itself, as patched in.
    const cls = src.slice(src.indexOf('class CamDeferred {'), src.indexOf('class AsyncTask {'));
    const CamDeferred = new Function(`${cls}\nreturn CamDeferred;`)() as new (
      handled: boolean,
    ) => { promise: Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void };
    const early = new CamDeferred(false);
    early.resolve(1);
    early.resolve(2);
    await expect(early.promise).resolves.toBe(1);
    expect(early.promise).toBe(early.promise);
    const late = new CamDeferred(false);
    const p = late.promise;
    late.resolve('v');
    await expect(p).resolves.toBe('v');
    // A rejection nobody asked about is not an unhandled rejection; asked for later, it still rejects.
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const failed = new CamDeferred(true);
    failed.reject(new Error('trap'));
    const failedLater = new CamDeferred(true);
    const asked = failedLater.promise;
    failedLater.reject(new Error('trap later'));
    await new Promise((r) => setTimeout(r, 10));
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
    await expect(failed.promise).rejects.toThrow('trap');
    await expect(asked).rejects.toThrow('trap later');
  });

  it('lazy-task-promises: refuses bindings that use the task promises anywhere else', () => {
    const task = (extra: string) =>
      [
        '    class AsyncTask {',
        '      #completionPromise = null;',
        '      #exitPromise = null;',
        '      constructor() {',
        '        const {',
        '          promise: completionPromise,',
        '          resolve: resolveCompletionPromise,',
        '          reject: rejectCompletionPromise,',
        '        } = promiseWithResolvers();',
        '        this.#completionPromise = completionPromise;',
        '        completionPromise.catch(() => {});',
        '        const {',
        '          promise: exitPromise,',
        '          resolve: resolveExitPromise,',
        '          reject: rejectExitPromise,',
        '        } = promiseWithResolvers();',
        '        this.#exitPromise = exitPromise;',
        `        ${extra}`,
        '      }',
        '      completionPromise() { return this.#completionPromise; }',
        '      exitPromise() { return this.#exitPromise; }',
        '    }',
      ].join('\n');
    expect(patchBindings(task(''))).toContain('new CamDeferred(false)');
    expect(() => patchBindings(task('this.#exitPromise.then(() => {});'))).toThrow(/lazy-task-promises/);
  });

  it('refuses jco output that no longer has a patched shape, naming the patch', () => {
    expect(() =>
      patchBindings('function _lowerImportBackwardsCompat(args) { const params = arguments; }'),
    ).toThrow(/import-arguments-copy/);
    expect(() => patchBindings('const dataView = (m) => new DataView(m.buffer); dataView(x);')).toThrow(
      /dataview-cache/,
    );
  });
});
