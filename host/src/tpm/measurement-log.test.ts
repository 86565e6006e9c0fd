import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm } from '../../../test/harness/swtpm.js';
import {
  checkEventSequence,
  type MeasurementEvent,
  MeasurementLog,
  openTpm,
  parseAttest,
  readEventLog,
  replay,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  type Tpm,
  TpmError,
  type TpmKey,
  type TpmQuote,
  verifyQuote,
} from './index.js';
import { loadAddon } from './native.js';

// These tests provoke TPM errors on purpose and assert on the addon's own messages; tpm2-tss would also log
// each one to stderr. TSS2_LOG=all+warning (or +debug) brings its logs back when debugging.
process.env.TSS2_LOG ??= 'all+none';

const swtpm = await startSwtpm();
const addon = loadAddon();
if (!addon.ok && process.env.CI !== 'true') console.warn(`[tpm tests] ${addon.detail}: skipping`);
const enabled = swtpm !== null && (addon.ok || process.env.CI === 'true');

const dir = await mkdtemp(join(tmpdir(), 'camos-mlog-'));
afterAll(async () => {
  await swtpm?.stop();
  await rm(dir, { recursive: true, force: true });
});

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

const event = (index: number, digest: Buffer, pcr = 23): MeasurementEvent => ({
  index,
  pcr,
  digest: digest.toString('hex'),
  name: `component-${index}`,
  version: '1.0.0',
  time: new Date(0).toISOString(),
});

describe('replay', () => {
  it('starts from 32 zero bytes and chains new = sha256(old || digest)', () => {
    expect(replay([]).equals(Buffer.alloc(32))).toBe(true);
    const [d0, d1] = [randomBytes(32), randomBytes(32)];
    expect(replay([event(0, d0), event(1, d1)]).toString('hex')).toBe(
      sha256(sha256(Buffer.alloc(32), d0), d1).toString('hex'),
    );
  });

  it('depends on the order of events', () => {
    const [d0, d1] = [randomBytes(32), randomBytes(32)];
    expect(replay([event(0, d0), event(1, d1)]).equals(replay([event(0, d1), event(1, d0)]))).toBe(false);
  });

  it('checkEventSequence names gaps, foreign PCRs and bad digests', () => {
    const d = randomBytes(32);
    expect(checkEventSequence([event(0, d), event(1, d)], 23)).toBeUndefined();
    expect(checkEventSequence([event(0, d), event(2, d)], 23)).toMatch(/position 1 has index 2/);
    expect(checkEventSequence([event(0, d, 16)], 23)).toMatch(/PCR 16/);
    expect(checkEventSequence([{ ...event(0, d), digest: 'zz' }], 23)).toMatch(/hex/);
  });
});

