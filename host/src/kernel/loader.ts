/**
 * The trusted loader: the one path by which a component with a manifest enters the kernel — admin loads,
 * system components at boot, hot-swaps, marketplace installs. Order matters and is fixed:
 *
 *   verify (manifest schema, publisher trust, ML-DSA-65 + Ed25519, digest and size, operator policy,
 *   downgrade) -> measure into the TPM (manifest digest extended into the application PCR, event logged)
 *   -> hand to the kernel (grants, linking, memory cap, instantiation, lifecycle init).
 *
 * Nothing unverified runs. The development escape hatch (`devMode`) accepts only an unsigned manifest or
 * an unknown publisher — never a bad signature, a digest mismatch, a revoked key or a policy violation —
 * and marks the component UNVERIFIED in status and HealthCheck.
 */
import { createHash } from 'node:crypto';
import { KernelError } from '../errors.js';
import type { MeasurementEvent, MeasurementLog } from '../tpm/index.js';
import { type Manifest, parseManifest, parseManifestJson } from '../trust/manifest.js';
import type { TrustStore } from '../trust/trust-store.js';
import {
  checkPolicy,
  toTrustError,
  type VerifyPolicy,
  type VerifyResult,
  verifyComponent,
} from '../trust/verifier.js';
import type { ComponentInfo, Kernel, LoadSpec, SwapRecord } from './kernel.js';

export interface LoaderOptions {
  kernel: Kernel;
  trustStore: TrustStore;
  policy: VerifyPolicy;
  /** Accept unsigned manifests / unknown publishers, loudly. Never on by default. */
  devMode?: boolean;
  /** TPM measurement log; absent = the kernel runs in explicit no-TPM mode. */
  measurement?: MeasurementLog;
}

export interface Verified {
  manifest: Manifest;
  /** 'verified' (signatures checked against a trusted key) or 'unverified-dev' (dev escape hatch). */
  trust: 'verified' | 'unverified-dev';
  publisherLabel: string | undefined;
  reason?: string;
}

/** The digest that is measured: sha-256 over the manifest's canonical JSON including its signatures. */
export function manifestDigest(manifestJson: string | Uint8Array): string {
  return createHash('sha256').update(manifestJson).digest('hex');
}

export class TrustedLoader {
  constructor(readonly options: LoaderOptions) {}

  get devMode(): boolean {
    return this.options.devMode === true;
  }

  /** Verify without loading (also what the VerifyManifest syscall uses). */
  async verify(
    bytes: Uint8Array,
    manifestJson: string | Uint8Array,
    installedVersion?: string,
  ): Promise<Verified> {
    // Keys added or revoked with `cam-os trust` while the kernel runs take effect on the next load.
    await this.options.trustStore.reloadIfChanged();
    const policy = installedVersion ? { ...this.options.policy, installedVersion } : this.options.policy;
    const r = await verifyComponent({
      componentBytes: bytes,
      manifest: manifestJson,
      trustStore: this.options.trustStore,
      policy,
    });
    if (r.ok) return { manifest: r.manifest, trust: 'verified', publisherLabel: r.publisher.label };
    if (this.devMode && (r.code === 'unsigned' || r.code === 'unknown-publisher')) {
      // The escape hatch skips the signature only: schema, digest, size and policy still hold.
      const parsed = parseManifestJson(manifestJson);
      if (!parsed.ok)
        throw toTrustError({ ok: false, code: 'malformed-manifest', message: parsed.issue.message });
      const manifest = parseManifest(parsed.value);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (manifest.component.digest !== digest || manifest.component.size !== bytes.length) {
        throw toTrustError({
          ok: false,
          code: 'digest-mismatch',
          message: `component is ${bytes.length} bytes with digest ${digest}; the manifest says ${manifest.component.size} bytes, ${manifest.component.digest}`,
        });
      }
      const refusal = checkPolicy(manifest, policy);
      if (refusal) throw toTrustError(refusal);
      return { manifest, trust: 'unverified-dev', publisherLabel: undefined, reason: r.message };
    }
    throw toTrustError(r);
  }

  /**
   * Check a manifest on its own (VerifyManifest syscall): the same verifier as for loads, without component
   * bytes, so schema, publisher trust, revocation, both signatures and operator policy are checked.
   */
  async verifyManifest(manifestJson: string | Uint8Array): Promise<VerifyResult> {
    await this.options.trustStore.reloadIfChanged();
    return verifyComponent({
      componentBytes: undefined,
      manifest: manifestJson,
      trustStore: this.options.trustStore,
      policy: this.options.policy,
    });
  }

  private async measure(
    v: Verified,
    manifestJson: string | Uint8Array,
  ): Promise<MeasurementEvent | undefined> {
    const log = this.options.measurement;
    if (!log) return undefined;
    return log.measure(v.manifest.name, v.manifest.version, manifestDigest(manifestJson));
  }

  private spec(
    bytes: Uint8Array,
    v: Verified,
    event: MeasurementEvent | undefined,
    extra: Partial<LoadSpec>,
  ): LoadSpec {
    const m = v.manifest;
    const caps = m.capabilities;
    return {
      name: m.name,
      version: m.version,
      bytes,
      digest: m.component.digest,
      imports: [...caps.imports],
      memoryMaxPages: caps.memoryMaxPages,
      deadlineMs: caps.deadlineMs,
      concurrency: caps.concurrency,
      ...extra,
      labels: {
        publisher: m.publisher,
        ...(v.publisherLabel ? { publisherLabel: v.publisherLabel } : {}),
        world: m.world,
        abiVersion: m.abiVersion,
        trust: v.trust === 'verified' ? 'verified (ML-DSA-65 + Ed25519)' : 'UNVERIFIED (dev mode)',
        measured: event ? `PCR ${event.pcr} event ${event.index}` : 'no TPM',
        ...extra.labels,
      },
    };
  }

  async load(
    bytes: Uint8Array,
    manifestJson: string | Uint8Array,
    extra: Partial<LoadSpec> = {},
  ): Promise<ComponentInfo> {
    const v = await this.verify(bytes, manifestJson);
    if (this.options.kernel.has(v.manifest.name)) {
      throw new KernelError(
        'KERNEL_ERR_COMPONENT_EXISTS',
        `a component named '${v.manifest.name}' is already loaded`,
      );
    }
    const event = await this.measure(v, manifestJson);
    return this.options.kernel.load(this.spec(bytes, v, event, extra));
  }

  /** Verify a new build (no downgrade below the running version), measure it, hot-swap it in. */
  async swap(
    name: string,
    bytes: Uint8Array,
    manifestJson: string | Uint8Array,
    opts: { allowDowngrade?: boolean } = {},
  ): Promise<SwapRecord> {
    const running = this.options.kernel.info(name);
    const v = await this.verify(bytes, manifestJson, opts.allowDowngrade ? undefined : running.version);
    if (v.manifest.name !== name) {
      throw new KernelError(
        'KERNEL_ERR_MANIFEST_INVALID',
        `manifest is for '${v.manifest.name}', not '${name}'`,
      );
    }
    const event = await this.measure(v, manifestJson);
    const { name: _n, ...spec } = this.spec(bytes, v, event, {});
    return this.options.kernel.swap(name, spec);
  }
}
