// The component manifest, schema v1: what a publisher signs about one WebAssembly component.
//
// The signed body is every field except `signatures`; its bytes are the RFC 8785 (JCS) canonical JSON, so a
// manifest can be re-serialized, re-indented or have its keys reordered without breaking its signature. The
// validator is strict: unknown fields are refused (a field the kernel ignores would still be "signed" and
// could mislead a human reviewer), and each message names the field it is about.

import { canonicalJson } from './canonical.js';
import { isBase64Strict } from './encoding.js';
import { isSemver, isValidRange } from './semver.js';

export const MANIFEST_SCHEMA = 'cam-os/manifest@1';
/** A manifest is small; anything bigger is refused before parsing. */
export const MAX_MANIFEST_BYTES = 64 * 1024;
export const MAX_IMPORTS = 256;
export const MAX_DEPENDENCIES = 256;
/** 65,536 pages of 64 KiB = the 4 GiB a 32-bit wasm memory can address. */
export const MAX_MEMORY_PAGES = 65_536;

export interface ManifestComponent {
  /** `sha256:` and 64 lowercase hex digits, over the exact component bytes. */
  readonly digest: string;
  /** Size of the component in bytes. */
  readonly size: number;
}

export interface ManifestCapabilities {
  /** WIT interfaces the component imports, with versions: `cam:kernel/kv@0.1.0`, `wasi:clocks/monotonic-clock@0.2.x`. */
  readonly imports: readonly string[];
  /** Upper bound for the component's linear memory, in 64 KiB pages. Absent means the component sets none. */
  readonly memoryMaxPages?: number;
  /** Per-call deadline the component asks for, in milliseconds. Absent means the kernel default. */
  readonly deadlineMs?: number;
  /** Concurrent calls the component can take. Absent means the kernel default. */
  readonly concurrency?: number;
}

export interface ManifestDependency {
  readonly name: string;
  /** npm-style range: `^1.2.0`, `>=1.0.0 <2.0.0`, `1.x`. */
  readonly range: string;
}

/** The signed part of a manifest. */
export interface ManifestBody {
  readonly schema: typeof MANIFEST_SCHEMA;
  /** kebab-case, at most 64 characters. */
  readonly name: string;
  /** SemVer 2.0.0. */
  readonly version: string;
  /** Key id of the publisher key that signs this manifest (32 lowercase hex digits). */
  readonly publisher: string;
  readonly component: ManifestComponent;
  /** WIT world the component targets, e.g. `cam:kernel/driver`. */
  readonly world: string;
  /** Version of the WIT package the component was built against, e.g. `0.1.0`. */
  readonly abiVersion: string;
  readonly capabilities: ManifestCapabilities;
  readonly dependencies?: readonly ManifestDependency[];
}

export interface ManifestSignatures {
  /** Must equal the body's `publisher`; kept here so a detached signature block says whose it is. */
  readonly keyId: string;
  /** ML-DSA-65 (FIPS 204) signature, standard base64. */
  readonly mlDsa65: string;
  /** Ed25519 (RFC 8032) signature, standard base64. */
  readonly ed25519: string;
}

export interface SignedManifest extends ManifestBody {
  readonly signatures: ManifestSignatures;
}

/** A manifest as read from disk: it may or may not carry signatures yet. */
export type Manifest = ManifestBody & { readonly signatures?: ManifestSignatures };

export interface ManifestIssue {
  /** Dotted path of the field, e.g. `manifest.capabilities.imports[2]`. */
  readonly field: string;
  readonly message: string;
}

export type ManifestValidation =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly issues: readonly ManifestIssue[] };

export class ManifestError extends Error {
  readonly issues: readonly ManifestIssue[];
  constructor(issues: readonly ManifestIssue[]) {
    super(`invalid manifest: ${formatIssues(issues)}`);
    this.name = 'ManifestError';
    this.issues = issues;
  }
}

export function formatIssues(issues: readonly ManifestIssue[]): string {
  return issues.map((i) => `${i.field}: ${i.message}`).join('; ');
}

const WORD = '[a-z][a-z0-9]*';
const KEBAB = `${WORD}(?:-${WORD})*`;
const NAME_RE = new RegExp(`^${KEBAB}$`);
const VERSION_PATTERN_RE = /^(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))?\.[x*]$/;
const INTERFACE_RE = new RegExp(`^(${KEBAB}:${KEBAB}/${KEBAB})@(\\S+)$`);
const WORLD_RE = new RegExp(`^(${KEBAB}:${KEBAB}/${KEBAB})(?:@(\\S+))?$`);
const KEY_ID_RE = /^[0-9a-f]{32}$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const MAX_NAME_LENGTH = 64;

export function isKebabName(text: string): boolean {
  return text.length <= MAX_NAME_LENGTH && NAME_RE.test(text);
}

