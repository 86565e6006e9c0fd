/**
 * Component -> ES module, in-process, through jco's transpiler. The output is cached on disk by the
 * component's sha-256 (plus the jco version and our patch level), so a second load of the same bytes
 * skips transpilation entirely; core modules are compiled once per process and instantiated many times.
 *
 * jco's default bindings are patched in two places, both measured on this machine (bench/RESULTS.md):
 *  - `_debugLog` reads `process.env.JCO_DEBUG` on every call (a slow native lookup): ~2.6 us per scalar
 *    call becomes ~0.6 us once the flag is read once per module.
 *  - instantiation calls `WebAssembly.promising` inside a try/catch; Node 20 has no JSPI, so every
 *    instantiation threw and caught a TypeError inside a generator: ~0.25 ms becomes ~0.1 ms.
 * A patch that no longer matches fails the load loudly (KERNEL_ERR_COMPONENT_INVALID) instead of
 * silently losing the speed-up: a jco upgrade must revisit them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { KernelError } from '../errors.js';
import { WasmFormatError, wasmKind } from './wasm-binary.js';

const require = createRequire(import.meta.url);
// The package's exports map hides package.json; find it beside the resolved entry point.
const JCO_TRANSPILE_VERSION: string = JSON.parse(
  readFileSync(
    join(dirname(require.resolve('@bytecodealliance/jco-transpile')), '..', 'package.json'),
    'utf8',
  ),
).version;
/** Bump when a patch below changes, so cached output from older patches is not reused. */
const PATCH_LEVEL = 6;

export interface TranspiledComponent {
  /** `sha256:<hex>` of the component bytes. */
  digest: string;
  /** Absolute path of the patched ES module (import it via pathToFileURL). */
  jsPath: string;
  /** Core module file names, in the order jco's getCoreModule asks for them, with their bytes. */
  coreModules: Map<string, Uint8Array>;
  /** Interfaces the component imports, as jco keys them (`pkg:ns/iface`, no version). */
  imports: string[];
  /** Exported instance names, fully qualified (`pkg:ns/iface@ver`). */
  exports: string[];
  /** True when this load was served from the on-disk cache. */
  cached: boolean;
}

interface CacheMeta {
  digest: string;
  jco: string;
  patch: number;
  imports: string[];
  exports: string[];
  coreFiles: string[];
}

export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Patch {
  name: string;
  apply(src: string): string;
}

