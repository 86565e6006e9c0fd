// The one component verifier. The component loader and the VerifyManifest syscall both call it, so what the
// kernel runs and what it reports as verified cannot disagree.
//
// Order of checks, and why:
//   1. shape (malformed-manifest)        — nothing else is meaningful on a malformed document
//   2. signatures present (unsigned)
//   3. publisher in trust store (unknown-publisher / revoked-key) — looked up by the *signed* `publisher`
//   4. both signature halves (bad-signature) — cheap (~0.2 ms), and before hashing: an unauthenticated
//      request must not make the kernel hash megabytes
//   5. component bytes vs signed digest and size (digest-mismatch)
//   6. operator policy: imports, memory, deadline, concurrency, world (capability-not-allowed)
//   7. version against the installed one (downgrade)
// Policy and downgrade come after authentication so that a refusal of either is about a manifest the
// publisher really signed.

import { createHash } from 'node:crypto';
import { GrpcStatus } from '../errors.js';
import { TRUST_ERRORS, TrustError, type TrustErrorCode } from './errors.js';
import { loadMlDsa65 } from './liboqs.js';
import {
  formatIssues,
  type Manifest,
  type ManifestIssue,
  parseManifestJson,
  type SignedManifest,
  validateManifest,
} from './manifest.js';
import { compareSemver, parseSemver } from './semver.js';
import { verifyManifestSignaturesSync } from './sign.js';
import type { TrustedKey, TrustKeyLookup } from './trust-store.js';

export interface VerifyPolicy {
  /**
   * Interface names the component may import. `*` matches any run of characters: `cam:kernel/*`,
   * `wasi:clocks/*@0.2.*`, or `*` for anything. Required: an empty list allows no imports.
   */
  readonly allowedImports: readonly string[];
  /** Largest `capabilities.memoryMaxPages` accepted. When set, a manifest without a memory limit is refused. */
  readonly maxMemoryPages?: number;
  /** Largest `capabilities.deadlineMs` accepted. */
  readonly maxDeadlineMs?: number;
  /** Largest `capabilities.concurrency` accepted. */
  readonly maxConcurrency?: number;
  /** World patterns (same syntax as imports) the component may target. Absent: any world. */
  readonly allowedWorlds?: readonly string[];
  /** Version of this component currently installed; a lower manifest version is refused as a downgrade. */
  readonly installedVersion?: string;
}

export interface VerifyInput {
  /** The component; undefined verifies the manifest alone (no digest or size check). */
  readonly componentBytes: Uint8Array | undefined;
  /** The manifest as parsed JSON, as JSON text, or as UTF-8 bytes. */
  readonly manifest: unknown;
  readonly trustStore: TrustKeyLookup;
  readonly policy: VerifyPolicy;
}

export type SignatureHalf = 'ml-dsa-65' | 'ed25519';

export interface VerifySuccess {
  readonly ok: true;
  /** A deep-frozen copy of exactly what was verified (never the caller's object). */
  readonly manifest: SignedManifest;
  readonly publisher: TrustedKey;
}

export interface VerifyFailure {
  readonly ok: false;
  readonly code: TrustErrorCode;
  /** Human-readable, names the field / half / capability concerned. */
  readonly message: string;
  /** malformed-manifest: every schema issue found. */
  readonly issues?: readonly ManifestIssue[];
  /** bad-signature: which halves failed (empty when the signature block names a different key). */
  readonly failedHalves?: readonly SignatureHalf[];
  /** capability-not-allowed: the capability refused, e.g. `wasi:sockets/tcp@0.2.0` or `memoryMaxPages`. */
  readonly capability?: string;
}

export type VerifyResult = VerifySuccess | VerifyFailure;

/** Verifies a component and its manifest. Loads liboqs on first use; every later call resolves at once. */
export async function verifyComponent(input: VerifyInput): Promise<VerifyResult> {
  await loadMlDsa65();
  return verifyComponentSync(input);
}

