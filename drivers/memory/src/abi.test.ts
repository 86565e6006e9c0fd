/**
 * The hand-written canonical-ABI glue of the AssemblyScript component, below jco: its core module
 * instantiated directly, with the host side played by this test. jco never sends malformed values, so
 * this is where the guest's own checks are exercised: every pointer, length, UTF-8 string and
 * discriminant that comes from the host is checked, and a bad one traps (the kernel then discards the
 * instance) instead of being used. Also: the call arena is reset by every post-return, so memory does not
 * grow with the number of calls.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { assemblyScriptCore } from '../../../sdk/src/build/assemblyscript.js';

const ENTRY = fileURLToPath(new URL('../assembly/index.ts', import.meta.url));
const MEM = 'cam:kernel/memory@0.1.0#';
const LIFE = 'cam:kernel/lifecycle@0.1.0#';
const te = new TextEncoder();
const td = new TextDecoder();

let core: WebAssembly.Module;

beforeAll(async () => {
  core = new WebAssembly.Module((await assemblyScriptCore(ENTRY, '0.1.0')) as Uint8Array<ArrayBuffer>);
}, 120_000);

type Fn = (...args: unknown[]) => number;

/** An instance with a host over an in-memory store; `kv` may override how a kv import answers. */
function instance(kv: Partial<Record<'get' | 'get-many' | 'batch', (...args: number[]) => void>> = {}) {
  const store = new Map<string, Uint8Array>();
  let exports!: Record<string, Fn> & { memory: WebAssembly.Memory };
  const view = () => new DataView(exports.memory.buffer);
  const bytes = () => new Uint8Array(exports.memory.buffer);
  const text = (p: number, n: number) => td.decode(bytes().subarray(p, p + n));
  const lower = (b: Uint8Array) => {
    const p = exports.cabi_realloc!(0, 0, 1, b.length);
    bytes().set(b, p);
    return p;
  };
  const imports = {
    'cam:kernel/kv@0.1.0': {
      get:
        kv.get ??
        ((pp: number, pl: number, kp: number, kl: number, ret: number) => {
          const v = store.get(`${text(pp, pl)}|${text(kp, kl)}`);
          const p = v ? lower(v) : 0;
          view().setUint8(ret, 0);
          view().setUint8(ret + 4, v ? 1 : 0);
          view().setUint32(ret + 8, p, true);
          view().setUint32(ret + 12, v?.length ?? 0, true);
        }),
      'get-many':
        kv['get-many'] ??
        ((pp: number, pl: number, kp: number, n: number, ret: number) => {
          const part = text(pp, pl);
          const keys = Array.from({ length: n }, (_, i) =>
            text(view().getUint32(kp + 8 * i, true), view().getUint32(kp + 8 * i + 4, true)),
          );
          const list = exports.cabi_realloc!(0, 0, 4, 12 * n);
          keys.forEach((k, i) => {
            const v = store.get(`${part}|${k}`);
            const p = v ? lower(v) : 0;
            view().setUint8(list + 12 * i, v ? 1 : 0);
            view().setUint32(list + 12 * i + 4, p, true);
            view().setUint32(list + 12 * i + 8, v?.length ?? 0, true);
          });
          view().setUint8(ret, 0);
          view().setUint32(ret + 4, list, true);
          view().setUint32(ret + 8, n, true);
        }),
      batch:
        kv.batch ??
        ((pp: number, pl: number, op: number, n: number, ret: number) => {
          const part = text(pp, pl);
          for (let i = 0; i < n; i++) {
            const e = op + 20 * i;
            const key = `${part}|${text(view().getUint32(e + 4, true), view().getUint32(e + 8, true))}`;
            if (view().getUint8(e) === 0) {
              const p = view().getUint32(e + 12, true);
              store.set(key, bytes().slice(p, p + view().getUint32(e + 16, true)));
            } else store.delete(key);
          }
          view().setUint8(ret, 0);
        }),
      scan: (..._args: number[]) => {
        throw new Error('scan is not used by these tests');
      },
    },
    'cam:kernel/log@0.1.0': { log: () => {} },
    'cam:kernel/clock@0.1.0': { 'now-ms': () => 1_800_000_000_000n },
    'cam:kernel/digest@0.1.0': {
      sha256: (p: number, n: number, ret: number) => {
        const d = lower(
          createHash('sha256')
            .update(bytes().subarray(p, p + n))
            .digest(),
        );
        view().setUint32(ret, d, true);
        view().setUint32(ret + 4, 32, true);
      },
    },
  };
  exports = new WebAssembly.Instance(core, imports).exports as typeof exports;
  const str = (s: string | Uint8Array) => {
    const b = typeof s === 'string' ? te.encode(s) : s;
    return [lower(b), b.length] as const;
  };
  const fn = (name: string) => exports[name]!;
  return {
    exports,
    store,
    view,
    str,
    lower,
    text,
    /** A full write: arguments lowered, the export called, result checked and post-returned. */
    write(ns: string | Uint8Array, key: string | Uint8Array, data: Uint8Array) {
      const ret = fn(`${MEM}write`)(...str(ns), ...str(key), ...str(data), 0, 0, ...str('tester'));
      const ok = view().getUint8(ret) === 0;
      const message = ok ? '' : text(view().getUint32(ret + 12, true), view().getUint32(ret + 16, true));
      fn(`cabi_post_${MEM}write`)(ret);
      return { ok, message };
    },
    read(ns: string, key: string, discriminant = 0, version = 0n) {
      const ret = fn(`${MEM}read`)(...str(ns), ...str(key), discriminant, version);
      const ok = view().getUint8(ret) === 0;
      const data = ok
        ? bytes().slice(
            view().getUint32(ret + 24, true),
            view().getUint32(ret + 24, true) + view().getUint32(ret + 28, true),
          )
        : undefined;
      fn(`cabi_post_${MEM}read`)(ret);
      return { ok, data };
    },
    call: fn,
  };
}