const PATCHES: Patch[] = [
  {
    name: 'debug-log-env-read',
    apply: (src) => {
      const needle = 'if (!globalThis?.process?.env?.JCO_DEBUG) { return; }';
      if (!src.includes(needle)) return src.includes('_debugLog') ? fail('debug-log-env-read') : src;
      return `const __CAM_JCO_DEBUG = !!globalThis?.process?.env?.JCO_DEBUG;\n${src.replaceAll(needle, 'if (!__CAM_JCO_DEBUG) { return; }')}`;
    },
  },
  {
    // Every sync import call copies its arguments with `[...arguments].slice(1)`, which makes V8 materialise
    // the arguments object: 11% of a memory `read` on the kernel thread. Array.prototype.slice.call on it does
    // not.
    name: 'import-arguments-copy',
    apply: (src) => {
      const needle = 'const params = [...arguments].slice(1);';
      if (!src.includes(needle))
        return src.includes('_lowerImportBackwardsCompat') ? fail('import-arguments-copy') : src;
      return src.replaceAll(needle, 'const params = Array.prototype.slice.call(arguments, 1);');
    },
  },
  {
    // The DataView cache compares `dv.buffer === mem.buffer` on every load and store it serves (20-odd per
    // call that returns a record); `WebAssembly.Memory#buffer` is a C++ getter. A grown (non-shared) memory
    // detaches its old buffer, whose byteLength becomes 0, so checking the cached view's own buffer is
    // enough; shared memories keep the full comparison.
    name: 'dataview-cache',
    apply: (src) => {
      const needle = 'const dataView = mem => dv.buffer === mem.buffer ? dv : dv = new DataView(mem.buffer);';
      if (!src.includes(needle)) return src.includes('dataView(') ? fail('dataview-cache') : src;
      return src.replace(
        needle,
        [
          'let dvMem = null;',
          'let dvShared = false;',
          'const dataView = (mem) => {',
          '  if (dvMem === mem && (dvShared ? dv.buffer === mem.buffer : dv.buffer.byteLength !== 0)) return dv;',
          '  dvMem = mem;',
          '  dv = new DataView(mem.buffer);',
          "  dvShared = typeof SharedArrayBuffer === 'function' && dv.buffer instanceof SharedArrayBuffer;",
          '  return dv;',
          '};',
        ].join('\n  '),
      );
    },
  },
  {
    // Lifting a list<u8> copies it with ArrayBuffer#slice (a runtime call); a TypedArray#slice of a view over the
    // same bytes makes the same fresh, exactly-sized copy through V8's builtin: about 5% of a memory `read`.
    name: 'list-copy',
    apply: (src) =>
      src.replace(
        /new Uint8Array\((\w+)\.buffer\.slice\((\w+), \2 \+ (\w+) \* 1\)\)/g,
        'new Uint8Array($1.buffer, $2, $3).slice()',
      ),
  },
  {
    // A sync call from the guest to a host function (a kv read, the clock, a log line) went through jco's
    // component-model-async task machinery twice: `_lowerImportBackwardsCompat` made a subtask on the calling
    // export's task, then the trampoline made and registered a host task (an AsyncTask: two promises, three
    // closures, a resource scope) and linked it to that subtask, only to hand the already-lowered result
    // back through it. For a sync-lowered call of a sync host function with no resources, streams or futures
    // in its signature none of that is observable: the host function runs, its result is lowered by the
    // trampoline's own code, and the trampoline returns the flat value wasm gets. This patch lets such a
    // trampoline run with an unregistered host task (`CamHostTask`, below) and calls it directly. About a
    // third of jco's per-call overhead on a memory `read`. A trampoline this patch marks but that jco would
    // lower any other way (async) fails loudly instead of running.
    name: 'sync-host-import',
    apply: patchSyncHostImports,
  },
  {
    // Every task (one per export call) made two promises up front — its completion and its exit — plus a
    // `catch` to mark the first handled, though a sync call never awaits either. With Node 20's promise hooks
    // on (AsyncLocalStorage, tracing) each promise also runs hook code. The promises are now made when first
    // asked for, already settled if the task settled first; the completion promise is marked handled when
    // made, as before.
    name: 'lazy-task-promises',
    apply: patchLazyTaskPromises,
  },
  {
    name: 'promising-guard',
    apply: (src) =>
      src.replace(
        /= WebAssembly\.promising\(([^)]*)\);/g,
        "= (typeof WebAssembly.promising === 'function' ? WebAssembly.promising($1) : $1);",
      ),
  },
];

/** Trampoline code that touches resources, streams, futures or waitables keeps jco's full machinery. */
const NOT_PLAIN_IMPORT =
  /handleTable|captureTable|curResourceBorrows|symbolRsc|T_FLAG|\brsc\d|Borrow|Waitable|[Ss]tream(?:Read|Writ|End)|[Ff]uture(?:Read|Writ|End)/;
/** A generated trampoline, at whatever indentation jco nested it: indent, name, body. */
const TRAMPOLINE =
  /^( +)const (_trampoline\d+) = function\([^)]*\) \{\n([\s\S]*?)\n\1\}\n\1\2\.fnName = '[^']*';/gm;
/** A trampoline's `taskCreation: { ... }` block, one level in from the trampoline itself. */
const taskCreation = (indent: string) =>
  new RegExp(`\\n${indent} {2}taskCreation: \\{\\n[\\s\\S]*?\\n${indent} {2}\\}\\n`);
