/**
 * The development path's guest runtime. A dev artifact (artifact.ts) is a small ES module with jco's
 * instantiation signature, `instantiate(getCoreModule, imports, instantiateCore)`, so the kernel's worker
 * runtime runs it exactly like a transpiled component: one worker per instance, the same call channel,
 * deadlines, supervisor and hot-swap. Instead of core wasm it evaluates the driver's bundled JS:
 *
 *  - in a fresh `vm` context per instantiation (no `process`, no `require`, no Node globals — like the
 *    SpiderMonkey engine inside a componentize-js component, which only adds the WHATWG encoding API and
 *    console), so a re-instantiation after a trap starts from clean module state;
 *  - with its `cam:kernel/*` imports bound to the kernel's host-call forwarders, and every value in both
 *    directions checked against the world's WIT types (values.ts);
 *  - with jco's error conventions: an import's `result` error reaches the guest as a thrown object with a
 *    `payload`, an export's error is thrown to the kernel as the bare payload, anything else is a trap.
 *
 * A host failure that is not a typed `result` error is a trap in a real component: the guest cannot catch
 * it. Here the guest could, so the instance remembers it and the export call fails as a trap anyway.
 */
import vm from 'node:vm';
import { CanonicalValueError, checkValue, resolveType } from './values.js';
import type { WitFunction, WitType, WorldTypes } from './wit-model.js';

type Fn = (...args: unknown[]) => unknown;
type ExportMap = Record<string, Record<string, Fn>>;

/** A trap: the worker reports any thrown Error as TRAP and drops the instance. */
class DevTrap extends Error {
  override name = 'DevTrap';
}

const scripts = new Map<string, vm.Script>();