const trap = (f: () => unknown) => expect(f).toThrow(WebAssembly.RuntimeError);

describe('values from the host', () => {
  it('reads and writes through the glue', () => {
    const g = instance();
    expect(g.write('ns', 'k', te.encode('hello'))).toEqual({ ok: true, message: '' });
    expect(td.decode(g.read('ns', 'k').data)).toBe('hello');
    expect(g.write('bad/ns', 'k', te.encode('x')).message).toBe(
      "namespace 'bad/ns' may only contain A-Z a-z 0-9 . _ -",
    );
  });

  it('traps on malformed UTF-8 in a string argument', () => {
    for (const bad of [
      [0xff],
      [0xc0, 0x80], // overlong NUL
      [0xe0, 0x80, 0x80], // overlong
      [0xed, 0xa0, 0x80], // surrogate
      [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
      [0x61, 0xe2, 0x82], // truncated
    ]) {
      const g = instance();
      trap(() => g.write('ns', new Uint8Array(bad), te.encode('x')));
    }
    const g = instance();
    expect(g.write('ns', new Uint8Array([0xe2, 0x82, 0xac]), te.encode('x')).ok).toBe(true);
  });

  it('traps on pointers and lengths outside memory, misaligned lists and bad discriminants', () => {
    let g = instance();
    const key = g.str('k');
    const end = g.exports.memory.buffer.byteLength;
    trap(() => g.call(`${MEM}read`)(end - 2, 8, ...key, 0, 0n));
    g = instance();
    trap(() => g.call(`${MEM}read`)(0xfffffff0, 0x20, ...g.str('k'), 0, 0n));
    g = instance();
    trap(() => g.call(`${MEM}read`)(...g.str('ns'), ...g.str('k'), 2, 0n));
    g = instance();
    const [mp] = g.str(new Uint8Array(40));
    trap(() => g.call(`${MEM}write`)(...g.str('ns'), ...g.str('k'), ...g.str('x'), mp + 2, 1, ...g.str('a')));
    g = instance();
    trap(() => g.call(`${MEM}write-many`)(8, 0x10000000));
    g = instance();
    trap(() => g.call(`${LIFE}init`)(4, 0x0fffffff));
  });

  it('traps on a malformed result from an import, and passes a kv error on as its own', () => {
    const badDiscriminant = instance({
      get: (_pp, _pl, _kp, _kl, ret) => badDiscriminant.view().setUint8(ret, 2),
    });
    trap(() => badDiscriminant.write('ns', 'k', te.encode('x')));
    const badCase = instance({
      get: (_pp, _pl, _kp, _kl, ret) => {
        badCase.view().setUint8(ret, 1);
        badCase.view().setUint8(ret + 4, 10);
      },
    });
    trap(() => badCase.write('ns', 'k', te.encode('x')));
    const badOption = instance({
      get: (_pp, _pl, _kp, _kl, ret) => {
        badOption.view().setUint8(ret, 0);
        badOption.view().setUint8(ret + 4, 7);
      },
    });
    trap(() => badOption.write('ns', 'k', te.encode('x')));

    let down = true;
    const flaky: ReturnType<typeof instance> = instance({
      batch: (_pp, _pl, _op, _n, ret) => {
        flaky.view().setUint8(ret, down ? 1 : 0);
        if (!down) return;
        const [p, n] = flaky.str('backend down');
        flaky.view().setUint8(ret + 4, 7); // unavailable
        flaky.view().setUint32(ret + 8, p, true);
        flaky.view().setUint32(ret + 12, n, true);
      },
    });
    const ret = flaky.call(`${MEM}write`)(
      ...flaky.str('ns'),
      ...flaky.str('k'),
      ...flaky.str('x'),
      0,
      0,
      ...flaky.str('a'),
    );
    const v = flaky.view();
    expect([v.getUint8(ret), v.getUint8(ret + 8)]).toEqual([1, 7]);
    expect(flaky.text(v.getUint32(ret + 12, true), v.getUint32(ret + 16, true))).toBe('backend down');
    flaky.call(`cabi_post_${MEM}write`)(ret);
    const health = flaky.call(`${LIFE}health`)();
    expect(flaky.view().getUint8(health)).toBe(1); // degraded
    expect(
      flaky.text(flaky.view().getUint32(health + 4, true), flaky.view().getUint32(health + 8, true)),
    ).toBe('storage: kv batch: unavailable (backend down)');
    flaky.call(`cabi_post_${LIFE}health`)(health);
    down = false;
    expect(flaky.write('ns', 'k', te.encode('x')).ok).toBe(true);
    const after = flaky.call(`${LIFE}health`)();
    expect(flaky.view().getUint8(after)).toBe(0); // serving again
    flaky.call(`cabi_post_${LIFE}health`)(after);
  });
});

describe('memory', () => {
  it('does not grow with the number of calls: each post-return frees the call', () => {
    const g = instance();
    const value = new Uint8Array(4096).fill(1);
    for (let i = 0; i < 100; i++) g.write('ns', `k${i}`, value);
    const pages = g.exports.memory.buffer.byteLength;
    for (let i = 0; i < 20_000; i++) {
      g.write('ns', `k${i % 100}`, value);
      expect(g.read('ns', `k${i % 100}`).ok).toBe(true);
    }
    expect(g.exports.memory.buffer.byteLength).toBe(pages);
  });

  it('frees a large value after the call that carried it', () => {
    const g = instance();
    const big = new Uint8Array(4 * 1024 * 1024).fill(2);
    // The allocator (TLSF) may take a second block before it reuses freed ones of the same size class.
    for (let i = 0; i < 3; i++) g.write('ns', 'big', big);
    const pages = g.exports.memory.buffer.byteLength;
    for (let i = 0; i < 20; i++) {
      expect(g.write('ns', 'big', big).ok).toBe(true);
      expect(g.read('ns', 'big').data!.length).toBe(big.length);
    }
    expect(g.exports.memory.buffer.byteLength).toBe(pages);
  });
});
