// The kernel's handle on a TPM 2.0: a thin typed layer over the camos_tpm addon.

import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fromNative, TpmError } from './errors.js';
import { p256PublicKey, p1363ToDer } from './keys.js';
import { loadAddon, type NativeTpm, type NativeTpmInfo } from './native.js';

export type TpmInfo = NativeTpmInfo;
export type PcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export type Hierarchy = 'owner' | 'endorsement';

export interface SigningKeyOptions {
  /** Default 'owner'. */
  hierarchy?: Hierarchy;
  /**
   * A restricted key only signs what the TPM itself produced (quotes, certifications), so nobody can make
   * it sign a forged attestation; sign() on it fails. Use an unrestricted key for sign(). Default false.
   */
  restricted?: boolean;
}

export interface TpmKey {
  /** Id of the loaded key in this Tpm; valid until flushKey() or close(). */
  handle: number;
  hierarchy: Hierarchy;
  restricted: boolean;
  /** Uncompressed P-256 point, 0x04 || X || Y. */
  publicPoint: Buffer;
  publicKey: KeyObject;
  spkiDer: Buffer;
  pem: string;
  /** TPM name (nameAlg || sha256(TPMT_PUBLIC)). */
  name: Buffer;
  /** The name a quote carries as qualifiedSigner. */
  qualifiedName: Buffer;
}

export interface TpmQuote {
  /** Marshalled TPMS_ATTEST, exactly the bytes the signature covers. */
  attest: Buffer;
  /** DER ECDSA over sha256(attest). */
  signature: Buffer;
  pcrBank: 'sha256';
  /** The quoted PCRs as read just before the quote, ascending by index. */
  pcrValues: { index: number; value: Buffer }[];
}

/** The TCTI the kernel uses when none is given: CAMOS_TPM_TCTI, else the kernel resource manager. */
export function defaultTcti(): string {
  return process.env.CAMOS_TPM_TCTI || 'device:/dev/tpmrm0';
}

/** Accepts a bare device path ("/dev/tpmrm0") as well as a tctildr "name:conf" string. */
export function normalizeTcti(tcti: string): string {
  const t = tcti.trim();
  return t.startsWith('/') ? `device:${t}` : t;
}

function devicePath(tcti: string): string | undefined {
  if (!tcti.startsWith('device')) return undefined;
  const conf = tcti.slice('device'.length).replace(/^:/, '');
  return conf === '' ? '/dev/tpmrm0' : conf;
}

function checkDigest(digest: Uint8Array, what: string): void {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) {
    throw new TpmError('TPM_ERR_ARGUMENT', `${what} must be a 32-byte sha256 digest`);
  }
}

function checkPcr(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 23) {
    throw new TpmError('TPM_ERR_ARGUMENT', `PCR index must be an integer in 0..23, got ${index}`);
  }
}

export class Tpm {
  readonly tcti: string;
  readonly info: TpmInfo;
  readonly #native: NativeTpm;
  readonly #keys = new Map<number, TpmKey>();

  /** @internal use openTpm() */
  constructor(native: NativeTpm, tcti: string) {
    this.#native = native;
    this.tcti = tcti;
    this.info = { ...native.info };
  }