function script(code: string, sourceName: string): vm.Script {
  let s = scripts.get(code);
  if (!s) {
    // esbuild's CommonJS output calls `require("cam:kernel/…")` for the WIT imports. Those calls are
    // renamed so that the guest, like a component, has no `require` in scope.
    const body = code.replace(/\brequire\((["'])(cam:kernel\/[a-z0-9-]+@[\w.+-]+)\1\)/g, '__camImport("$2")');
    s = new vm.Script(`(function (__camImport, module, exports) {\n${body}\n})`, {
      filename: sourceName,
      lineOffset: -1,
    });
    scripts.set(code, s);
  }
  return s;
}

function isErrorObject(v: unknown): v is Error {
  return Object.prototype.toString.call(v) === '[object Error]';
}

function resultOf(f: WitFunction, world: WorldTypes): { ok?: WitType; err?: WitType } | undefined {
  if (!f.result) return undefined;
  const r = resolveType(f.result, world.interfaces);
  return r.k === 'result' ? { ok: r.ok, err: r.err } : undefined;
}

export function instantiateDev(
  code: string,
  world: WorldTypes,
  imports: Record<string, Record<string, Fn> | undefined>,
  sourceName: string,
): ExportMap {
  const ifaces = world.interfaces;
  const qualified = (i: string) => `${world.package}/${i}@${world.version}`;
  let poison: Error | undefined;

  // --- imports: guest -> kernel
  const modules = new Map<string, Record<string, Fn>>();
  for (const name of world.imports) {
    const host = imports[`${world.package}/${name}`];
    const iface = ifaces[name]!;
    const mod: Record<string, Fn> = {};
    for (const f of iface.functions) {
      const where = `import ${world.package}/${name}#${f.name}`;
      const result = resultOf(f, world);
      mod[f.js] = (...args: unknown[]) => {
        if (!host) throw new DevTrap(`${where}: the kernel did not link ${world.package}/${name}`);
        if (args.length !== f.params.length) {
          throw new CanonicalValueError(
            `${where}: takes ${f.params.length} argument(s) (${f.params.map((p) => p.name).join(', ')}), got ${args.length}`,
          );
        }
        const checked = f.params.map((p, i) =>
          checkValue(p.type, args[i], ifaces, `${where} argument ${p.name}`),
        );
        let out: unknown;
        try {
          out = host[f.js]!(...checked);
        } catch (e) {
          const payload = (e as { payload?: unknown } | null)?.payload;
          if (result?.err && e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload')) {
            const val = checkValue(result.err, payload, ifaces, `${where} error`);
            throw Object.assign(new Error(`${where} failed`), { name: 'ComponentError', payload: val });
          }
          poison ??= new DevTrap(`${where} trapped: ${(e as Error)?.message ?? String(e)}`);
          throw poison;
        }
        if (result) return result.ok ? checkValue(result.ok, out, ifaces, `${where} returned`) : undefined;
        return f.result ? checkValue(f.result, out, ifaces, `${where} returned`) : undefined;
      };
    }
    modules.set(qualified(name), mod);
  }

  // --- evaluate the guest in its own context
  const context = vm.createContext({
    TextEncoder,
    TextDecoder,
    console: {
      log: (...a: unknown[]) => console.error(`[${sourceName}]`, ...a),
      info: (...a: unknown[]) => console.error(`[${sourceName}]`, ...a),
      warn: (...a: unknown[]) => console.error(`[${sourceName}]`, ...a),
      error: (...a: unknown[]) => console.error(`[${sourceName}]`, ...a),
      debug: () => {},
    },
  });
  const require = (spec: string): unknown => {
    const m = modules.get(spec);
    if (m) return m;
    throw new DevTrap(
      `${sourceName} imports '${spec}', which world ${world.world} of ${world.package}@${world.version} does not import (it imports ${world.imports.map(qualified).join(', ') || 'nothing'})`,
    );
  };
  const module = { exports: {} as Record<string, unknown> };
  const factory = script(code, sourceName).runInContext(context) as (
    r: typeof require,
    m: typeof module,
    e: unknown,
  ) => void;
  factory(require, module, module.exports);
  const guest = module.exports;

  // --- exports: kernel -> guest
  const out: ExportMap = {};
  for (const name of world.exports) {
    const iface = ifaces[name]!;
    const jsIface = name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
    const impl = guest[jsIface] as Record<string, unknown> | undefined;
    if (impl === null || typeof impl !== 'object') {
      throw new DevTrap(
        `${sourceName} does not export '${jsIface}' (world ${world.world} exports ${qualified(name)}): add \`export const ${jsIface} = { … }\``,
      );
    }
    const fns: Record<string, Fn> = {};
    for (const f of iface.functions) {
      const where = `export ${world.package}/${name}#${f.name}`;
      const target = impl[f.js];
      if (typeof target !== 'function') {
        throw new DevTrap(
          `${sourceName}: ${jsIface}.${f.js} is not a function (${where} is required by world ${world.world})`,
        );
      }
      const result = resultOf(f, world);
      fns[f.js] = (...args: unknown[]) => {
        const checked = f.params.map((p, i) =>
          checkValue(p.type, args[i], ifaces, `${where} argument ${p.name}`),
        );
        let value: unknown;
        try {
          value = (target as Fn).apply(impl, checked);
        } catch (e) {
          if (poison) throw poison;
          if (!result?.err || (isErrorObject(e) && !Object.hasOwn(e, 'payload'))) {
            throw new DevTrap(`${where} threw ${isErrorObject(e) ? `${e.name}: ${e.message}` : String(e)}`);
          }
          const payload =
            e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload')
              ? (e as { payload: unknown }).payload
              : e;
          let val: unknown;
          try {
            val = checkValue(result.err, payload, ifaces, `${where} threw`);
          } catch (bad) {
            throw new DevTrap((bad as Error).message);
          }
          // jco 1.35 throws a `result` export's error payload as is; the worker reports it as ERR.
          throw val;
        }
        if (poison) throw poison;
        if (
          value !== null &&
          typeof value === 'object' &&
          typeof (value as { then?: unknown }).then === 'function'
        ) {
          throw new DevTrap(`${where} returned a Promise; component exports are synchronous`);
        }
        try {
          if (result)
            return result.ok ? checkValue(result.ok, value, ifaces, `${where} returned`) : undefined;
          return f.result ? checkValue(f.result, value, ifaces, `${where} returned`) : undefined;
        } catch (bad) {
          throw new DevTrap((bad as Error).message);
        }
      };
    }
    out[qualified(name)] = fns;
    out[jsIface] = fns;
  }
  return out;
}
