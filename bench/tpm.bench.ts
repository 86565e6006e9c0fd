/**
 * TPM 2.0 through the camos_tpm addon (tpm2-tss ESAPI, one AsyncWorker per command) against a private swtpm.
 *
 * Suite 'tpm': latency with one call in flight, µs (median, p99), sequential calls after a warm-up:
 * - pcrExtend through the addon; baseline: the same extend through `tpm2_pcrextend` (a process per call,
 *   TPM2TOOLS_TCTI pointing at the same swtpm), measured in the same run. The PCR value after the tool
 *   runs is checked against the expected chain, so the baseline did the same work.
 * - sign (ECDSA P-256 over a sha256 digest, key in the TPM); baseline: node:crypto ECDSA P-256 sign with a
 *   software key. That is a reference for what the TPM round trip costs, not an alternative: the kernel
 *   never signs with a software key in place of the TPM.
 * - pcrRead, quote (PCRs 0 and 23) and MeasurementLog.measure (extend + append + fdatasync), no baseline.
 * - process CPU µs per pcrExtend (all threads of this process: JS, the libuv pool worker, TCTI socket I/O).
 *
 * swtpm is software: a discrete TPM chip is slower (typically milliseconds per extend and tens of
 * milliseconds per ECC signature), so these figures are the cost of the software stack, not of a chip.
 *
 * Needs swtpm, tpm2-tools and the built addon (skipped with a note otherwise). Run: `npm run bench`, or
 * bundle this file with esbuild and call run().
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign as softwareSign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { MeasurementLog, openTpm } from '../host/src/tpm/index.js';
import { loadAddon } from '../host/src/tpm/native.js';
import { startSwtpm } from '../test/harness/swtpm.js';

type BenchResult = {
  suite: string;
  name: string;
  unit: string;
  median: number;
  p99?: number;
  baseline?: { name: string; median: number };
  notes?: string;
};

const SUITE = 'tpm';
const WARMUP = 20;
const ADDON_ITERATIONS = 500;
const TOOL_ITERATIONS = 60;
const PCR = 16;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function timeEach(
  n: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ median: number; p99: number }> {
  for (let i = 0; i < WARMUP; i++) await op(i);
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op(i);
    us.push((performance.now() - t0) * 1000);
  }
  us.sort((a, b) => a - b);
  return { median: quantile(us, 0.5), p99: quantile(us, 0.99) };
}

function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

const round = (x: number) => Math.round(x * 10) / 10;

function skipped(reason: string): BenchResult[] {
  console.warn(`[tpm bench] skipped: ${reason}`);
  return [{ suite: SUITE, name: 'skipped', unit: 'µs', median: Number.NaN, notes: reason }];
}

export async function run(): Promise<BenchResult[]> {
  const addon = loadAddon();
  if (!addon.ok) return skipped(addon.detail);
  const swtpm = await startSwtpm();
  if (swtpm === null) return skipped('swtpm is not installed');
  const dir = await mkdtemp(join(tmpdir(), 'camos-tpm-bench-'));
  const results: BenchResult[] = [];
  try {
    const tpm = await openTpm(swtpm.tcti);
    const digests = Array.from({ length: ADDON_ITERATIONS + WARMUP }, () => randomBytes(32));

    await tpm.pcrReset(PCR);
    const extend = await timeEach(ADDON_ITERATIONS, (i) => tpm.pcrExtend(PCR, digests[i % digests.length]!));

    // CPU this process spends per extend while calls run back to back (swtpm's own CPU is not counted).
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (let i = 0; i < ADDON_ITERATIONS; i++) await tpm.pcrExtend(PCR, digests[i]!);
    const wallUs = (performance.now() - wall0) * 1000;
    const cpu = process.cpuUsage(cpu0);
    const processCpuPerCall = (cpu.user + cpu.system) / ADDON_ITERATIONS;

    // Baseline: tpm2_pcrextend, one process per extend, against the same swtpm.
    await tpm.pcrReset(PCR);
    const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti };
    const toolDigests = Array.from({ length: TOOL_ITERATIONS + WARMUP }, () => randomBytes(32));
    const tool = await timeEach(TOOL_ITERATIONS, (i) =>
      runTool(
        'tpm2_pcrextend',
        [`${PCR}:sha256=${toolDigests[i % toolDigests.length]!.toString('hex')}`],
        env,
      ),
    );
    // Warm-up used indices 0..WARMUP-1, the measured loop 0..TOOL_ITERATIONS-1.
    const toolOrder = [...toolDigests.slice(0, WARMUP), ...toolDigests.slice(0, TOOL_ITERATIONS)];
    const expected = toolOrder.reduce((acc, d) => sha256(acc, d), Buffer.alloc(32));
    if (!(await tpm.pcrRead('sha256', PCR)).equals(expected)) {
      throw new Error('tpm2_pcrextend baseline did not produce the expected PCR chain');
    }

    results.push({
      suite: SUITE,
      name: 'pcrExtend (addon, async)',
      unit: 'µs',
      median: round(extend.median),
      p99: round(extend.p99),
      baseline: { name: 'tpm2_pcrextend (process spawn)', median: round(tool.median) },
      notes:
        `tpm2_pcrextend p99 ${round(tool.p99)} µs; ${round(tool.median / extend.median)}x slower. ` +
        `${ADDON_ITERATIONS} addon calls, ${TOOL_ITERATIONS} tool calls; swtpm ${swtpm.tcti}`,
    });
    results.push({
      suite: SUITE,
      name: 'pcrExtend process CPU per call',
      unit: 'µs',
      median: round(processCpuPerCall),
      notes: `all threads, back-to-back calls; wall ${round(wallUs / ADDON_ITERATIONS)} µs per call (includes swtpm)`,
    });

    const key = await tpm.createSigningKey();
    const signDigests = Array.from({ length: 64 }, () => randomBytes(32));
    const signed = await timeEach(ADDON_ITERATIONS, (i) => tpm.sign(key.handle, signDigests[i % 64]!));
    const soft = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const data = Array.from({ length: 64 }, () => randomBytes(64));
    const softSigned = await timeEach(ADDON_ITERATIONS, async (i) =>
      softwareSign('sha256', data[i % 64]!, soft.privateKey),
    );
    results.push({
      suite: SUITE,
      name: 'sign ECDSA P-256 (addon, TPM key)',
      unit: 'µs',
      median: round(signed.median),
      p99: round(signed.p99),
      baseline: { name: 'node:crypto ECDSA P-256 sign (software key)', median: round(softSigned.median) },
      notes:
        'the baseline is a reference for the TPM round-trip cost, not a substitute: the kernel never signs in software',
    });

    const read = await timeEach(ADDON_ITERATIONS, () => tpm.pcrRead('sha256', 23));
    results.push({
      suite: SUITE,
      name: 'pcrRead (addon)',
      unit: 'µs',
      median: round(read.median),
      p99: round(read.p99),
    });

    const ak = await tpm.createSigningKey({ restricted: true });
    const quoted = await timeEach(200, () => tpm.quote(ak.handle, [0, 23], randomBytes(32)));
    results.push({
      suite: SUITE,
      name: 'quote PCRs 0+23 (addon, incl. PCR read)',
      unit: 'µs',
      median: round(quoted.median),
      p99: round(quoted.p99),
    });

    const log = await MeasurementLog.open(tpm, { path: join(dir, 'log.jsonl'), pcr: PCR, resetPcr: true });
    const measured = await timeEach(200, (i) =>
      log.measure(`c${i}`, '1.0.0', sha256(Buffer.from([i])).toString('hex')),
    );
    await log.close();
    results.push({
      suite: SUITE,
      name: 'MeasurementLog.measure (extend + append + fdatasync)',
      unit: 'µs',
      median: round(measured.median),
      p99: round(measured.p99),
    });

    await tpm.close();
  } finally {
    await swtpm.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.table(await run());
}
