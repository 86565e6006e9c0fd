/**
 * What trust costs at load time (issue 5): the same WAT component loaded through the TrustedLoader
 * (schema, ML-DSA-65 + Ed25519 verify, digest, policy, TPM PCR extend + fsync'd event log via the native
 * addon on swtpm) vs a plain kernel.load in the same run. The difference is the added cost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kernel } from '../host/src/kernel/kernel.js';
import { manifestDigest, TrustedLoader } from '../host/src/kernel/loader.js';
import { buildFixture } from '../host/src/testing/fixtures.js';
import { MeasurementLog, openTpm } from '../host/src/tpm/index.js';
import { publicKeyOf } from '../host/src/trust/keys.js';
import { signAndAttach } from '../host/src/trust/sign.js';
import { testKeyPair, testManifestBody } from '../host/src/trust/testing.js';
import { TrustStore } from '../host/src/trust/trust-store.js';
import { startSwtpm } from '../test/harness/swtpm.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'loader';
const N = 40;

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cam-bench-loader-'));
  const swtpm = await startSwtpm();
  try {
    const bytes = await buildFixture('chaos');
    const pair = testKeyPair('bench-loader');
    const store = await TrustStore.open(join(dir, 'trust'));
    await store.add(publicKeyOf(pair));
    const manifests: string[] = [];
    for (let i = 0; i < N; i++) {
      const body = testManifestBody(pair.keyId, bytes, {
        name: `c${i}`,
        world: 'test:fixtures/chaos-world',
        capabilities: { imports: ['wasi:cli/exit@0.2.3'], memoryMaxPages: 32 },
        dependencies: [],
      });
      manifests.push(JSON.stringify(await signAndAttach(body, pair)));
    }
    const tpm = swtpm ? await openTpm(swtpm.tcti) : undefined;
    const measurement = tpm
      ? await MeasurementLog.open(tpm, { path: join(dir, 'm.log'), resetPcr: true })
      : undefined;
    const plainKernel = new Kernel({ dataDir: join(dir, 'plain') });
    const trustedKernel = new Kernel({ dataDir: join(dir, 'trusted') });
    const loader = new TrustedLoader({
      kernel: trustedKernel,
      trustStore: store,
      policy: { allowedImports: ['wasi:cli/*'] },
      measurement,
    });
    // Warm both (transpile cache, compiled modules, liboqs) so the loop measures the steady state.
    await plainKernel.load({ name: 'warm', bytes, imports: ['wasi:cli/exit'], memoryMaxPages: 32 });
    await loader.load(bytes, manifests[0]!);
    const plain: number[] = [];
    const trusted: number[] = [];
    const verifyOnly: number[] = [];
    const added: number[] = [];
    for (let i = 1; i < N; i++) {
      let t = process.hrtime.bigint();
      await plainKernel.load({ name: `c${i}`, bytes, imports: ['wasi:cli/exit'], memoryMaxPages: 32 });
      plain.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      await loader.load(bytes, manifests[i]!);
      trusted.push(Number(process.hrtime.bigint() - t) / 1e6);
      // The work the loader adds in front of kernel.load, timed on its own: verify, then measure.
      t = process.hrtime.bigint();
      const v = await loader.verify(bytes, manifests[i]!);
      const tv = process.hrtime.bigint();
      await measurement?.measure(v.manifest.name, v.manifest.version, manifestDigest(manifests[i]!));
      const tm = process.hrtime.bigint();
      verifyOnly.push(Number(tv - t) / 1e6);
      added.push(Number(tm - t) / 1e6);
    }
    await plainKernel.stop();
    await trustedKernel.stop();
    await measurement?.close();
    await tpm?.close();
    const p = stats(plain);
    const tr = stats(trusted);
    const a = stats(added);
    return [
      {
        suite: SUITE,
        name: `added by the trusted loader per load (${tpm ? 'verify + TPM PCR extend + fsync of the event log, native addon on swtpm' : 'verify only: swtpm not installed'})`,
        unit: 'ms',
        median: round(a.median, 3),
        p99: round(a.p99, 3),
        baseline: { name: 'plain kernel.load of the same component', median: round(p.median, 3) },
        target: 'adds <= 2 ms',
        met: a.median <= 2,
        notes: `whole trusted load: median ${round(tr.median, 2)} ms, p99 ${round(tr.p99, 2)} ms (worker start dominates both)`,
      },
      {
        suite: SUITE,
        name: 'verification alone (schema, ML-DSA-65 + Ed25519, sha-256 of the component, policy, trust-store reload)',
        unit: 'ms',
        median: round(stats(verifyOnly).median, 3),
        p99: round(stats(verifyOnly).p99, 3),
      },
    ];
  } finally {
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
