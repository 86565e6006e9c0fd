/**
 * npm-style range matching for driver dependencies and `install name@range`: the syntax the manifest
 * validator accepts (host/src/trust/semver.ts isValidRange) — comparators, `^`, `~`, x-ranges, hyphen
 * ranges and `||`. Prerelease versions match only a comparator that names a prerelease of the same
 * major.minor.patch, as in npm.
 */
import { compareSemver, isValidRange, parseSemver, type SemVer } from '@cam-os/host/trust/semver.js';

interface Comparator {
  op: '<' | '<=' | '>' | '>=' | '=';
  v: SemVer;
}

function sv(major: number, minor: number, patch: number, prerelease: (string | number)[] = []): SemVer {
  return { major, minor, patch, prerelease, build: [] };
}

const isX = (s: string | undefined) => s === undefined || s === 'x' || s === 'X' || s === '*';

interface Partial {
  major?: number;
  minor?: number;
  patch?: number;
  pre: (string | number)[];
}

function parsePartial(text: string): Partial {
  const t = text.replace(/^v/, '');
  const m = /^([^.+-]+)(?:\.([^.+-]+)(?:\.([^.+-]+)(?:-([0-9A-Za-z.-]+))?)?)?(?:\+.*)?$/.exec(t);
  if (!m) throw new Error(`bad version '${text}'`);
  const num = (s: string | undefined) => (isX(s) ? undefined : Number(s));
  const major = num(m[1]);
  const minor = major === undefined ? undefined : num(m[2]);
  const patch = minor === undefined ? undefined : num(m[3]);
  return {
    major,
    minor,
    patch,
    pre: patch !== undefined && m[4] ? m[4].split('.').map((id) => (/^\d+$/.test(id) ? Number(id) : id)) : [],
  };
}

function lower(p: Partial): SemVer {
  return sv(p.major ?? 0, p.minor ?? 0, p.patch ?? 0, p.pre);
}

/** Exclusive upper bound of an x-range (`1.x` -> `<2.0.0-0`), or undefined for `*`. */
function xUpper(p: Partial): SemVer | undefined {
  if (p.major === undefined) return undefined;
  if (p.minor === undefined) return sv(p.major + 1, 0, 0, [0]);
  if (p.patch === undefined) return sv(p.major, p.minor + 1, 0, [0]);
  return undefined;
}

function comparatorsOf(token: string): Comparator[] {
  const m = /^(<=|>=|<|>|=|\^|~)?(.*)$/.exec(token)!;
  const op = m[1] ?? '';
  const p = parsePartial(m[2]!);
  const lo = lower(p);
  if (op === '^') {
    let hi: SemVer;
    if ((p.major ?? 0) > 0 || p.minor === undefined) hi = sv((p.major ?? 0) + 1, 0, 0, [0]);
    else if ((p.minor ?? 0) > 0 || p.patch === undefined) hi = sv(0, (p.minor ?? 0) + 1, 0, [0]);
    else hi = sv(0, 0, (p.patch ?? 0) + 1, [0]);
    if (p.major === undefined) return [];
    return [
      { op: '>=', v: lo },
      { op: '<', v: hi },
    ];
  }
  if (op === '~') {
    if (p.major === undefined) return [];
    const hi = p.minor === undefined ? sv(p.major + 1, 0, 0, [0]) : sv(p.major, p.minor + 1, 0, [0]);
    return [
      { op: '>=', v: lo },
      { op: '<', v: hi },
    ];
  }
  const partial = p.patch === undefined;
  if (op === '' || op === '=') {
    if (!partial) return [{ op: '=', v: lo }];
    const hi = xUpper(p);
    return hi
      ? [
          { op: '>=', v: lo },
          { op: '<', v: hi },
        ]
      : [];
  }
  if (op === '>') {
    if (!partial) return [{ op: '>', v: lo }];
    const hi = xUpper(p);
    return hi ? [{ op: '>=', v: hi }] : [{ op: '<', v: sv(0, 0, 0, [0]) }];
  }
  if (op === '<=') {
    if (!partial) return [{ op: '<=', v: lo }];
    const hi = xUpper(p);
    return hi ? [{ op: '<', v: hi }] : [];
  }
  return [{ op: op as Comparator['op'], v: lo }];
}

function test(c: Comparator, v: SemVer): boolean {
  const r = compareSemver(v, c.v);
  switch (c.op) {
    case '<':
      return r < 0;
    case '<=':
      return r <= 0;
    case '>':
      return r > 0;
    case '>=':
      return r >= 0;
    default:
      return r === 0;
  }
}

function samePatch(a: SemVer, b: SemVer): boolean {
  return a.major === b.major && a.minor === b.minor && a.patch === b.patch;
}

/** Whether `version` satisfies `range`. Throws on a malformed range or version. */
export function satisfies(version: string, range: string): boolean {
  const v = parseSemver(version);
  if (!v) throw new Error(`'${version}' is not a SemVer version`);
  if (!isValidRange(range)) throw new Error(`'${range}' is not a version range`);
  return range.split('||').some((alt) => {
    const part = alt.trim();
    let comps: Comparator[];
    const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(part);
    if (hyphen) {
      const hiP = parsePartial(hyphen[2]!);
      const hi = hiP.patch === undefined ? xUpper(hiP) : lower(hiP);
      comps = [
        { op: '>=', v: lower(parsePartial(hyphen[1]!)) },
        ...(hi ? [{ op: hiP.patch === undefined ? '<' : '<=', v: hi } as Comparator] : []),
      ];
    } else {
      comps = part.split(/\s+/).flatMap(comparatorsOf);
    }
    if (!comps.every((c) => test(c, v))) return false;
    if (v.prerelease.length === 0) return true;
    // A prerelease only matches when a comparator names a prerelease of the same version.
    return comps.some((c) => c.v.prerelease.length > 0 && c.v.prerelease[0] !== 0 && samePatch(c.v, v));
  });
}

/** Highest of `versions` that satisfies `range`, or undefined. */
export function maxSatisfying(versions: readonly string[], range: string): string | undefined {
  return sortVersions(versions.filter((v) => satisfies(v, range))).at(-1);
}

/** Ascending SemVer order. */
export function sortVersions(versions: readonly string[]): string[] {
  return [...versions].sort((a, b) => compareSemver(parseSemver(a)!, parseSemver(b)!));
}

export function compareVersions(a: string, b: string): number {
  return compareSemver(parseSemver(a)!, parseSemver(b)!);
}
