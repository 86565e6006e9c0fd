// Mutation test: one valid signed package, 1,000 mutated variants, each of which must be refused with the
// code its mutation calls for. Random choices come from a seeded generator, so a failure is reproducible
// (the variant's label says what was changed).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesEqual, fromBase64Strict, toBase64 } from './encoding.js';
import type { TrustErrorCode } from './errors.js';
import { type PublisherKeyPair, publicKeyOf } from './keys.js';
import { loadMlDsa65 } from './liboqs.js';
import { canonicalBytes, type ManifestBody, type SignedManifest, validateManifest } from './manifest.js';
import { signAndAttach } from './sign.js';
import {
  buildSignedPackage,
  fakeComponentBytes,
  type SignedPackage,
  testKeyPair,
  testManifestBody,
} from './testing.js';
import { TrustStore } from './trust-store.js';
import { type SignatureHalf, type VerifyPolicy, verifyComponentSync } from './verifier.js';

const SEED = 0x5eed_2026;
const TOTAL = 1000;

/** mulberry32: small, fast, good enough to pick positions. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Variant {
  readonly label: string;
  readonly category: string;
  readonly componentBytes: Uint8Array;
  readonly manifest: unknown;
  readonly policy: VerifyPolicy;
  readonly expected: TrustErrorCode;
  readonly failedHalves?: readonly SignatureHalf[];
}

const policy: VerifyPolicy = { allowedImports: ['cam:kernel/*', 'wasi:clocks/*'], maxMemoryPages: 1024 };
const alice = testKeyPair('mutation/alice');
const bob = testKeyPair('mutation/bob');
const revokedKey = testKeyPair('mutation/revoked');
const stranger = testKeyPair('mutation/stranger');

let dir: string;
let store: TrustStore;
let base: SignedPackage;

beforeAll(async () => {
  await loadMlDsa65();
  dir = await mkdtemp(join(tmpdir(), 'cam-trust-mutation-'));
  store = await TrustStore.open(dir);
  await store.add(publicKeyOf(alice));
  await store.add(publicKeyOf(bob));
  await store.add(publicKeyOf(revokedKey));
  await store.revoke(revokedKey.keyId, 'mutation test');
  base = await buildSignedPackage({ keyPair: alice, componentBytes: fakeComponentBytes(4096, 0x33) });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function variant(
  v: Omit<Variant, 'componentBytes' | 'policy'> & Partial<Pick<Variant, 'componentBytes' | 'policy'>>,
): Variant {
  return { componentBytes: base.componentBytes, policy, ...v };
}

async function signedBy(
  pair: PublisherKeyPair,
  overrides: Partial<ManifestBody>,
  publisher = pair.keyId,
): Promise<SignedManifest> {
  const body = testManifestBody(publisher, base.componentBytes, overrides);
  if (publisher === pair.keyId) return signAndAttach(body, pair);
  // Sign with `pair` a body that names someone else: signAndAttach refuses that, so sign a copy and move it.
  const signed = await signAndAttach({ ...body, publisher: pair.keyId }, pair);
  return { ...body, signatures: { ...signed.signatures, keyId: publisher } };
}

/** What a bit flip in the signed body's JSON text must produce (derived from the document, not the verifier). */
function expectedForMutatedText(bytes: Uint8Array): {
  code: TrustErrorCode | 'accept';
  halves?: SignatureHalf[];
} {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { code: 'malformed-manifest' };
  }
  const v = validateManifest(parsed);
  if (!v.ok) return { code: 'malformed-manifest' };
  const m = v.manifest as SignedManifest;
  const status = store.lookup(m.publisher).status;
  if (status === 'unknown') return { code: 'unknown-publisher' };
  if (status === 'revoked') return { code: 'revoked-key' };
  if (m.signatures.keyId !== m.publisher) return { code: 'bad-signature', halves: [] };
  if (bytesEqual(canonicalBytes(m), canonicalBytes(base.manifest))) return { code: 'accept' };
  return { code: 'bad-signature', halves: ['ml-dsa-65', 'ed25519'] };
}

