/**
 * Canonical-ABI value checks for the development path: every value that crosses the boundary between a
 * dev instance and the kernel is checked against its WIT type, the way jco's (and componentize-js's)
 * lowering would refuse it in a real component — integer ranges, bigint for 64-bit integers, Uint8Array
 * for list<u8>, record fields, variant/enum tags, option/result shapes, tuple lengths.
 *
 * Representations are jco's: u64/s64 are bigint, list<u8> is a Uint8Array, option<T> is T or undefined
 * (`{ tag: 'some' | 'none' }` only when nested in another option), a nested result is
 * `{ tag: 'ok' | 'err', val }`, a variant is `{ tag: '<case>', val }`, an enum is its case name, record
 * fields and flags are lowerCamelCase. An error names the path to the offending value:
 * `export cam:kernel/handler#handle returned .items[3].score: expected f64, got string`.
 *
 * The checks are deliberately no looser than jco's lowering (in places stricter: jco truncates a
 * non-integer passed as u32, this refuses it), so a driver that passes in the dev path does not fail on
 * a value shape when it runs as a real component.
 */
import type { WitInterface, WitType } from './wit-model.js';

export class CanonicalValueError extends TypeError {
  override name = 'CanonicalValueError';
}

export type Interfaces = Record<string, WitInterface>;

const INT_RANGES: Record<string, [number, number]> = {
  s8: [-128, 127],
  u8: [0, 255],
  s16: [-32768, 32767],
  u16: [0, 65535],
  s32: [-2147483648, 2147483647],
  u32: [0, 4294967295],
};
const BIG_RANGES: Record<string, [bigint, bigint]> = {
  s64: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
};

/** Type name for messages: `string`, `Uint8Array`, `array`, `null`... */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return Object.prototype.toString.call(v).slice(8, -1);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    return Number.isInteger(v) ? `number ${v}` : `number ${v}`;
  }
  if (typeof v === 'bigint') return `bigint ${v}`;
  if (typeof v === 'string') return v.length > 40 ? 'string' : `string ${JSON.stringify(v)}`;
  return typeof v;
}

export function typeName(t: WitType, ifaces: Interfaces): string {
  switch (t.k) {
    case 'prim':
      return t.name;
    case 'list':
      return `list<${typeName(t.of, ifaces)}>`;
    case 'option':
      return `option<${typeName(t.of, ifaces)}>`;
    case 'tuple':
      return `tuple<${t.of.map((x) => typeName(x, ifaces)).join(', ')}>`;
    case 'result':
      return `result<${t.ok ? typeName(t.ok, ifaces) : '_'}, ${t.err ? typeName(t.err, ifaces) : '_'}>`;
    case 'ref':
      return t.name;
    default:
      return t.k;
  }
}