export function isKeyId(text: string): boolean {
  return KEY_ID_RE.test(text);
}

/** `ns:pkg/interface@version`, where version is SemVer or a `1.2.x` / `1.x` pattern. */
export function isInterfaceName(text: string): boolean {
  const m = INTERFACE_RE.exec(text);
  return m !== null && (isSemver(m[2]!) || VERSION_PATTERN_RE.test(m[2]!));
}

export function isWorldName(text: string): boolean {
  const m = WORLD_RE.exec(text);
  return m !== null && (m[2] === undefined || isSemver(m[2]));
}

type Plain = Record<string, unknown>;

function isPlainObject(value: unknown): value is Plain {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `'${value.length > 80 ? `${value.slice(0, 80)}…` : value}'`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

class Checker {
  readonly issues: ManifestIssue[] = [];

  fail(field: string, message: string): void {
    this.issues.push({ field, message });
  }

  /** Refuses unknown fields and reports missing required ones; returns false if `value` is not an object. */
  object(
    field: string,
    value: unknown,
    required: readonly string[],
    optional: readonly string[],
  ): value is Plain {
    if (!isPlainObject(value)) {
      this.fail(field, `must be an object, got ${describe(value)}`);
      return false;
    }
    const allowed = [...required, ...optional];
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key))
        this.fail(`${field}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
    for (const key of required) {
      if (!Object.hasOwn(value, key) || value[key] === undefined) this.fail(`${field}.${key}`, 'is required');
    }
    return true;
  }

  string(field: string, value: unknown, test: (s: string) => boolean, expectation: string): value is string {
    if (typeof value !== 'string') {
      this.fail(field, `must be a string (${expectation}), got ${describe(value)}`);
      return false;
    }
    if (!test(value)) {
      this.fail(field, `${describe(value)} is not ${expectation}`);
      return false;
    }
    return true;
  }

  integer(field: string, value: unknown, min: number, max: number): void {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(field, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
    }
  }
}

const BODY_FIELDS = [
  'schema',
  'name',
  'version',
  'publisher',
  'component',
  'world',
  'abiVersion',
  'capabilities',
] as const;

/**
 * Validates a parsed manifest. `signatures` is optional here (an unsigned manifest is well formed; whether
 * it is acceptable is the verifier's decision).
 */
export function validateManifest(value: unknown): ManifestValidation {
  const c = new Checker();
  const root = 'manifest';
  if (!c.object(root, value, BODY_FIELDS, ['dependencies', 'signatures'])) {
    return { ok: false, issues: c.issues };
  }
  const m = value;

  if (m.schema !== undefined && m.schema !== MANIFEST_SCHEMA) {
    c.fail(`${root}.schema`, `must be '${MANIFEST_SCHEMA}', got ${describe(m.schema)}`);
  }
  if (m.name !== undefined) {
    c.string(`${root}.name`, m.name, isKebabName, 'a kebab-case name of at most 64 characters');
  }
  if (m.version !== undefined) c.string(`${root}.version`, m.version, isSemver, 'a SemVer 2.0.0 version');
  if (m.publisher !== undefined) {
    c.string(`${root}.publisher`, m.publisher, isKeyId, 'a key id (32 lowercase hex digits)');
  }
  if (m.component !== undefined && c.object(`${root}.component`, m.component, ['digest', 'size'], [])) {
    const comp = m.component;
    if (comp.digest !== undefined) {
      c.string(
        `${root}.component.digest`,
        comp.digest,
        (s) => DIGEST_RE.test(s),
        "'sha256:' followed by 64 lowercase hex digits",
      );
    }
    if (comp.size !== undefined) c.integer(`${root}.component.size`, comp.size, 1, Number.MAX_SAFE_INTEGER);
  }
  if (m.world !== undefined) {
    c.string(`${root}.world`, m.world, isWorldName, "a WIT world name like 'cam:kernel/driver'");
  }
  if (m.abiVersion !== undefined) {
    c.string(`${root}.abiVersion`, m.abiVersion, isSemver, "a WIT package version like '0.1.0'");
  }
  if (m.capabilities !== undefined) checkCapabilities(c, `${root}.capabilities`, m.capabilities);
  if (m.dependencies !== undefined) checkDependencies(c, `${root}.dependencies`, m.dependencies);
  if (m.signatures !== undefined) checkSignatures(c, `${root}.signatures`, m.signatures);

  if (c.issues.length > 0) return { ok: false, issues: c.issues };
  return { ok: true, manifest: value as unknown as Manifest };
}

function checkCapabilities(c: Checker, field: string, value: unknown): void {
  if (!c.object(field, value, ['imports'], ['memoryMaxPages', 'deadlineMs', 'concurrency'])) return;
  const caps = value;
  if (caps.imports !== undefined) {
    if (!Array.isArray(caps.imports)) {
      c.fail(`${field}.imports`, `must be an array of interface names, got ${describe(caps.imports)}`);
    } else if (caps.imports.length > MAX_IMPORTS) {
      c.fail(`${field}.imports`, `has ${caps.imports.length} entries, at most ${MAX_IMPORTS} are allowed`);
    } else {
      const seen = new Set<string>();
      caps.imports.forEach((entry: unknown, i: number) => {
        const f = `${field}.imports[${i}]`;
        if (
          c.string(f, entry, isInterfaceName, "an interface name with a version, like 'cam:kernel/kv@0.1.0'")
        ) {
          if (seen.has(entry)) c.fail(f, `${describe(entry)} is listed twice`);
          seen.add(entry);
        }
      });
    }
  }
  if (caps.memoryMaxPages !== undefined) {
    c.integer(`${field}.memoryMaxPages`, caps.memoryMaxPages, 1, MAX_MEMORY_PAGES);
  }
  if (caps.deadlineMs !== undefined) c.integer(`${field}.deadlineMs`, caps.deadlineMs, 1, 2 ** 31 - 1);
  if (caps.concurrency !== undefined) c.integer(`${field}.concurrency`, caps.concurrency, 1, 65_535);
}

function checkDependencies(c: Checker, field: string, value: unknown): void {
  if (!Array.isArray(value)) {
    c.fail(field, `must be an array of { name, range }, got ${describe(value)}`);
    return;
  }
  if (value.length > MAX_DEPENDENCIES) {
    c.fail(field, `has ${value.length} entries, at most ${MAX_DEPENDENCIES} are allowed`);
    return;
  }
  const seen = new Set<string>();
  value.forEach((dep: unknown, i: number) => {
    const f = `${field}[${i}]`;
    if (!c.object(f, dep, ['name', 'range'], [])) return;
    if (
      dep.name !== undefined &&
      c.string(`${f}.name`, dep.name, isKebabName, 'a kebab-case component name')
    ) {
      if (seen.has(dep.name)) c.fail(`${f}.name`, `${describe(dep.name)} is listed twice`);
      seen.add(dep.name);
    }
    if (dep.range !== undefined) {
      c.string(`${f}.range`, dep.range, isValidRange, "a version range like '^1.2.0' or '>=1.0.0 <2.0.0'");
    }
  });
}

// A keyId that differs from `publisher` is well formed: the verifier reports it as a bad signature.
function checkSignatures(c: Checker, field: string, value: unknown): void {
  if (!c.object(field, value, ['keyId', 'mlDsa65', 'ed25519'], [])) return;
  const sigs = value;
  if (sigs.keyId !== undefined) {
    c.string(`${field}.keyId`, sigs.keyId, isKeyId, 'a key id (32 lowercase hex digits)');
  }
  if (sigs.mlDsa65 !== undefined) {
    c.string(`${field}.mlDsa65`, sigs.mlDsa65, isBase64Strict, 'canonical standard base64');
  }
  if (sigs.ed25519 !== undefined) {
    c.string(`${field}.ed25519`, sigs.ed25519, isBase64Strict, 'canonical standard base64');
  }
}

/** Validates and throws ManifestError listing every issue. */
export function parseManifest(value: unknown): Manifest {
  const result = validateManifest(value);
  if (!result.ok) throw new ManifestError(result.issues);
  return result.manifest;
}

/**
 * Parses manifest JSON text or UTF-8 bytes. Size is capped before parsing; the result still needs
 * `validateManifest`.
 */
export function parseManifestJson(
  input: string | Uint8Array,
): { ok: true; value: unknown } | { ok: false; issue: ManifestIssue } {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > MAX_MANIFEST_BYTES) {
    return {
      ok: false,
      issue: { field: 'manifest', message: `is ${size} bytes, at most ${MAX_MANIFEST_BYTES} are allowed` },
    };
  }
  let text: string;
  try {
    text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    return { ok: false, issue: { field: 'manifest', message: 'is not valid UTF-8' } };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return {
      ok: false,
      issue: {
        field: 'manifest',
        message: `is not valid JSON (${err instanceof Error ? err.message : err})`,
      },
    };
  }
}

/** The signed body: a copy of the manifest without `signatures`. */
export function manifestBody(manifest: Manifest): ManifestBody {
  const { signatures: _signatures, ...body } = manifest;
  return body;
}

/**
 * RFC 8785 canonical JSON of the manifest body as UTF-8 bytes. `signatures`, if present, is left out: it is
 * never part of what is signed.
 */
export function canonicalBytes(manifest: Manifest): Uint8Array {
  const text = canonicalJson(manifestBody(manifest));
  return new TextEncoder().encode(text);
}