async function buildVariants(): Promise<Variant[]> {
  const random = rng(SEED);
  const int = (n: number) => Math.floor(random() * n);
  const out: Variant[] = [];
  const m = base.manifest;

  // 1. Component bytes: 250 single-bit flips anywhere, plus truncation and extension.
  for (let i = 0; i < 250; i++) {
    const bit = int(base.componentBytes.byteLength * 8);
    out.push(
      variant({
        category: 'component bit flip',
        label: `component bit ${bit}`,
        componentBytes: flipBit(base.componentBytes, bit),
        manifest: m,
        expected: 'digest-mismatch',
      }),
    );
  }
  for (const size of [0, 8, 4095, 4097, 8192]) {
    const bytes = fakeComponentBytes(Math.max(size, 8), 0x33).subarray(0, size);
    out.push(
      variant({
        category: 'component size',
        label: `component size ${size}`,
        componentBytes: bytes,
        manifest: m,
        expected: 'digest-mismatch',
      }),
    );
  }

  // 2a. Bit flips in the canonical JSON of the signed body (the signatures block appended unchanged).
  const canonical = canonicalBytes(m);
  const prefix = canonical.subarray(0, canonical.byteLength - 1); // without the closing brace
  const suffix = new TextEncoder().encode(`,"signatures":${JSON.stringify(m.signatures)}}`);
  let skippedNoOps = 0;
  for (let made = 0; made < 180; ) {
    const bit = int(prefix.byteLength * 8);
    const doc = new Uint8Array([...flipBit(prefix, bit), ...suffix]);
    const exp = expectedForMutatedText(doc);
    if (exp.code === 'accept') {
      skippedNoOps++;
      continue;
    }
    out.push(
      variant({
        category: 'canonical field bit flip',
        label: `canonical body bit ${bit} (byte '${String.fromCharCode(prefix[bit >> 3]!)}')`,
        manifest: doc,
        expected: exp.code,
        ...(exp.halves ? { failedHalves: exp.halves } : {}),
      }),
    );
    made++;
  }
  expect(skippedNoOps).toBe(0);

  // 2b. Value changes that keep the manifest valid: only the signature can catch them.
  const hex = '0123456789abcdef';
  const valueMutations: [string, (b: ManifestBody, r: number) => ManifestBody][] = [
    [
      'digest hex digit',
      (b, r) => {
        const i = 7 + (r % 64);
        const d = b.component.digest;
        const c = hex[(hex.indexOf(d[i]!) + 1 + (r % 15)) % 16]!;
        return { ...b, component: { ...b.component, digest: d.slice(0, i) + c + d.slice(i + 1) } };
      },
    ],
    ['size', (b, r) => ({ ...b, component: { ...b.component, size: b.component.size + 1 + (r % 1000) } })],
    ['name', (b, r) => ({ ...b, name: `${b.name}-${hex[r % 16] === '0' ? 'x' : 'v'}${r % 97}` })],
    ['version', (b, r) => ({ ...b, version: `1.2.${4 + (r % 50)}` })],
    ['world', (b) => ({ ...b, world: 'cam:kernel/service' })],
    ['abiVersion', (b, r) => ({ ...b, abiVersion: `0.${2 + (r % 9)}.0` })],
    [
      'imports added',
      (b, r) => ({
        ...b,
        capabilities: {
          ...b.capabilities,
          imports: [...b.capabilities.imports, `cam:kernel/extra${r % 50}@0.1.0`],
        },
      }),
    ],
    [
      'imports removed',
      (b) => ({ ...b, capabilities: { ...b.capabilities, imports: b.capabilities.imports.slice(1) } }),
    ],
    [
      'memoryMaxPages',
      (b, r) => ({ ...b, capabilities: { ...b.capabilities, memoryMaxPages: 1 + (r % 255) } }),
    ],
    ['deadlineMs', (b, r) => ({ ...b, capabilities: { ...b.capabilities, deadlineMs: 51 + (r % 1000) } })],
    [
      'concurrency dropped',
      (b) => {
        const { concurrency: _c, ...caps } = b.capabilities;
        return { ...b, capabilities: caps };
      },
    ],
    [
      'dependency range',
      (b, r) => ({ ...b, dependencies: [{ name: 'kv-store', range: `^0.${4 + (r % 20)}.0` }] }),
    ],
    [
      'dependencies dropped',
      (b) => {
        const { dependencies: _d, ...rest } = b;
        return rest;
      },
    ],
  ];
  for (let i = 0; i < 104; i++) {
    const [what, mutate] = valueMutations[i % valueMutations.length]!;
    const { signatures, ...body } = m;
    const mutated = { ...mutate(body, int(1_000_000)), signatures };
    out.push(
      variant({
        category: 'canonical field value',
        label: `changed ${what}`,
        manifest: mutated,
        expected: 'bad-signature',
        failedHalves: ['ml-dsa-65', 'ed25519'],
      }),
    );
  }

  // 3. Bit flips in each signature.
  const mlDsa = fromBase64Strict(m.signatures.mlDsa65)!;
  const ed = fromBase64Strict(m.signatures.ed25519)!;
  for (let i = 0; i < 135; i++) {
    const bit = int(mlDsa.byteLength * 8);
    const sigs = { ...m.signatures, mlDsa65: toBase64(flipBit(mlDsa, bit)) };
    out.push(
      variant({
        category: 'ML-DSA-65 signature bit flip',
        label: `ML-DSA-65 signature bit ${bit}`,
        manifest: { ...m, signatures: sigs },
        expected: 'bad-signature',
        failedHalves: ['ml-dsa-65'],
      }),
    );
  }
  for (let i = 0; i < 135; i++) {
    const bit = int(ed.byteLength * 8);
    const sigs = { ...m.signatures, ed25519: toBase64(flipBit(ed, bit)) };
    out.push(
      variant({
        category: 'Ed25519 signature bit flip',
        label: `Ed25519 signature bit ${bit}`,
        manifest: { ...m, signatures: sigs },
        expected: 'bad-signature',
        failedHalves: ['ed25519'],
      }),
    );
  }

  // 4. Signatures swapped between two keys (Bob signs the same body, naming himself, and other bodies).
  for (let i = 0; i < 40; i++) {
    const byBob = await signedBy(bob, { version: `1.2.${3 + (i % 4)}` });
    const byAlice = i % 4 === 0 ? m : await signedBy(alice, { version: `1.2.${3 + (i % 4)}` });
    const swaps: [string, SignedManifest, TrustErrorCode, SignatureHalf[]][] = [
      [
        "Bob's ML-DSA-65 half on Alice's manifest",
        { ...byAlice, signatures: { ...byAlice.signatures, mlDsa65: byBob.signatures.mlDsa65 } },
        'bad-signature',
        ['ml-dsa-65'],
      ],
      [
        "Bob's Ed25519 half on Alice's manifest",
        { ...byAlice, signatures: { ...byAlice.signatures, ed25519: byBob.signatures.ed25519 } },
        'bad-signature',
        ['ed25519'],
      ],
      [
        "Bob's signature block on Alice's manifest",
        { ...byAlice, signatures: byBob.signatures },
        'bad-signature',
        [],
      ],
      [
        "Alice's signature block on Bob's manifest",
        { ...byBob, signatures: byAlice.signatures },
        'bad-signature',
        [],
      ],
    ];
    const [label, manifest, expected, failedHalves] = swaps[i % swaps.length]!;
    out.push(
      variant({
        category: 'swapped signatures',
        label: `${label} (#${i})`,
        manifest,
        expected,
        failedHalves,
      }),
    );
  }

  // 5. Wrong key: an untrusted key, or a trusted key signing in someone else's name.
  for (let i = 0; i < 60; i++) {
    const version = `1.${i}.0`;
    if (i % 3 === 0) {
      out.push(
        variant({
          category: 'wrong key',
          label: `untrusted publisher, v${version}`,
          manifest: await signedBy(stranger, { version }),
          expected: 'unknown-publisher',
        }),
      );
    } else if (i % 3 === 1) {
      out.push(
        variant({
          category: 'wrong key',
          label: `untrusted key signing as Alice, v${version}`,
          manifest: await signedBy(stranger, { version }, alice.keyId),
          expected: 'bad-signature',
          failedHalves: ['ml-dsa-65', 'ed25519'],
        }),
      );
    } else {
      out.push(
        variant({
          category: 'wrong key',
          label: `Bob signing as Alice, v${version}`,
          manifest: await signedBy(bob, { version }, alice.keyId),
          expected: 'bad-signature',
          failedHalves: ['ml-dsa-65', 'ed25519'],
        }),
      );
    }
  }

  // 6. Revoked key.
  for (let i = 0; i < 40; i++) {
    out.push(
      variant({
        category: 'revoked key',
        label: `revoked publisher, v2.${i}.0`,
        manifest: await signedBy(revokedKey, { version: `2.${i}.0` }),
        expected: 'revoked-key',
      }),
    );
  }

  // 7. Downgraded version (installed 5.0.0), validly signed by Alice.
  for (let i = 0; i < 40; i++) {
    const version = i % 2 === 0 ? `4.${i}.${int(100)}` : `5.0.0-rc.${i}`;
    out.push(
      variant({
        category: 'downgrade',
        label: `v${version} over installed 5.0.0`,
        manifest: await signedBy(alice, { version }),
        policy: { ...policy, installedVersion: '5.0.0' },
        expected: 'downgrade',
      }),
    );
  }

  // 8. Signatures stripped; capabilities the policy refuses (validly signed).
  const { signatures: _s, ...unsigned } = m;
  for (let i = 0; i < 5; i++) {
    out.push(
      variant({
        category: 'unsigned',
        label: `signatures removed (#${i})`,
        manifest: i % 2 ? unsigned : JSON.stringify(unsigned),
        expected: 'unsigned',
      }),
    );
  }
  for (let i = 0; i < 6; i++) {
    const caps =
      i % 2 === 0
        ? { imports: ['wasi:sockets/tcp@0.2.0'], memoryMaxPages: 16 }
        : { imports: [], memoryMaxPages: 1025 + i };
    out.push(
      variant({
        category: 'capability',
        label: `capability ${JSON.stringify(caps)}`,
        manifest: await signedBy(alice, { capabilities: caps }),
        expected: 'capability-not-allowed',
      }),
    );
  }

  return out;
}