export function resolveType(t: WitType, ifaces: Interfaces): WitType {
  let cur = t;
  for (let depth = 0; cur.k === 'ref'; depth++) {
    if (depth > 32) throw new CanonicalValueError(`type alias cycle at ${cur.name}`);
    const next = ifaces[cur.iface]?.types[cur.name];
    if (!next) throw new CanonicalValueError(`unknown WIT type ${cur.iface}.${cur.name}`);
    cur = next;
  }
  return cur;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function isUint8Array(v: unknown): v is Uint8Array {
  return ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === '[object Uint8Array]';
}

/**
 * Check `value` against `type`; returns the value as jco would hand it to the other side (null options
 * become undefined, extra record fields are dropped). `where` prefixes errors, `path` locates the value.
 */
export function checkValue(
  type: WitType,
  value: unknown,
  ifaces: Interfaces,
  where: string,
  path = '',
): unknown {
  const t = resolveType(type, ifaces);
  const fail = (expected: string): never => {
    throw new CanonicalValueError(
      `${where}${path ? ` ${path}` : ''}: expected ${expected}, got ${describeValue(value)}`,
    );
  };
  switch (t.k) {
    case 'prim': {
      const n = t.name;
      if (n === 'bool') return typeof value === 'boolean' ? value : fail('bool');
      if (n === 'string') return typeof value === 'string' ? value : fail('string');
      if (n === 'char') {
        if (typeof value !== 'string' || [...value].length !== 1) return fail('char (one Unicode scalar)');
        const cp = value.codePointAt(0)!;
        return cp >= 0xd800 && cp <= 0xdfff ? fail('char (not a surrogate)') : value;
      }
      if (n === 'f32' || n === 'f64') return typeof value === 'number' ? value : fail(n);
      const big = BIG_RANGES[n];
      if (big) {
        if (typeof value !== 'bigint') return fail(`${n} (a bigint)`);
        return value < big[0] || value > big[1] ? fail(`${n} in ${big[0]}..${big[1]}`) : value;
      }
      const [lo, hi] = INT_RANGES[n]!;
      if (typeof value !== 'number' || !Number.isInteger(value)) return fail(`${n} (an integer)`);
      return value < lo || value > hi ? fail(`${n} in ${lo}..${hi}`) : value;
    }
    case 'list': {
      const of = resolveType(t.of, ifaces);
      if (of.k === 'prim' && of.name === 'u8')
        return isUint8Array(value) ? value : fail('list<u8> (a Uint8Array)');
      if (!Array.isArray(value)) return fail(typeName(t, ifaces));
      return value.map((x, i) => checkValue(t.of, x, ifaces, where, `${path}[${i}]`));
    }
    case 'option': {
      const inner = resolveType(t.of, ifaces);
      if (inner.k === 'option') {
        // Nested options are explicit variants in jco.
        if (value === undefined || value === null) return undefined;
        if (!isPlainObject(value) || (value.tag !== 'some' && value.tag !== 'none'))
          return fail(`{ tag: 'some' | 'none' } for ${typeName(t, ifaces)}`);
        return value.tag === 'none'
          ? { tag: 'none' }
          : { tag: 'some', val: checkValue(t.of, value.val, ifaces, where, `${path}.val`) };
      }
      if (value === undefined || value === null) return undefined;
      return checkValue(t.of, value, ifaces, where, path);
    }
    case 'result': {
      if (!isPlainObject(value) || (value.tag !== 'ok' && value.tag !== 'err'))
        return fail(`{ tag: 'ok' | 'err', val } for ${typeName(t, ifaces)}`);
      const sub = value.tag === 'ok' ? t.ok : t.err;
      return sub
        ? { tag: value.tag, val: checkValue(sub, value.val, ifaces, where, `${path}.val`) }
        : { tag: value.tag, val: undefined };
    }
    case 'tuple': {
      if (!Array.isArray(value) || value.length !== t.of.length)
        return fail(`${typeName(t, ifaces)} (an array of ${t.of.length})`);
      return t.of.map((x, i) => checkValue(x, value[i], ifaces, where, `${path}[${i}]`));
    }
    case 'record': {
      const name = type.k === 'ref' ? `record ${type.name}` : 'record';
      if (!isPlainObject(value)) return fail(name);
      const out: Record<string, unknown> = {};
      for (const f of t.fields) {
        const fv = value[f.js];
        const ft = resolveType(f.type, ifaces);
        if (fv === undefined && ft.k !== 'option') {
          throw new CanonicalValueError(
            `${where} ${path}.${f.js}: missing field ${f.js} (${typeName(f.type, ifaces)}) of ${name}`,
          );
        }
        out[f.js] = checkValue(f.type, fv, ifaces, where, `${path}.${f.js}`);
      }
      return out;
    }
    case 'variant': {
      const name = type.k === 'ref' ? `variant ${type.name}` : 'variant';
      const tags = t.cases.map((c) => c.name);
      if (!isPlainObject(value) || typeof value.tag !== 'string')
        return fail(`${name} { tag: ${tags.map((x) => `'${x}'`).join(' | ')}, val }`);
      const c = t.cases.find((x) => x.name === value.tag);
      if (!c) return fail(`${name} with tag ${tags.map((x) => `'${x}'`).join(' | ')}`);
      return c.type
        ? { tag: c.name, val: checkValue(c.type, value.val, ifaces, where, `${path}<${c.name}>`) }
        : { tag: c.name };
    }
    case 'enum': {
      if (typeof value !== 'string' || !t.cases.includes(value)) {
        const name = type.k === 'ref' ? `enum ${type.name}` : 'enum';
        return fail(`${name} (one of ${t.cases.map((x) => `'${x}'`).join(', ')})`);
      }
      return value;
    }
    case 'flags': {
      if (!isPlainObject(value)) return fail('flags (an object of booleans)');
      const out: Record<string, boolean> = {};
      for (const f of t.flags) {
        const fv = value[f.js];
        if (fv !== undefined && typeof fv !== 'boolean')
          throw new CanonicalValueError(`${where} ${path}.${f.js}: expected bool, got ${describeValue(fv)}`);
        out[f.js] = fv === true;
      }
      return out;
    }
  }
  return fail('a known WIT type');
}
