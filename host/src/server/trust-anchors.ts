/**
 * What the kernel's trust rests on, opened once at start: the publisher trust store and the TPM with its
 * measurement log. Without a TPM (no device, addon not built, or `tpm: none`) the kernel runs in an
 * explicit no-TPM mode that status and HealthCheck report — never a software imitation.
 */
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { MeasurementLog, openTpm, type Tpm, type TpmKey } from '../tpm/index.js';
import { TrustStore } from '../trust/trust-store.js';
import type { KernelConfig } from './config.js';

export interface TpmContext {
  tpm: Tpm | undefined;
  measurement: MeasurementLog | undefined;
  /** Why there is no TPM, when there is none. */
  reason: string | undefined;
  tcti: string | undefined;
  /** When the TPM context was opened (ms since epoch). */
  createdAt: number;
  /** The restricted attestation key (created on first use, TPM-resident). */
  attestationKey(): Promise<TpmKey>;
  /** The unrestricted signing key TmpSign uses (created on first use, TPM-resident). */
  signingKey(): Promise<TpmKey>;
}

export interface TrustAnchors {
  trustStore: TrustStore;
  tpm: TpmContext;
  close(): Promise<void>;
}

export const MEASUREMENT_PCR = 23;

function resolveTcti(setting: string): string | undefined {
  if (setting === 'none') return undefined;
  if (setting === 'auto') return existsSync('/dev/tpmrm0') ? 'device:/dev/tpmrm0' : undefined;
  return setting;
}

export async function openTrustAnchors(config: KernelConfig, warnings: string[]): Promise<TrustAnchors> {
  const trustStore = await TrustStore.open(join(config.dataDir, 'trust'));
  const tcti = resolveTcti(config.tpm);
  let tpm: Tpm | undefined;
  let measurement: MeasurementLog | undefined;
  let reason: string | undefined;
  if (!tcti) {
    reason =
      config.tpm === 'none'
        ? 'TPM disabled by configuration (tpm: none)'
        : 'no TPM device (/dev/tpmrm0 absent)';
  } else {
    try {
      tpm = await openTpm(tcti);
      measurement = await openMeasurementLog(tpm, join(config.dataDir, 'measurements.log'), warnings);
    } catch (e) {
      await tpm?.close().catch(() => {});
      tpm = undefined;
      reason = `TPM at ${tcti} unusable: ${(e as Error).message}`;
    }
  }
  if (!tpm) {
    warnings.push(
      `no-TPM mode: ${reason}. Components are not measured; TmpSign and attestation are unavailable.`,
    );
  } else {
    // The WIT promises a TPM signature over (namespace, key, version, hash) on every read and write when a
    // TPM is configured; the kernel does not make them yet, so a TPM kernel says so rather than implying them.
    warnings.push(
      'context proofs: ContextRead and ContextWrite answer without a TPM proof (integrity_proof, write_proof are empty); signing context versions with the TPM is not implemented yet.',
    );
  }
  if (config.devMode) {
    warnings.push(
      'DEV MODE: unsigned components and unknown publishers are accepted (labelled UNVERIFIED). Never use in production.',
    );
  }
  const keys = new Map<string, Promise<TpmKey>>();
  const key = (kind: 'ak' | 'sign') => {
    if (!tpm) return Promise.reject(new Error(`no TPM: ${reason}`));
    let k = keys.get(kind);
    if (!k) {
      k = tpm.createSigningKey({ restricted: kind === 'ak' });
      keys.set(kind, k);
      k.catch(() => keys.delete(kind));
    }
    return k;
  };
  return {
    trustStore,
    tpm: {
      tpm,
      measurement,
      reason,
      tcti,
      createdAt: Date.now(),
      attestationKey: () => key('ak'),
      signingKey: () => key('sign'),
    },
    async close() {
      await measurement?.close();
      await tpm?.close();
    },
  };
}

/**
 * Open the append-only measurement log. If it no longer describes the PCR (the TPM restarted, or the PCR
 * was extended by someone else), the old log is kept under a dated name and measurement starts afresh
 * from a reset PCR — the operator is told, since earlier measurements can no longer be attested.
 */
async function openMeasurementLog(tpm: Tpm, path: string, warnings: string[]): Promise<MeasurementLog> {
  try {
    return await MeasurementLog.open(tpm, { path, pcr: MEASUREMENT_PCR, resetPcr: !existsSync(path) });
  } catch (e) {
    const kept = `${path}.${new Date().toISOString().replace(/[:.]/g, '-')}`;
    if (existsSync(path)) renameSync(path, kept);
    warnings.push(
      `measurement log restarted: ${(e as Error).message.split(':').slice(-1)[0]?.trim()} (previous log kept as ${kept})`,
    );
    return MeasurementLog.open(tpm, { path, pcr: MEASUREMENT_PCR, resetPcr: true });
  }
}