  async #call<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      throw fromNative(e);
    }
  }

  getRandom(n: number): Promise<Buffer> {
    return this.#call(() => this.#native.getRandom(n));
  }

  pcrRead(bank: PcrBank, index: number): Promise<Buffer> {
    return this.#call(async () => {
      checkPcr(index);
      return this.#native.pcrRead(bank, index);
    });
  }

  /** Extends the sha256 bank only: new = sha256(old || digest). */
  pcrExtend(index: number, digest: Uint8Array): Promise<void> {
    return this.#call(async () => {
      checkPcr(index);
      checkDigest(digest, 'PCR extend digest');
      return this.#native.pcrExtend(index, digest);
    });
  }

  /** Only PCRs the platform makes resettable at locality 0 (16 and 23 on PC-client TPMs) succeed. */
  pcrReset(index: number): Promise<void> {
    return this.#call(async () => {
      checkPcr(index);
      return this.#native.pcrReset(index);
    });
  }

  /**
   * Creates (or re-creates: the template is fixed, so the same TPM always yields the same key) a primary
   * ECC P-256 ECDSA/SHA-256 key and loads it.
   */
  createSigningKey(options: SigningKeyOptions = {}): Promise<TpmKey> {
    const hierarchy = options.hierarchy ?? 'owner';
    const restricted = options.restricted ?? false;
    return this.#call(async () => {
      const k = await this.#native.createSigningKey(hierarchy, restricted);
      const publicKey = p256PublicKey(k.publicPoint);
      const key: TpmKey = {
        handle: k.handle,
        hierarchy,
        restricted,
        publicPoint: k.publicPoint,
        publicKey,
        spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
        pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        name: k.name,
        qualifiedName: k.qualifiedName,
      };
      this.#keys.set(key.handle, key);
      return key;
    });
  }

  /** ECDSA over a sha256 digest with an unrestricted key; DER, so `crypto.verify('sha256', data, key, sig)` holds. */
  sign(handle: number, digest: Uint8Array): Promise<Buffer> {
    return this.#call(async () => {
      checkDigest(digest, 'digest to sign');
      return p1363ToDer(await this.#native.sign(handle, digest));
    });
  }

  /** TPM2_Quote over sha256 PCRs with a caller-chosen nonce (at most 64 bytes). */
  quote(handle: number, pcrIndexes: readonly number[], nonce: Uint8Array): Promise<TpmQuote> {
    return this.#call(async () => {
      for (const i of pcrIndexes) checkPcr(i);
      const q = await this.#native.quote(handle, [...pcrIndexes], nonce);
      return {
        attest: q.attest,
        signature: p1363ToDer(q.signature),
        pcrBank: 'sha256',
        pcrValues: q.pcrValues,
      };
    });
  }

  /** Unloads a key (a TPM has only a few transient object slots). */
  flushKey(handle: number): Promise<void> {
    return this.#call(async () => {
      await this.#native.flushKey(handle);
      this.#keys.delete(handle);
    });
  }

  key(handle: number): TpmKey | undefined {
    return this.#keys.get(handle);
  }

  /** Runs after every command already issued, then flushes all keys and releases the ESAPI context. */
  close(): Promise<void> {
    return this.#call(async () => {
      await this.#native.close();
      this.#keys.clear();
    });
  }
}

/**
 * Opens a TPM through tpm2-tss: `device:/dev/tpmrm0` (or just the path), `swtpm:host=H,port=P`, or any
 * other tctildr "name:conf". Resolves once the TPM has answered a command.
 */
export async function openTpm(tcti: string = defaultTcti()): Promise<Tpm> {
  const conf = normalizeTcti(tcti);
  const load = loadAddon();
  if (!load.ok) {
    throw new TpmError(
      load.reason === 'addon not built' ? 'TPM_ERR_ADDON_NOT_BUILT' : 'TPM_ERR_ADDON_LOAD',
      load.detail,
    );
  }
  const dev = devicePath(conf);
  if (dev !== undefined && !existsSync(dev)) {
    throw new TpmError('TPM_ERR_NO_DEVICE', `no TPM device at ${dev} (TCTI '${conf}')`);
  }
  try {
    return new Tpm(await load.addon.open(conf), conf);
  } catch (e) {
    throw fromNative(e);
  }
}

export type TpmUnavailableReason = 'addon not built' | 'addon failed to load' | 'no device' | 'open failed';

export type TpmStatus =
  | { available: true; tcti: string; info: TpmInfo }
  | { available: false; tcti: string; reason: TpmUnavailableReason; detail: string };

/**
 * Whether the kernel can use a TPM here, and if not why: the kernel runs in explicit no-TPM mode on
 * `available: false`. Opens and closes the TPM once to be sure it answers.
 */
export async function tpmStatus(tcti: string = defaultTcti()): Promise<TpmStatus> {
  const conf = normalizeTcti(tcti);
  try {
    const tpm = await openTpm(conf);
    const info = tpm.info;
    await tpm.close();
    return { available: true, tcti: conf, info };
  } catch (e) {
    const err = fromNative(e);
    const reason: TpmUnavailableReason =
      err.code === 'TPM_ERR_ADDON_NOT_BUILT'
        ? 'addon not built'
        : err.code === 'TPM_ERR_ADDON_LOAD'
          ? 'addon failed to load'
          : err.code === 'TPM_ERR_NO_DEVICE'
            ? 'no device'
            : 'open failed';
    return { available: false, tcti: conf, reason, detail: err.message };
  }
}
