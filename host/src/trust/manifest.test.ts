import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  isInterfaceName,
  MAX_MANIFEST_BYTES,
  type ManifestBody,
  ManifestError,
  parseManifest,
  parseManifestJson,
  validateManifest,
} from './manifest.js';
import { compareSemver, isValidRange, parseSemver } from './semver.js';
import { fakeComponentBytes, testManifestBody } from './testing.js';

const PUBLISHER = '0123456789abcdef0123456789abcdef';
const body = testManifestBody(PUBLISHER, fakeComponentBytes(64));

function issuesOf(value: unknown): { field: string; message: string }[] {
  const r = validateManifest(value);
  if (r.ok) throw new Error('expected the manifest to be refused');
  return [...r.issues];
}

function withField(path: string[], value: unknown): unknown {
  const copy = structuredClone(body) as unknown as Record<string, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  if (value === undefined) delete node[path.at(-1)!];
  else node[path.at(-1)!] = value;
  return copy;
}

describe('validateManifest', () => {
  it('accepts the full schema, with and without optional fields', () => {
    expect(validateManifest(body).ok).toBe(true);
    const minimal: ManifestBody = {
      schema: 'cam-os/manifest@1',
      name: 'a',
      version: '0.0.1',
      publisher: PUBLISHER,
      component: { digest: `sha256:${'a'.repeat(64)}`, size: 1 },
      world: 'cam:kernel/driver@0.1.0',
      abiVersion: '0.1.0',
      capabilities: { imports: [] },
    };
    expect(validateManifest(minimal).ok).toBe(true);
    const signed = {
      ...minimal,
      signatures: { keyId: PUBLISHER, mlDsa65: 'AAAA', ed25519: 'AA==' },
    };
    expect(validateManifest(signed).ok).toBe(true);
  });

  it('refuses unknown fields at every level, naming them', () => {
    expect(issuesOf({ ...body, extra: 1 })).toEqual([
      { field: 'manifest.extra', message: expect.stringContaining('unknown field') },
    ]);
    expect(issuesOf(withField(['component', 'sha'], 'x'))[0]!.field).toBe('manifest.component.sha');
    expect(issuesOf(withField(['capabilities', 'network'], true))[0]!.field).toBe(
      'manifest.capabilities.network',
    );
    expect(issuesOf({ ...body, dependencies: [{ name: 'a', range: '1.x', optional: true }] })[0]!.field).toBe(
      'manifest.dependencies[0].optional',
    );
    expect(
      issuesOf({ ...body, signatures: { keyId: PUBLISHER, mlDsa65: 'AAAA', ed25519: 'AAAA', x509: '' } })[0]!
        .field,
    ).toBe('manifest.signatures.x509');
    // A key spelled __proto__ in JSON is an own property after JSON.parse; it is refused like any other.
    expect(issuesOf(JSON.parse(`{"__proto__":{},${JSON.stringify(body).slice(1)}`))[0]!.field).toBe(
      'manifest.__proto__',
    );
  });

  it('reports each missing required field', () => {
    const fields = issuesOf({}).map((i) => i.field);
    expect(fields).toEqual([
      'manifest.schema',
      'manifest.name',
      'manifest.version',
      'manifest.publisher',
      'manifest.component',
      'manifest.world',
      'manifest.abiVersion',
      'manifest.capabilities',
    ]);
    expect(issuesOf(withField(['capabilities', 'imports'], undefined))[0]!.field).toBe(
      'manifest.capabilities.imports',
    );
  });

  const bad: [string, string[], unknown, RegExp][] = [
    ['schema', ['schema'], 'cam-os/manifest@2', /must be 'cam-os\/manifest@1'/],
    ['name: not kebab', ['name'], 'Echo_Driver', /kebab-case/],
    ['name: trailing dash', ['name'], 'echo-', /kebab-case/],
    ['name: too long', ['name'], 'a'.repeat(65), /at most 64/],
    ['name: not a string', ['name'], 42, /must be a string/],
    ['version: not semver', ['version'], '1.2', /SemVer/],
    ['version: leading zero', ['version'], '01.2.3', /SemVer/],
    ['publisher: uppercase hex', ['publisher'], PUBLISHER.toUpperCase(), /key id/],
    ['publisher: short', ['publisher'], 'abcd', /key id/],
    ['digest: other algorithm', ['component', 'digest'], `sha512:${'a'.repeat(64)}`, /sha256/],
    ['digest: uppercase', ['component', 'digest'], `sha256:${'A'.repeat(64)}`, /sha256/],
    ['size: zero', ['component', 'size'], 0, /integer from 1/],
    ['size: fraction', ['component', 'size'], 1.5, /integer/],
    ['size: string', ['component', 'size'], '100', /integer/],
    ['world: no package', ['world'], 'driver', /WIT world/],
    ['abiVersion', ['abiVersion'], 'v0.1', /WIT package version/],
    ['imports: not an array', ['capabilities', 'imports'], 'cam:kernel/kv@0.1.0', /array/],
    ['memoryMaxPages: too many', ['capabilities', 'memoryMaxPages'], 65_537, /1 to 65536/],
    ['deadlineMs: zero', ['capabilities', 'deadlineMs'], 0, /integer from 1/],
    ['concurrency: negative', ['capabilities', 'concurrency'], -1, /integer from 1/],
  ];
  for (const [label, path, value, message] of bad) {
    it(`refuses ${label}`, () => {
      const issues = issuesOf(withField(path, value));
      expect(issues).toHaveLength(1);
      expect(issues[0]!.field).toBe(`manifest.${path.join('.')}`);
      expect(issues[0]!.message).toMatch(message);
    });
  }

  it('checks each import and names its index', () => {
    const issues = issuesOf(
      withField(
        ['capabilities', 'imports'],
        ['cam:kernel/kv@0.1.0', 'wasi:sockets/tcp', 'cam:kernel/kv@0.1.0'],
      ),
    );
    expect(issues.map((i) => i.field)).toEqual([
      'manifest.capabilities.imports[1]',
      'manifest.capabilities.imports[2]',
    ]);
    expect(issues[0]!.message).toMatch(/interface name with a version/);
    expect(issues[1]!.message).toMatch(/listed twice/);
  });

  it('checks dependencies', () => {
    const issues = issuesOf({
      ...body,
      dependencies: [
        { name: 'kv', range: '^1.0.0' },
        { name: 'kv', range: '1.x' },
        { name: 'clock', range: 'latest' },
      ],
    });
    expect(issues.map((i) => i.field)).toEqual([
      'manifest.dependencies[1].name',
      'manifest.dependencies[2].range',
    ]);
  });

  it('checks signature encoding (canonical base64 only)', () => {
    const sig = (mlDsa65: string) => ({
      ...body,
      signatures: { keyId: PUBLISHER, mlDsa65, ed25519: 'AAAA' },
    });
    expect(issuesOf(sig('AAA'))[0]!.field).toBe('manifest.signatures.mlDsa65');
    expect(issuesOf(sig('AA AA'))[0]!.field).toBe('manifest.signatures.mlDsa65');
    expect(issuesOf(sig('AB=='))[0]!.message).toMatch(/canonical/); // non-zero trailing bits
    expect(issuesOf(sig('AA-_'))[0]!.message).toMatch(/canonical/); // base64url alphabet
  });

  it('refuses non-objects and class instances', () => {
    expect(issuesOf(null)[0]!.message).toMatch(/must be an object, got null/);
    expect(issuesOf([])[0]!.message).toMatch(/got an array/);
    expect(issuesOf(new Map())[0]!.message).toMatch(/must be an object/);
  });

  it('parseManifest throws a ManifestError listing every issue', () => {
    try {
      parseManifest({ ...body, name: 'X', version: 'y' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ManifestError);
      expect((err as ManifestError).issues).toHaveLength(2);
      expect((err as Error).message).toMatch(/manifest\.name: .*; manifest\.version: /);
    }
  });
});

describe('parseManifestJson', () => {
  it('parses text and bytes; refuses bad JSON, bad UTF-8 and oversized input', () => {
    expect(parseManifestJson(JSON.stringify(body))).toEqual({ ok: true, value: body });
    expect(parseManifestJson(new TextEncoder().encode(JSON.stringify(body)))).toEqual({
      ok: true,
      value: body,
    });
    const notJson = parseManifestJson('{"name":');
    expect(notJson.ok === false && notJson.issue.message).toMatch(/not valid JSON/);
    const notUtf8 = parseManifestJson(new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(notUtf8.ok === false && notUtf8.issue.message).toMatch(/UTF-8/);
    const big = parseManifestJson(' '.repeat(MAX_MANIFEST_BYTES + 1));
    expect(big.ok === false && big.issue.message).toMatch(/at most 65536 are allowed/);
  });
});

describe('canonicalBytes (RFC 8785)', () => {
  it('sorts keys, drops whitespace, and leaves signatures out', () => {
    const reversed = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reversed)
        : typeof v === 'object' && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reversed(x)]),
            )
          : v;
    const reordered = reversed(body) as ManifestBody;
    expect(Object.keys(reordered)[0]).toBe('dependencies');
    const text = new TextDecoder().decode(canonicalBytes(body));
    expect(new TextDecoder().decode(canonicalBytes(reordered))).toBe(text);
    expect(text.startsWith('{"abiVersion":"0.1.0","capabilities":{"concurrency":4,')).toBe(true);
    expect(text).not.toMatch(/\s/);
    const signed = { ...body, signatures: { keyId: PUBLISHER, mlDsa65: 'AAAA', ed25519: 'AAAA' } };
    expect(new TextDecoder().decode(canonicalBytes(signed))).toBe(text);
  });

  it('changes when any signed value changes', () => {
    const a = canonicalBytes(body);
    const b = canonicalBytes({ ...body, capabilities: { ...body.capabilities, deadlineMs: 51 } });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });
});

