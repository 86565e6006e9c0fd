/**
 * The types of a WIT package as plain JSON, for the development path's value checks (see values.ts).
 *
 * jco and wasm-tools only expose interface *names* of a world to JS (componentWitMetadataForWorld), not
 * its types, so this reads the subset of WIT the `cam:kernel` package uses: interfaces with `use`, type
 * aliases, records, variants, enums, flags and functions; worlds that import and export whole interfaces
 * of the package. Anything outside that subset (resources, inline interfaces, async, streams) is refused
 * with the file position instead of being checked loosely.
 */

export type Prim =
  | 'bool'
  | 's8'
  | 's16'
  | 's32'
  | 's64'
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'f32'
  | 'f64'
  | 'char'
  | 'string';

export type WitType =
  | { k: 'prim'; name: Prim }
  | { k: 'list'; of: WitType }
  | { k: 'option'; of: WitType }
  | { k: 'result'; ok?: WitType; err?: WitType }
  | { k: 'tuple'; of: WitType[] }
  /** A named type of an interface (`iface` is the interface's name inside the package). */
  | { k: 'ref'; iface: string; name: string }
  | { k: 'record'; fields: Array<{ name: string; js: string; type: WitType }> }
  | { k: 'variant'; cases: Array<{ name: string; type?: WitType }> }
  | { k: 'enum'; cases: string[] }
  | { k: 'flags'; flags: Array<{ name: string; js: string }> };

export interface WitFunction {
  /** WIT name (kebab-case). */
  name: string;
  /** jco's JS name (lowerCamelCase). */
  js: string;
  params: Array<{ name: string; type: WitType }>;
  result?: WitType;
}

export interface WitInterface {
  name: string;
  types: Record<string, WitType>;
  functions: WitFunction[];
}

export interface WitWorld {
  name: string;
  imports: string[];
  exports: string[];
}

export interface WitPackage {
  /** `cam:kernel`. */
  name: string;
  version: string;
  interfaces: Record<string, WitInterface>;
  worlds: Record<string, WitWorld>;
}

export class WitParseError extends Error {
  override name = 'WitParseError';
}

const PRIMS = new Set<string>([
  'bool',
  's8',
  's16',
  's32',
  's64',
  'u8',
  'u16',
  'u32',
  'u64',
  'f32',
  'f64',
  'char',
  'string',
]);

/** kebab-case -> lowerCamelCase, as jco names functions and record fields. */
export function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

