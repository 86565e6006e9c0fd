// Semantic Versioning 2.0.0: parsing and precedence, plus the syntax of npm-style ranges used by manifest
// dependencies. Kept local (a few dozen lines) so the trust path has no dependency it does not declare.

export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly prerelease: readonly (string | number)[];
  readonly build: readonly string[];
}

// The regular expression published with the specification (semver.org), anchored.
const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

const MAX_VERSION_LENGTH = 256;

export function parseSemver(text: string): SemVer | undefined {
  if (text.length > MAX_VERSION_LENGTH) return undefined;
  const m = SEMVER_RE.exec(text);
  if (!m) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor) || !Number.isSafeInteger(patch)) {
    return undefined;
  }
  const prerelease = m[4] ? m[4].split('.').map((id) => (/^\d+$/.test(id) ? Number(id) : id)) : [];
  if (prerelease.some((id) => typeof id === 'number' && !Number.isSafeInteger(id))) return undefined;
  return { major, minor, patch, prerelease, build: m[5] ? m[5].split('.') : [] };
}

export function isSemver(text: string): boolean {
  return parseSemver(text) !== undefined;
}

/** Precedence per SemVer §11: build metadata is ignored; a pre-release sorts before its release. */
export function compareSemver(a: SemVer, b: SemVer): -1 | 0 | 1 {
  for (const key of ['major', 'minor', 'patch'] as const) {
    if (a[key] !== b[key]) return a[key] < b[key] ? -1 : 1;
  }
  const pa = a.prerelease;
  const pb = b.prerelease;
  if (pa.length === 0 || pb.length === 0) {
    if (pa.length === pb.length) return 0;
    return pa.length === 0 ? 1 : -1;
  }
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x < y ? -1 : 1;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

const XR = '(?:\\*|x|X|0|[1-9]\\d*)';
const PRE = '(?:-[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?';
const PARTIAL = `${XR}(?:\\.${XR}(?:\\.${XR}${PRE})?)?`;
const COMPARATOR_RE = new RegExp(`^(?:<=|>=|<|>|=|\\^|~)?v?${PARTIAL}$`);
const PARTIAL_RE = new RegExp(`^v?${PARTIAL}$`);

/**
 * Syntax check for an npm-style range: `1.2.3`, `^1.2.0`, `~0.3`, `>=1.0.0 <2.0.0`, `1.x`, `*`,
 * `1.0.0 - 1.4.0`, alternatives joined by `||`. Resolution is the package installer's job, not the verifier's.
 */
export function isValidRange(text: string): boolean {
  if (text.length === 0 || text.length > MAX_VERSION_LENGTH) return false;
  for (const alternative of text.split('||')) {
    const part = alternative.trim();
    if (part === '') return false;
    const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(part);
    if (hyphen) {
      if (!PARTIAL_RE.test(hyphen[1]!) || !PARTIAL_RE.test(hyphen[2]!)) return false;
      continue;
    }
    for (const comparator of part.split(/\s+/)) {
      if (!COMPARATOR_RE.test(comparator)) return false;
    }
  }
  return true;
}