/** Same as verifyComponent, synchronously. liboqs must have been loaded (`await loadMlDsa65()`). */
export function verifyComponentSync(input: VerifyInput): VerifyResult {
  const { componentBytes, trustStore, policy } = input;
  assertPolicy(policy);

  let parsed: unknown;
  if (typeof input.manifest === 'string' || input.manifest instanceof Uint8Array) {
    const json = parseManifestJson(input.manifest);
    if (!json.ok) return malformed([json.issue]);
    parsed = json.value;
  } else {
    // Work on a plain-data copy: what is validated, signature-checked and returned is then one fixed value,
    // whatever getters or later mutations the caller's object has.
    try {
      parsed = structuredClone(input.manifest);
    } catch (err) {
      return malformed([
        { field: 'manifest', message: `is not plain JSON data (${(err as Error).message})` },
      ]);
    }
  }
  const validation = validateManifest(parsed);
  if (!validation.ok) return malformed(validation.issues);
  const manifest = deepFreeze(validation.manifest);

  if (manifest.signatures === undefined) {
    return fail('unsigned', `manifest ${manifest.name}@${manifest.version} has no signatures`);
  }
  const signed = manifest as SignedManifest;

  const found = trustStore.lookup(signed.publisher);
  if (found.status === 'unknown') {
    return fail('unknown-publisher', `publisher key ${signed.publisher} is not in the trust store`);
  }
  if (found.status === 'revoked') {
    return fail(
      'revoked-key',
      `publisher key ${signed.publisher} was revoked at ${found.key.revoked.at}: ${found.key.revoked.reason}`,
    );
  }
  const publisher = found.key;

  if (signed.signatures.keyId !== signed.publisher) {
    return {
      ok: false,
      code: 'bad-signature',
      message: `signatures were made by key ${signed.signatures.keyId}, but the manifest's publisher is ${signed.publisher}`,
      failedHalves: [],
    };
  }
  const check = verifyManifestSignaturesSync(signed, publisher);
  if (!check.ok) {
    const failedHalves: SignatureHalf[] = [];
    const reasons: string[] = [];
    if (!check.mlDsa65.ok) {
      failedHalves.push('ml-dsa-65');
      reasons.push(`ML-DSA-65: ${check.mlDsa65.reason}`);
    }
    if (!check.ed25519.ok) {
      failedHalves.push('ed25519');
      reasons.push(`Ed25519: ${check.ed25519.reason}`);
    }
    const which = failedHalves.length === 2 ? 'both signatures' : `the ${failedHalves[0]} signature`;
    return {
      ok: false,
      code: 'bad-signature',
      message: `${which} of ${signed.name}@${signed.version} failed (${reasons.join('; ')})`,
      failedHalves,
    };
  }

  // Without component bytes (the VerifyManifest syscall verifies a manifest on its own) the digest check is
  // the caller's to do later; everything else — schema, publisher, both signatures, policy — still runs.
  if (componentBytes !== undefined) {
    if (componentBytes.byteLength !== signed.component.size) {
      return fail(
        'digest-mismatch',
        `component is ${componentBytes.byteLength} bytes, the signed manifest says ${signed.component.size}`,
      );
    }
    const digest = `sha256:${createHash('sha256').update(componentBytes).digest('hex')}`;
    if (digest !== signed.component.digest) {
      return fail(
        'digest-mismatch',
        `component digest is ${digest}, the signed manifest says ${signed.component.digest}`,
      );
    }
  }

  const refusal = checkPolicy(signed, policy);
  if (refusal) return refusal;

  if (policy.installedVersion !== undefined) {
    const installed = parseSemver(policy.installedVersion)!;
    const offered = parseSemver(signed.version)!;
    if (compareSemver(offered, installed) < 0) {
      return fail(
        'downgrade',
        `${signed.name}@${signed.version} is older than the installed version ${policy.installedVersion}`,
      );
    }
  }

  return { ok: true, manifest: signed, publisher };
}

/** Returns the verified manifest or throws the TrustError for the refusal. */
export function assertVerified(result: VerifyResult): SignedManifest {
  if (result.ok) return result.manifest;
  throw toTrustError(result);
}

export function toTrustError(failure: VerifyFailure): TrustError {
  return new TrustError(failure.code, failure.message);
}