describe('names and versions', () => {
  it('interface names need a namespace, package, interface and version', () => {
    expect(isInterfaceName('cam:kernel/kv@0.1.0')).toBe(true);
    expect(isInterfaceName('wasi:clocks/monotonic-clock@0.2.x')).toBe(true);
    expect(isInterfaceName('wasi:io/streams@0.2.0-rc-2023-11-10')).toBe(true);
    expect(isInterfaceName('wasi:io/streams@0.x')).toBe(true);
    expect(isInterfaceName('wasi:io/streams')).toBe(false);
    expect(isInterfaceName('wasi:io@0.2.0')).toBe(false);
    expect(isInterfaceName('WASI:io/streams@0.2.0')).toBe(false);
    expect(isInterfaceName('wasi:io/streams@latest')).toBe(false);
  });

  it('orders versions by SemVer precedence', () => {
    const order = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.1.0',
      '2.0.0',
    ];
    for (let i = 0; i + 1 < order.length; i++) {
      expect(compareSemver(parseSemver(order[i]!)!, parseSemver(order[i + 1]!)!)).toBe(-1);
      expect(compareSemver(parseSemver(order[i + 1]!)!, parseSemver(order[i]!)!)).toBe(1);
    }
    expect(compareSemver(parseSemver('1.0.0+build.1')!, parseSemver('1.0.0+build.2')!)).toBe(0);
    expect(parseSemver('1.0.0-01')).toBeUndefined();
    expect(parseSemver('99999999999999999999.0.0')).toBeUndefined();
  });

  it('accepts npm-style ranges and refuses other text', () => {
    for (const r of [
      '1.2.3',
      '^1.2.0',
      '~0.3',
      '>=1.0.0 <2.0.0',
      '1.x',
      '*',
      '1.0.0 - 1.4.0',
      '^1.0.0 || ^2.0.0',
      '=1.0.0-rc.1',
    ]) {
      expect(isValidRange(r), r).toBe(true);
    }
    for (const r of ['', 'latest', '^^1.0.0', '>= 1.0.0', '1.0.0 ||', 'file:../x']) {
      expect(isValidRange(r), r).toBe(false);
    }
  });
});