/** How a trampoline runs its host function (one line per call): under the task bookkeeping jco adds. */
const HOST_CALL_WRAPPER =
  /_withGlobalCurrentTaskMeta\(\{\n\s*componentIdx: task\.componentIdx\(\),\n\s*taskID: task\.id\(\),\n\s*fn: \(\) => _trackHostOperation\(\(\) => ([^\n]*)\),\n\s*\}\)/g;
/** A trampoline's `createTask` closure. */
const CREATE_TASK = /\n( +)const createTask = \(\) => \{\n[\s\S]*?\n\1\};\n/;
const CAM_HOST_TASK = `
  /** cam-os binding patch 'sync-host-import': the task of a sync host call, which nothing waits on. */
  class CamHostTask {
    #id = ++AsyncTask._ID;
    #componentIdx;
    constructor(componentIdx) { this.#componentIdx = componentIdx; }
    id() { return this.#id; }
    componentIdx() { return this.#componentIdx; }
    // A host call runs to completion synchronously: no lock to take, no subtask to report to, no waiter
    // to resolve or reject (the trampoline returns the lowered result, or throws).
    enterSync() { return true; }
    getParentSubtask() { return null; }
    setErrored() {}
    resolve() {}
    reject() {}
    exit() {}
  }

  /** cam-os binding patch 'sync-host-import': a sync host function's result; a promise is refused. */
  function camSyncResult(v) {
    if (v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function') {
      throw new Error("cam-os binding patch 'sync-host-import': a sync host function answered a promise");
    }
    return v;
  }
`;