interface Token {
  t: string;
  line: number;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const lines = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.replace(/\/\/.*$/, '');
    const re =
      /(->|%?[a-zA-Z][a-zA-Z0-9-]*|[0-9]+(?:\.[0-9]+)*(?:[-+][a-zA-Z0-9.-]+)?|[{}()<>,;:.=@/*_])|(\S)/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m[2]) throw new WitParseError(`line ${i + 1}: unexpected character '${m[2]}'`);
      out.push({ t: m[1]!.startsWith('%') ? m[1]!.slice(1) : m[1]!, line: i + 1 });
    }
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Token[]) {}

  peek(offset = 0): string | undefined {
    return this.toks[this.i + offset]?.t;
  }
  next(): string {
    const tok = this.toks[this.i++];
    if (!tok) throw new WitParseError('unexpected end of WIT source');
    return tok.t;
  }
  fail(msg: string): never {
    const tok = this.toks[Math.min(this.i, this.toks.length - 1)];
    throw new WitParseError(`line ${tok?.line ?? 0}: ${msg}`);
  }
  expect(t: string): void {
    const got = this.next();
    if (got !== t) {
      this.i--;
      this.fail(`expected '${t}', found '${got}'`);
    }
  }
  ident(): string {
    const t = this.next();
    if (!/^[a-zA-Z][a-zA-Z0-9-]*$/.test(t)) {
      this.i--;
      this.fail(`expected a name, found '${t}'`);
    }
    return t;
  }
  done(): boolean {
    return this.i >= this.toks.length;
  }
}

function parseType(p: Parser, iface: string, local: Map<string, { iface: string; name: string }>): WitType {
  const t = p.ident();
  if (PRIMS.has(t)) return { k: 'prim', name: t as Prim };
  if (t === 'list' || t === 'option') {
    p.expect('<');
    const of = parseType(p, iface, local);
    p.expect('>');
    return { k: t, of };
  }
  if (t === 'tuple') {
    p.expect('<');
    const of: WitType[] = [parseType(p, iface, local)];
    while (p.peek() === ',') {
      p.next();
      of.push(parseType(p, iface, local));
    }
    p.expect('>');
    return { k: 'tuple', of };
  }
  if (t === 'result') {
    if (p.peek() !== '<') return { k: 'result' };
    p.next();
    const r: { k: 'result'; ok?: WitType; err?: WitType } = { k: 'result' };
    if (p.peek() === '_') p.next();
    else r.ok = parseType(p, iface, local);
    if (p.peek() === ',') {
      p.next();
      r.err = parseType(p, iface, local);
    }
    p.expect('>');
    return r;
  }
  if (['own', 'borrow', 'future', 'stream', 'error-context'].includes(t)) {
    p.fail(`'${t}' types are not supported by the development path's value checks`);
  }
  const used = local.get(t);
  return used ? { k: 'ref', iface: used.iface, name: used.name } : { k: 'ref', iface, name: t };
}

function parseInterface(p: Parser, name: string): WitInterface {
  const iface: WitInterface = { name, types: {}, functions: [] };
  const local = new Map<string, { iface: string; name: string }>();
  p.expect('{');
  while (p.peek() !== '}') {
    const kw = p.ident();
    if (kw === 'use') {
      const from = p.ident();
      if (p.peek() === ':' || p.peek() === '/') p.fail(`use of another package (${from}…) is not supported`);
      p.expect('.');
      p.expect('{');
      for (;;) {
        const item = p.ident();
        let as = item;
        if (p.peek() === 'as') {
          p.next();
          as = p.ident();
        }
        local.set(as, { iface: from, name: item });
        if (p.peek() === ',') {
          p.next();
          if (p.peek() === '}') break;
          continue;
        }
        break;
      }
      p.expect('}');
      p.expect(';');
    } else if (kw === 'type') {
      const tname = p.ident();
      p.expect('=');
      iface.types[tname] = parseType(p, name, local);
      p.expect(';');
    } else if (kw === 'record') {
      const tname = p.ident();
      const fields: Array<{ name: string; js: string; type: WitType }> = [];
      p.expect('{');
      while (p.peek() !== '}') {
        const f = p.ident();
        p.expect(':');
        fields.push({ name: f, js: camel(f), type: parseType(p, name, local) });
        if (p.peek() === ',') p.next();
      }
      p.expect('}');
      iface.types[tname] = { k: 'record', fields };
    } else if (kw === 'variant') {
      const tname = p.ident();
      const cases: Array<{ name: string; type?: WitType }> = [];
      p.expect('{');
      while (p.peek() !== '}') {
        const c = p.ident();
        if (p.peek() === '(') {
          p.next();
          cases.push({ name: c, type: parseType(p, name, local) });
          p.expect(')');
        } else cases.push({ name: c });
        if (p.peek() === ',') p.next();
      }
      p.expect('}');
      iface.types[tname] = { k: 'variant', cases };
    } else if (kw === 'enum' || kw === 'flags') {
      const tname = p.ident();
      const names: string[] = [];
      p.expect('{');
      while (p.peek() !== '}') {
        names.push(p.ident());
        if (p.peek() === ',') p.next();
      }
      p.expect('}');
      iface.types[tname] =
        kw === 'enum'
          ? { k: 'enum', cases: names }
          : { k: 'flags', flags: names.map((n) => ({ name: n, js: camel(n) })) };
    } else if (kw === 'resource') {
      p.fail(`resources (${p.peek()}) are not supported by the development path's value checks`);
    } else {
      // A function: `name: func(params) -> result;`
      p.expect(':');
      const f = p.ident();
      if (f === 'async') p.fail('async functions are not supported');
      if (f !== 'func') p.fail(`expected 'func' after '${kw}:', found '${f}'`);
      p.expect('(');
      const params: Array<{ name: string; type: WitType }> = [];
      while (p.peek() !== ')') {
        const pn = p.ident();
        p.expect(':');
        params.push({ name: pn, type: parseType(p, name, local) });
        if (p.peek() === ',') p.next();
      }
      p.expect(')');
      const fn: WitFunction = { name: kw, js: camel(kw), params };
      if (p.peek() === '->') {
        p.next();
        fn.result = parseType(p, name, local);
      }
      p.expect(';');
      iface.functions.push(fn);
    }
  }
  p.expect('}');
  return iface;
}

function parseWorld(p: Parser, name: string): WitWorld {
  const world: WitWorld = { name, imports: [], exports: [] };
  p.expect('{');
  while (p.peek() !== '}') {
    const kw = p.ident();
    if (kw !== 'import' && kw !== 'export' && kw !== 'include')
      p.fail(`unsupported world item '${kw}' in world ${name}`);
    if (kw === 'include') p.fail(`'include' in world ${name} is not supported`);
    const iface = p.ident();
    if (p.peek() === ':') p.fail(`inline or named world items (${iface}: …) are not supported`);
    p.expect(';');
    (kw === 'import' ? world.imports : world.exports).push(iface);
  }
  p.expect('}');
  return world;
}

/** Parse a whole package given as one source (see host/src/wit/source.ts). */
export function parseWitPackage(source: string): WitPackage {
  const p = new Parser(tokenize(source));
  let pkgName: string | undefined;
  let version: string | undefined;
  const interfaces: Record<string, WitInterface> = {};
  const worlds: Record<string, WitWorld> = {};
  while (!p.done()) {
    const kw = p.ident();
    if (kw === 'package') {
      const ns = p.ident();
      p.expect(':');
      const n = p.ident();
      p.expect('@');
      version = p.next();
      p.expect(';');
      pkgName = `${ns}:${n}`;
    } else if (kw === 'interface') {
      const n = p.ident();
      interfaces[n] = parseInterface(p, n);
    } else if (kw === 'world') {
      const n = p.ident();
      worlds[n] = parseWorld(p, n);
    } else {
      p.fail(`unexpected '${kw}' at the top level`);
    }
  }
  if (!pkgName || !version) throw new WitParseError('the WIT source declares no versioned package');
  const pkg: WitPackage = { name: pkgName, version, interfaces, worlds };
  checkReferences(pkg);
  return pkg;
}

function checkReferences(pkg: WitPackage): void {
  const visit = (t: WitType, where: string): void => {
    switch (t.k) {
      case 'ref':
        if (!pkg.interfaces[t.iface]?.types[t.name])
          throw new WitParseError(`${where}: unknown type '${t.name}' (from interface ${t.iface})`);
        return;
      case 'list':
      case 'option':
        visit(t.of, where);
        return;
      case 'tuple':
        for (const x of t.of) visit(x, where);
        return;
      case 'result':
        if (t.ok) visit(t.ok, where);
        if (t.err) visit(t.err, where);
        return;
      case 'record':
        for (const f of t.fields) visit(f.type, `${where}.${f.name}`);
        return;
      case 'variant':
        for (const c of t.cases) if (c.type) visit(c.type, `${where}.${c.name}`);
        return;
      default:
        return;
    }
  };
  for (const iface of Object.values(pkg.interfaces)) {
    for (const [n, t] of Object.entries(iface.types)) visit(t, `${iface.name}.${n}`);
    for (const f of iface.functions) {
      for (const prm of f.params) visit(prm.type, `${iface.name}#${f.name}(${prm.name})`);
      if (f.result) visit(f.result, `${iface.name}#${f.name} result`);
    }
  }
  for (const w of Object.values(pkg.worlds)) {
    for (const i of [...w.imports, ...w.exports]) {
      if (!pkg.interfaces[i]) throw new WitParseError(`world ${w.name} names unknown interface '${i}'`);
    }
  }
}

/** What a dev instance needs about one world: its interfaces (with everything they reference). */
export interface WorldTypes {
  package: string;
  version: string;
  world: string;
  /** Interface names imported / exported by the world (unqualified: `kv`). */
  imports: string[];
  exports: string[];
  interfaces: Record<string, WitInterface>;
}

export function worldTypes(pkg: WitPackage, world: string): WorldTypes {
  const w = pkg.worlds[world];
  if (!w) throw new WitParseError(`no world '${world}' in ${pkg.name}@${pkg.version}`);
  // Every interface of the package is small; keep them all so cross-interface refs resolve.
  return {
    package: pkg.name,
    version: pkg.version,
    world,
    imports: [...w.imports],
    exports: [...w.exports],
    interfaces: pkg.interfaces,
  };
}
