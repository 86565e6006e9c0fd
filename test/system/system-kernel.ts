/**
 * Shared set-up for the system-level tests and the swap benchmark: a kernel started the way `cam-os up`
 * starts it (boot(): gRPC, host interfaces over the configured kv backend, the signed system components
 * from drivers/<name>/dist), a SyscallClient on loopback, and re-signed builds of the memory component to
 * hot-swap in.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addCustomSection } from '../../host/src/component/wasm-binary.js';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { type KernelConfig, loadConfig } from '../../host/src/server/config.js';
import { readSecretKeyFile } from '../../host/src/trust/keys.js';
import { parseManifest } from '../../host/src/trust/manifest.js';
import { signAndAttach } from '../../host/src/trust/sign.js';
import { SyscallClient } from '../../sdk/src/client/index.js';
import { ROOT } from '../grpc/harness.js';

export { ROOT };

export const MEMORY_DIST = join(ROOT, 'drivers', 'memory', 'dist');
const KEY_FILE = join(ROOT, '.cam-os', 'system-publisher.key.json');

/** Why the system tests cannot run here (drivers not built or not signed), or undefined. */
export function systemMissing(): string | undefined {
  for (const name of ['memory', 'scheduler', 'arbitration']) {
    const dist = join(ROOT, 'drivers', name, 'dist');
    if (!existsSync(join(dist, `${name}.wasm`)) || !existsSync(join(dist, 'manifest.json')))
      return `drivers/${name}/dist is not built: run \`npm run build:drivers\``;
  }
  if (!existsSync(KEY_FILE)) return `${KEY_FILE} is missing: run \`node drivers/sign.mjs key\``;
  return undefined;
}

export interface SystemKernel {
  booted: BootedKernel;
  client: SyscallClient;
  dataDir: string;
  stop(): Promise<void>;
}

export async function bootSystemKernel(
  opts: { dataDir?: string; kv?: KernelConfig['kv']; config?: Record<string, unknown> } = {},
): Promise<SystemKernel> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'cam-system-test-'));
  // <data-dir>/config.json, as an operator would write it.
  const file = { ...opts.config, ...(opts.kv ? { kv: opts.kv } : {}) };
  if (Object.keys(file).length > 0) writeFileSync(join(dataDir, 'config.json'), JSON.stringify(file));
  const config = loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {});
  const booted = await boot(config, { log: () => {} });
  const missing = ['memory', 'scheduler', 'arbitration'].filter((n) => !booted.kernel.has(n));
  if (missing.length > 0) {
    await booted.stop();
    throw new Error(`boot did not load ${missing.join(', ')}: ${booted.warnings.join('; ')}`);
  }
  const client = new SyscallClient({ address: booted.address, callerId: 'system-test' });
  await client.waitForReady();
  return {
    booted,
    client,
    dataDir,
    async stop() {
      client.close();
      await booted.stop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface MemoryBuild {
  version: string;
  bytes: Uint8Array;
  manifestJson: string;
}

/**
 * Two distinct builds of the memory component — the shipped bytes (A) and the same bytes with a custom
 * section appended (B, another digest) — and a signer that attaches a manifest with a given version to
 * either, signed with the checkout's system key so the trusted loader accepts it.
 */
export async function memoryBuilds(): Promise<{
  a: Uint8Array;
  b: Uint8Array;
  sign(bytes: Uint8Array, version: string): Promise<MemoryBuild>;
}> {
  const a = new Uint8Array(readFileSync(join(MEMORY_DIST, 'memory.wasm')));
  const b = addCustomSection(a, 'cam-os:system-test-build', new TextEncoder().encode('B'));
  const pair = await readSecretKeyFile(KEY_FILE);
  const { signatures: _s, ...body } = parseManifest(
    JSON.parse(readFileSync(join(MEMORY_DIST, 'manifest.json'), 'utf8')),
  );
  const { createHash } = await import('node:crypto');
  return {
    a,
    b,
    async sign(bytes, version) {
      const signed = await signAndAttach(
        {
          ...body,
          version,
          component: {
            digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
            size: bytes.length,
          },
        },
        pair,
      );
      return { version, bytes, manifestJson: JSON.stringify(signed) };
    },
  };
}

/** One acknowledged ContextWrite. */
export interface AckedWrite {
  namespace: string;
  key: string;
  version: number;
  hash: string;
  data: string;
}

/**
 * Re-reads every acknowledged write by its version number; returns one line per mismatch or failure
 * (an empty list means every acknowledged write is there with the acknowledged version, hash and bytes).
 */
export async function verifyAcked(client: SyscallClient, acked: AckedWrite[]): Promise<string[]> {
  const problems: string[] = [];
  const batch = 32;
  for (let i = 0; i < acked.length; i += batch) {
    await Promise.all(
      acked.slice(i, i + batch).map(async (w) => {
        const at = `${w.namespace}/${w.key}@${w.version}`;
        try {
          const r = await client.call('ContextRead', {
            namespace: w.namespace,
            key: w.key,
            version: w.version,
          });
          if (Number(r.version) !== w.version) problems.push(`${at}: read back version ${r.version}`);
          if (r.hash !== w.hash) problems.push(`${at}: hash ${r.hash}, acknowledged ${w.hash}`);
          if (Buffer.from(r.data).toString('utf8') !== w.data) problems.push(`${at}: data differs`);
        } catch (e) {
          problems.push(`${at}: ${(e as Error).message}`);
        }
      }),
    );
  }
  return problems;
}