describe('mutation test', () => {
  it(`refuses all ${TOTAL} mutated variants of a valid package with the expected code`, async () => {
    expect(
      verifyComponentSync({
        componentBytes: base.componentBytes,
        manifest: base.manifest,
        trustStore: store,
        policy,
      }).ok,
    ).toBe(true);

    const variants = await buildVariants();
    expect(variants).toHaveLength(TOTAL);

    const wrong: string[] = [];
    const byCategory = new Map<string, number>();
    for (const v of variants) {
      const result = verifyComponentSync({
        componentBytes: v.componentBytes,
        manifest: v.manifest,
        trustStore: store,
        policy: v.policy,
      });
      byCategory.set(v.category, (byCategory.get(v.category) ?? 0) + 1);
      if (result.ok) {
        wrong.push(`${v.category} / ${v.label}: ACCEPTED, expected ${v.expected}`);
      } else if (result.code !== v.expected) {
        wrong.push(
          `${v.category} / ${v.label}: got ${result.code} (${result.message}), expected ${v.expected}`,
        );
      } else if (v.failedHalves && JSON.stringify(result.failedHalves) !== JSON.stringify(v.failedHalves)) {
        wrong.push(
          `${v.category} / ${v.label}: failed halves ${JSON.stringify(result.failedHalves)}, expected ${JSON.stringify(v.failedHalves)}`,
        );
      }
    }
    expect(wrong, `seed ${SEED}`).toEqual([]);
    // Every kind of mutation the brief asks for is present.
    expect([...byCategory.keys()].sort()).toEqual([
      'Ed25519 signature bit flip',
      'ML-DSA-65 signature bit flip',
      'canonical field bit flip',
      'canonical field value',
      'capability',
      'component bit flip',
      'component size',
      'downgrade',
      'revoked key',
      'swapped signatures',
      'unsigned',
      'wrong key',
    ]);
  });
});