/** The numeric gRPC status a syscall returns for a refusal. */
export function grpcStatusOf(failure: VerifyFailure): number {
  return GrpcStatus[TRUST_ERRORS[failure.code].status];
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function fail(code: TrustErrorCode, message: string): VerifyFailure {
  return { ok: false, code, message };
}

function malformed(issues: readonly ManifestIssue[]): VerifyFailure {
  return { ok: false, code: 'malformed-manifest', message: formatIssues(issues), issues };
}

/** Operator policy check alone (also used by the dev-mode path, which has no signature to check). */
export function checkPolicy(manifest: Manifest, policy: VerifyPolicy): VerifyFailure | undefined {
  const caps = manifest.capabilities;
  const importPatterns = compiledPatterns(policy.allowedImports);
  for (const name of caps.imports) {
    if (!importPatterns.some((re) => re.test(name))) {
      return capability(name, `import ${name} is not allowed by the operator policy`);
    }
  }
  if (policy.allowedWorlds !== undefined) {
    const worldPatterns = compiledPatterns(policy.allowedWorlds);
    if (!worldPatterns.some((re) => re.test(manifest.world))) {
      return capability(
        `world:${manifest.world}`,
        `world ${manifest.world} is not allowed by the operator policy`,
      );
    }
  }
  if (policy.maxMemoryPages !== undefined) {
    if (caps.memoryMaxPages === undefined) {
      return capability(
        'memoryMaxPages',
        `memoryMaxPages is absent (unbounded memory) but the policy allows at most ${policy.maxMemoryPages} pages`,
      );
    }
    if (caps.memoryMaxPages > policy.maxMemoryPages) {
      return capability(
        'memoryMaxPages',
        `memoryMaxPages ${caps.memoryMaxPages} exceeds the policy maximum of ${policy.maxMemoryPages} pages`,
      );
    }
  }
  if (
    policy.maxDeadlineMs !== undefined &&
    caps.deadlineMs !== undefined &&
    caps.deadlineMs > policy.maxDeadlineMs
  ) {
    return capability(
      'deadlineMs',
      `deadlineMs ${caps.deadlineMs} exceeds the policy maximum of ${policy.maxDeadlineMs} ms`,
    );
  }
  if (
    policy.maxConcurrency !== undefined &&
    caps.concurrency !== undefined &&
    caps.concurrency > policy.maxConcurrency
  ) {
    return capability(
      'concurrency',
      `concurrency ${caps.concurrency} exceeds the policy maximum of ${policy.maxConcurrency}`,
    );
  }
  return undefined;
}

function capability(name: string, message: string): VerifyFailure {
  return { ok: false, code: 'capability-not-allowed', message, capability: name };
}

const patternCache = new WeakMap<readonly string[], RegExp[]>();

function compiledPatterns(patterns: readonly string[]): RegExp[] {
  let compiled = patternCache.get(patterns);
  if (!compiled) {
    compiled = patterns.map(
      (p) =>
        new RegExp(
          `^${p
            .split('*')
            .map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
            .join('.*')}$`,
        ),
    );
    patternCache.set(patterns, compiled);
  }
  return compiled;
}

// A bad policy is an operator or host bug, not a property of the component: it throws instead of refusing.
function assertPolicy(policy: VerifyPolicy): void {
  if (!policy || !Array.isArray(policy.allowedImports)) {
    throw new TypeError('verify policy needs allowedImports (an array of patterns; [] allows no imports)');
  }
  for (const p of policy.allowedImports) {
    if (typeof p !== 'string' || p === '')
      throw new TypeError('allowedImports entries must be non-empty strings');
  }
  if (policy.allowedWorlds !== undefined) {
    if (
      !Array.isArray(policy.allowedWorlds) ||
      policy.allowedWorlds.some((p) => typeof p !== 'string' || p === '')
    ) {
      throw new TypeError('allowedWorlds must be an array of non-empty strings');
    }
  }
  for (const key of ['maxMemoryPages', 'maxDeadlineMs', 'maxConcurrency'] as const) {
    const v = policy[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
      throw new TypeError(`policy.${key} must be a non-negative integer, got ${v}`);
    }
  }
  if (policy.installedVersion !== undefined && parseSemver(policy.installedVersion) === undefined) {
    throw new TypeError(
      `policy.installedVersion ${JSON.stringify(policy.installedVersion)} is not a SemVer version`,
    );
  }
}