function patchSyncHostImports(src: string): string {
  const lower = 'function _lowerImportBackwardsCompat(args) {';
  if (!src.includes(lower)) return src;
  const mayLeave = /\n(?:[ \t]*\n)*( +)_checkMayLeave\(componentIdx\);\n/y;
  const create = '  function createNewCurrentTask(args) {';
  let marked = 0;
  let out = src.replace(TRAMPOLINE, (whole, indent: string, name: string, body: string) => {
    const componentIdx = /createNewCurrentTask\(\{\n\s*componentIdx: (-?\d+),\n\s*isAsync: false,/.exec(
      body,
    )?.[1];
    const block = taskCreation(indent);
    if (
      componentIdx === undefined ||
      !body.includes('const hostProvided = true;') ||
      !block.test(body) ||
      NOT_PLAIN_IMPORT.test(body)
    )
      return whole;
    marked++;
    const created = `\n${indent}  task = new CamHostTask(${componentIdx});\n`;
    // The host function is called straight: no current-task bookkeeping for a task nothing can observe,
    // no pending-operation tracking for a result that must not be a promise (camSyncResult refuses one),
    // and no `createTask` closure, which only the replaced task-creation block called.
    const withHostTask = whole.replace(block, created);
    const calls = withHostTask.match(HOST_CALL_WRAPPER);
    const maker = CREATE_TASK.exec(withHostTask);
    if (calls?.length !== 1 || !maker) fail('sync-host-import');
    const patched = withHostTask.replace(HOST_CALL_WRAPPER, 'camSyncResult($1)').replace(maker[0], '\n');
    if (patched.includes('createTask')) fail('sync-host-import');
    return `${patched}\n${indent}${name}.camSyncHost = true;`;
  });
  if (marked === 0) return src;
  // The fast path goes right after the may-leave check that follows the argument destructuring.
  const fn = out.indexOf(lower);
  mayLeave.lastIndex = out.indexOf('\n', out.indexOf('} = args;', fn));
  const m = mayLeave.exec(out);
  if (!out.includes(create) || !m) fail('sync-host-import');
  const at = mayLeave.lastIndex;
  const fast = [
    'if (importFn.camSyncHost) {',
    '  if (isManualAsync || isAsync || funcTypeIsAsync) {',
    "    throw new Error(\"cam-os binding patch 'sync-host-import': \" + importFn.fnName + ' is lowered async');",
    '  }',
    '  return importFn(...params);',
    '}',
  ]
    .map((l) => `${m[1]}${l}\n`)
    .join('');
  out = `${out.slice(0, at)}${fast}${out.slice(at)}`;
  return out.replace(create, `${CAM_HOST_TASK}\n${create}`);
}

/** A task's `what` promise (completion, exit): made eagerly by jco, lazily once patched. */
function lazyTaskPromise(what: 'completion' | 'exit', handled: boolean): Array<[string, string]> {
  const W = what[0]!.toUpperCase() + what.slice(1);
  return [
    [
      [
        '        const {',
        `          promise: ${what}Promise,`,
        `          resolve: resolve${W}Promise,`,
        `          reject: reject${W}Promise,`,
        '        } = promiseWithResolvers();',
        `        this.#${what}Promise = ${what}Promise;`,
      ].join('\n'),
      [
        `        const ${what}Deferred = new CamDeferred(${handled});`,
        `        const resolve${W}Promise = ${what}Deferred.resolve;`,
        `        const reject${W}Promise = ${what}Deferred.reject;`,
        `        this.#${what}Promise = ${what}Deferred;`,
      ].join('\n'),
    ],
    [
      `${what}Promise() { return this.#${what}Promise; }`,
      `${what}Promise() { return this.#${what}Promise.promise; }`,
    ],
  ];
}

const TASK_PROMISES: Array<[string, string]> = [
  ...lazyTaskPromise('completion', true),
  // CamDeferred(true) marks the completion promise handled when it is made.
  ['        completionPromise.catch(() => {});\n', ''],
  ...lazyTaskPromise('exit', false),
];

const CAM_DEFERRED = `/** cam-os binding patch 'lazy-task-promises': a promise made only when someone asks for it. */
    class CamDeferred {
      #promise = null;
      #state = 0;
      #value;
      #resolve;
      #reject;
      #handled;
      constructor(handled) { this.#handled = handled; }
      get promise() {
        if (this.#promise === null) {
          this.#promise = new Promise((resolve, reject) => { this.#resolve = resolve; this.#reject = reject; });
          if (this.#handled) this.#promise.catch(() => {});
          if (this.#state !== 0) (this.#state === 1 ? this.#resolve : this.#reject)(this.#value);
        }
        return this.#promise;
      }
      resolve = (v) => this.#settle(1, v);
      reject = (e) => this.#settle(2, e);
      #settle(state, value) {
        if (this.#state !== 0) return;
        this.#state = state;
        this.#value = value;
        if (this.#promise !== null) (state === 1 ? this.#resolve : this.#reject)(value);
      }
    }
    `;

function patchLazyTaskPromises(src: string): string {
  const cls = '    class AsyncTask {';
  if (!src.includes(cls)) return src.includes('class AsyncTask') ? fail('lazy-task-promises') : src;
  let out = src;
  for (const [from, to] of TASK_PROMISES) {
    if (out.split(from).length !== 2) fail('lazy-task-promises');
    out = out.replace(from, to);
  }
  // Only the assignment and the getter may touch the fields: any other use would expect a promise.
  for (const field of ['this.#completionPromise', 'this.#exitPromise']) {
    if (out.split(field).length !== 3) fail('lazy-task-promises');
  }
  return out.replace(cls, `    ${CAM_DEFERRED}${cls.trimStart()}`);
}

function fail(patch: string): never {
  throw new KernelError(
    'KERNEL_ERR_COMPONENT_INVALID',
    `jco output no longer matches the '${patch}' binding patch (jco-transpile ${JCO_TRANSPILE_VERSION}); update host/src/component/transpile.ts`,
  );
}

/** Apply the binding patches (exported for tests). */
export function patchBindings(src: string): string {
  // jco marks the module with a "use components" directive; keep it first.
  return PATCHES.reduce((s, p) => p.apply(s), src);
}

export class TranspileCache {
  readonly dir: string;
  private readonly inflight = new Map<string, Promise<TranspiledComponent>>();

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, `jco-${JCO_TRANSPILE_VERSION}-p${PATCH_LEVEL}`);
  }

  /** Transpile (or fetch from cache) a component. Concurrent requests for the same bytes share one run. */
  get(bytes: Uint8Array): Promise<TranspiledComponent> {
    const digest = digestOf(bytes);
    let p = this.inflight.get(digest);
    if (!p) {
      p = this.load(digest, bytes).finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  private async load(digest: string, bytes: Uint8Array): Promise<TranspiledComponent> {
    const hex = digest.slice('sha256:'.length);
    const dir = join(this.dir, hex);
    const metaPath = join(dir, 'meta.json');
    if (existsSync(metaPath)) {
      try {
        return await this.readCached(dir, JSON.parse(await readFile(metaPath, 'utf8')) as CacheMeta);
      } catch {
        // A damaged cache entry is not an error for the caller: transpile again and replace it.
        await rm(dir, { recursive: true, force: true });
      }
    }
    try {
      if (wasmKind(bytes) !== 'component') {
        throw new KernelError(
          'KERNEL_ERR_COMPONENT_INVALID',
          'expected a WebAssembly component but got a core module (wrap it with `jco new` / componentNew)',
        );
      }
    } catch (e) {
      if (e instanceof WasmFormatError) throw new KernelError('KERNEL_ERR_COMPONENT_INVALID', e.message);
      throw e;
    }
    const { transpileBytes } = await import('@bytecodealliance/jco-transpile');
    let result: Awaited<ReturnType<typeof transpileBytes>>;
    try {
      result = await transpileBytes(bytes, {
        name: 'component',
        instantiation: 'async',
        emitTypescriptDeclarations: false,
        wasiShim: false,
      });
    } catch (e) {
      throw new KernelError(
        'KERNEL_ERR_COMPONENT_INVALID',
        `component could not be transpiled: ${firstLine(e)}`,
      );
    }
    const jsName = 'component.js';
    const js = result.files[jsName];
    if (!js) throw new KernelError('KERNEL_ERR_COMPONENT_INVALID', 'transpiler produced no JS bindings');
    const patched = patchBindings(Buffer.from(js).toString('utf8'));
    const coreFiles = Object.keys(result.files)
      .filter((f) => f.endsWith('.wasm'))
      .sort(coreOrder);
    const meta: CacheMeta = {
      digest,
      jco: JCO_TRANSPILE_VERSION,
      patch: PATCH_LEVEL,
      imports: result.imports,
      exports: result.exports.filter(([n, kind]) => kind === 'instance' && n.includes(':')).map(([n]) => n),
      coreFiles,
    };
    // Write into a private temp dir and rename, so a concurrent reader never sees half an entry.
    const tmp = join(this.dir, `.tmp-${randomUUID()}`);
    await mkdir(tmp, { recursive: true });
    try {
      await writeFile(join(tmp, 'component.mjs'), patched);
      for (const f of coreFiles) await writeFile(join(tmp, f), result.files[f]!);
      await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta));
      await rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
        // Another process cached the same digest first: theirs is identical, keep it.
        if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
        await rm(tmp, { recursive: true, force: true });
      });
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    const coreModules = new Map(coreFiles.map((f) => [f, result.files[f]!] as const));
    return {
      digest,
      jsPath: join(dir, 'component.mjs'),
      coreModules,
      imports: meta.imports,
      exports: meta.exports,
      cached: false,
    };
  }

  private async readCached(dir: string, meta: CacheMeta): Promise<TranspiledComponent> {
    const coreModules = new Map<string, Uint8Array>();
    for (const f of meta.coreFiles) coreModules.set(f, await readFile(join(dir, f)));
    return {
      digest: meta.digest,
      jsPath: join(dir, 'component.mjs'),
      coreModules,
      imports: meta.imports,
      exports: meta.exports,
      cached: true,
    };
  }
}

function coreOrder(a: string, b: string): number {
  const n = (f: string) => Number(/core(\d*)\.wasm$/.exec(f)?.[1] || 1);
  return n(a) - n(b);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').slice(0, 300);
}
