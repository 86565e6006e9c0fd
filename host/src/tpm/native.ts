// Loads the camos_tpm addon built by host/native/tpm/build.mjs.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeTpmInfo {
  manufacturer: string;
  vendor: string;
  firmwareVersion: string;
}

export interface NativeKey {
  handle: number;
  publicPoint: Buffer;
  name: Buffer;
  qualifiedName: Buffer;
}

export interface NativeQuote {
  attest: Buffer;
  /** ECDSA r||s, 64 bytes. */
  signature: Buffer;
  pcrValues: { index: number; value: Buffer }[];
}

/** The addon's object; every method rejects with an Error carrying `code` (TPM_ERR_*) and maybe `rc`. */
export interface NativeTpm {
  readonly info: NativeTpmInfo;
  getRandom(n: number): Promise<Buffer>;
  pcrRead(bank: string, index: number): Promise<Buffer>;
  pcrExtend(index: number, digest: Uint8Array): Promise<void>;
  pcrReset(index: number): Promise<void>;
  createSigningKey(hierarchy: string, restricted: boolean): Promise<NativeKey>;
  /** ECDSA r||s, 64 bytes. */
  sign(handle: number, digest: Uint8Array): Promise<Buffer>;
  quote(handle: number, pcrs: number[], nonce: Uint8Array): Promise<NativeQuote>;
  flushKey(handle: number): Promise<void>;
  close(): Promise<void>;
}

export interface NativeAddon {
  open(tcti: string): Promise<NativeTpm>;
}

export type AddonLoad =
  | { ok: true; addon: NativeAddon; path: string }
  | { ok: false; reason: 'addon not built' | 'addon failed to load'; path: string; detail: string };

const ADDON_IN_HOST = join('native', 'tpm', 'build', 'Release', 'camos_tpm.node');

/**
 * Where the addon is: CAMOS_TPM_ADDON_PATH if set, else found by walking up from this module. host/src/tpm
 * and host/dist/tpm both sit two levels below host/, which holds native/; a bundle (bench, tools) sits
 * somewhere below the repository root, which holds host/native/. When nothing is found, the path from
 * host/src or host/dist is reported as missing.
 */
export function addonPath(): string {
  const override = process.env.CAMOS_TPM_ADDON_PATH;
  if (override) return resolve(override);
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    for (const candidate of [join(dir, ADDON_IN_HOST), join(dir, 'host', ADDON_IN_HOST)]) {
      if (existsSync(candidate)) return candidate;
    }
    if (dirname(dir) === dir) break;
  }
  return join(here, '..', '..', ADDON_IN_HOST);
}

let cached: AddonLoad | undefined;

export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    cached = {
      ok: false,
      reason: 'addon not built',
      path,
      detail: `${path} does not exist; build it with: node host/native/tpm/build.mjs (needs libtss2-dev)`,
    };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    cached = { ok: true, addon, path };
  } catch (e) {
    // A failed dlopen (e.g. libtss2 uninstalled after the build) is worth a retry after a rebuild, so it
    // is not cached.
    return {
      ok: false,
      reason: 'addon failed to load',
      path,
      detail: `${path}: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
  return cached;
}
