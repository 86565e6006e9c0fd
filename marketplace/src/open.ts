/**
 * Opens a Marketplace on a kernel data dir the way the CLI does: the kernel's trust store
 * (`<data-dir>/trust`), its capability policy (allowedImports from config), and the transparency logs the
 * operator pinned in `<data-dir>/marketplace/transparency-logs.json` (a list of { baseUrl, publicKeyPem }).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '@cam-os/host/server/config.js';
import { TrustStore } from '@cam-os/host/trust/trust-store.js';
import { marketError } from './errors.js';
import { marketplaceDir, readLockfile } from './lockfile.js';
import { type KernelControl, Marketplace, type MarketplaceOptions } from './marketplace.js';
import { openRegistry } from './registry.js';
import type { PinnedLog } from './sigstore.js';

export const PINNED_LOGS_FILE = 'transparency-logs.json';

export async function readPinnedLogs(dataDir: string): Promise<PinnedLog[]> {
  const path = join(marketplaceDir(dataDir), PINNED_LOGS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw marketError('invalid-argument', `${path} is not JSON (${(e as Error).message})`);
  }
  if (
    !Array.isArray(doc) ||
    doc.some(
      (l) =>
        typeof l !== 'object' ||
        l === null ||
        typeof (l as PinnedLog).baseUrl !== 'string' ||
        typeof (l as PinnedLog).publicKeyPem !== 'string' ||
        !(l as PinnedLog).publicKeyPem.includes('PUBLIC KEY'),
    )
  )
    throw marketError('invalid-argument', `${path} must be a list of { baseUrl, publicKeyPem }`);
  return doc as PinnedLog[];
}

export interface OpenOptions
  extends Partial<Pick<MarketplaceOptions, 'confirm' | 'onProgress' | 'maxPackageBytes'>> {
  dataDir: string;
  /** Directory or URL; default: $CAM_OS_REGISTRY, then the registry the lockfile used last. */
  registry?: string;
  kernel?: KernelControl;
}

export async function openMarketplace(opts: OpenOptions): Promise<Marketplace> {
  const config = loadConfig({ dataDir: opts.dataDir });
  const location =
    opts.registry || process.env.CAM_OS_REGISTRY || (await readLockfile(config.dataDir)).registry;
  if (!location)
    throw marketError('invalid-argument', 'no registry: pass --registry <dir|url> (or set CAM_OS_REGISTRY)');
  return new Marketplace({
    dataDir: config.dataDir,
    registry: openRegistry(location),
    trustStore: await TrustStore.open(join(config.dataDir, 'trust')),
    policy: { allowedImports: config.allowedImports },
    pinnedLogs: await readPinnedLogs(config.dataDir),
    ...(opts.kernel ? { kernel: opts.kernel } : {}),
    ...(opts.confirm ? { confirm: opts.confirm } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.maxPackageBytes ? { maxPackageBytes: opts.maxPackageBytes } : {}),
  });
}