describe.skipIf(!enabled)('measurement log and quotes, against a real swtpm', () => {
  let tpm: Tpm;
  let ak: TpmKey;
  let log: MeasurementLog;
  const logPath = join(dir, 'measurements.jsonl');
  const components = Array.from({ length: 6 }, (_, i) => ({
    name: `driver-${i}`,
    version: `0.${i}.0`,
    digest: sha256(randomBytes(64)).toString('hex'),
  }));

  async function freshQuote(nonce: Buffer): Promise<TpmQuote> {
    return tpm.quote(ak.handle, [0, 23], nonce);
  }

  beforeAll(async () => {
    tpm = await openTpm(swtpm!.tcti);
    ak = await tpm.createSigningKey({ restricted: true });
    log = await MeasurementLog.open(tpm, { path: logPath, resetPcr: true });
    for (const c of components) await log.measure(c.name, c.version, c.digest);
  });
  afterAll(async () => {
    await log?.close();
    await tpm?.close();
  });

  it('leaves the PCR equal to the replay of the event log on disk', async () => {
    const onDisk = await readEventLog(logPath);
    expect(onDisk).toHaveLength(components.length);
    expect(onDisk.map((e) => [e.index, e.pcr, e.name, e.version, e.digest])).toEqual(
      components.map((c, i) => [i, 23, c.name, c.version, c.digest]),
    );
    const pcr = await tpm.pcrRead('sha256', 23);
    expect(pcr.toString('hex')).toBe(replay(onDisk).toString('hex'));
    expect(log.expectedPcr().equals(pcr)).toBe(true);
  });

  it('reopens an existing log that matches the PCR, and refuses one that does not', async () => {
    const again = await MeasurementLog.open(tpm, { path: logPath });
    expect(again.events).toHaveLength(components.length);
    await again.close();

    const lines = (await readFile(logPath, 'utf8')).split('\n');
    const edited = JSON.parse(lines[2]!) as MeasurementEvent;
    edited.digest = sha256(Buffer.from('evil')).toString('hex');
    lines[2] = JSON.stringify(edited);
    const tamperedPath = join(dir, 'tampered.jsonl');
    await writeFile(tamperedPath, lines.join('\n'));
    const e = await MeasurementLog.open(tpm, { path: tamperedPath }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(TpmError);
    expect((e as TpmError).code).toBe('TPM_ERR_LOG_MISMATCH');
  });

  it('refuses to reset the PCR under a non-empty log', async () => {
    const e = await MeasurementLog.open(tpm, { path: logPath, resetPcr: true }).catch((err: unknown) => err);
    expect((e as TpmError).code).toBe('TPM_ERR_LOG_MISMATCH');
    expect((e as TpmError).message).toMatch(/append-only/);
  });

  it('rejects a digest that is not sha256 hex', async () => {
    const e = await log.measure('x', '1', 'abc').catch((err: unknown) => err);
    expect((e as TpmError).code).toBe('TPM_ERR_ARGUMENT');
    expect(log.events).toHaveLength(components.length);
  });

  it('produces a quote that verifies against the key and the replayed log', async () => {
    const nonce = randomBytes(32);
    const q = await freshQuote(nonce);
    const attest = parseAttest(q.attest);
    expect(attest.magic).toBe(TPM_GENERATED_VALUE);
    expect(attest.type).toBe(TPM_ST_ATTEST_QUOTE);
    expect(attest.extraData.equals(nonce)).toBe(true);
    expect(attest.quote?.pcrSelect).toEqual([{ hash: 0x000b, pcrs: [0, 23] }]);

    const events = await readEventLog(logPath);
    const result = verifyQuote({
      quote: q,
      publicKey: ak.pem,
      nonce,
      log: { pcr: 23, events },
      signerQualifiedName: ak.qualifiedName,
    });
    expect(result).toMatchObject({ ok: true });
    if (result.ok) expect(result.replayedLogPcr?.equals(await tpm.pcrRead('sha256', 23))).toBe(true);
  });

  it('detects a tampered log: changed digest, removed event, reordered events', async () => {
    const nonce = randomBytes(32);
    const q = await freshQuote(nonce);
    const events = await readEventLog(logPath);
    const check = (evs: MeasurementEvent[]) =>
      verifyQuote({ quote: q, publicKey: ak.spkiDer, nonce, log: { pcr: 23, events: evs } });
    const renumber = (evs: MeasurementEvent[]) => evs.map((e, i) => ({ ...e, index: i }));

    const changed = events.map((e, i) =>
      i === 3 ? { ...e, digest: sha256(Buffer.from('x')).toString('hex') } : e,
    );
    expect(check(changed)).toMatchObject({ ok: false, reason: 'log-mismatch' });

    const removedMiddle = events.filter((_, i) => i !== 2);
    expect(check(removedMiddle)).toMatchObject({ ok: false, reason: 'malformed-log' });
    expect(check(renumber(removedMiddle))).toMatchObject({ ok: false, reason: 'log-mismatch' });
    expect(check(events.slice(0, -1))).toMatchObject({ ok: false, reason: 'log-mismatch' });

    const swapped = [...events];
    [swapped[1], swapped[4]] = [swapped[4]!, swapped[1]!];
    expect(check(swapped)).toMatchObject({ ok: false, reason: 'malformed-log' });
    expect(check(renumber(swapped))).toMatchObject({ ok: false, reason: 'log-mismatch' });

    expect(check(events)).toMatchObject({ ok: true });
  });

  it('rejects a quote with a wrong nonce, altered bytes, a foreign key or a wrong signer', async () => {
    const nonce = randomBytes(32);
    const q = await freshQuote(nonce);
    const events = await readEventLog(logPath);
    const base = { quote: q, publicKey: ak.publicKey, nonce, log: { pcr: 23, events } };

    expect(verifyQuote({ ...base, nonce: randomBytes(32) })).toMatchObject({
      ok: false,
      reason: 'nonce-mismatch',
    });

    const altered = Buffer.from(q.attest);
    altered[altered.length - 1]! ^= 1;
    expect(verifyQuote({ ...base, quote: { ...q, attest: altered } })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });

    const other = await tpm.createSigningKey({ hierarchy: 'endorsement', restricted: true });
    expect(verifyQuote({ ...base, publicKey: other.pem })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });
    expect(verifyQuote({ ...base, signerQualifiedName: other.qualifiedName })).toMatchObject({
      ok: false,
      reason: 'wrong-signer',
    });
    await tpm.flushKey(other.handle);

    const lyingPcr0 = q.pcrValues.map((v) => (v.index === 0 ? { ...v, value: randomBytes(32) } : v));
    expect(verifyQuote({ ...base, quote: { ...q, pcrValues: lyingPcr0 } })).toMatchObject({
      ok: false,
      reason: 'pcr-digest-mismatch',
    });
  });

  it('sees a measurement made after the quote as a log mismatch for that quote', async () => {
    const nonce = randomBytes(32);
    const q = await freshQuote(nonce);
    await log.measure('late-driver', '9.9.9', sha256(randomBytes(8)).toString('hex'));
    const events = await readEventLog(logPath);
    expect(verifyQuote({ quote: q, publicKey: ak.pem, nonce, log: { pcr: 23, events } })).toMatchObject({
      ok: false,
      reason: 'log-mismatch',
    });
    const fresh = await freshQuote(nonce);
    expect(verifyQuote({ quote: fresh, publicKey: ak.pem, nonce, log: { pcr: 23, events } })).toMatchObject({
      ok: true,
    });
  });

  it('parseAttest rejects truncated input', async () => {
    const q = await freshQuote(randomBytes(16));
    expect(() => parseAttest(q.attest.subarray(0, q.attest.length - 3))).toThrow(/truncated/);
  });
});
