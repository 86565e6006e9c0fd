// Verifier side of TPM2_Quote: parse TPMS_ATTEST, check the signature, the nonce and the PCR digest,
// and hold the quoted application PCR against the replayed measurement log.

import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { TpmError } from './errors.js';
import { checkEventSequence, type MeasurementEvent, replay } from './measurement-log.js';

export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;
const TPM_ALG_SHA256 = 0x000b;

export interface PcrSelection {
  /** TPM_ALG_ID of the bank (0x000b = sha256). */
  hash: number;
  pcrs: number[];
}

export interface TpmsAttest {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clockInfo: { clock: bigint; resetCount: number; restartCount: number; safe: boolean };
  firmwareVersion: bigint;
  /** Present when type is TPM_ST_ATTEST_QUOTE. */
  quote?: { pcrSelect: PcrSelection[]; pcrDigest: Buffer };
}

class Reader {
  #off = 0;
  constructor(private readonly buf: Buffer) {}
  #need(n: number, what: string): void {
    if (this.#off + n > this.buf.length) {
      throw new TpmError(
        'TPM_ERR_ATTEST_FORMAT',
        `TPMS_ATTEST truncated reading ${what} at byte ${this.#off} (${this.buf.length} bytes)`,
      );
    }
  }
  u8(what: string): number {
    this.#need(1, what);
    return this.buf.readUInt8(this.#off++);
  }
  u16(what: string): number {
    this.#need(2, what);
    const v = this.buf.readUInt16BE(this.#off);
    this.#off += 2;
    return v;
  }
  u32(what: string): number {
    this.#need(4, what);
    const v = this.buf.readUInt32BE(this.#off);
    this.#off += 4;
    return v;
  }
  u64(what: string): bigint {
    this.#need(8, what);
    const v = this.buf.readBigUInt64BE(this.#off);
    this.#off += 8;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.#need(n, what);
    const v = Buffer.from(this.buf.subarray(this.#off, this.#off + n));
    this.#off += n;
    return v;
  }
  tpm2b(what: string): Buffer {
    return this.bytes(this.u16(`${what}.size`), what);
  }
  get remaining(): number {
    return this.buf.length - this.#off;
  }
}

/** Parses a marshalled TPMS_ATTEST (TPM 2.0 Part 2, 10.12.12); throws TPM_ERR_ATTEST_FORMAT when malformed. */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  const r = new Reader(Buffer.from(bytes));
  const magic = r.u32('magic');
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner');
  const extraData = r.tpm2b('extraData');
  const clockInfo = {
    clock: r.u64('clockInfo.clock'),
    resetCount: r.u32('clockInfo.resetCount'),
    restartCount: r.u32('clockInfo.restartCount'),
    safe: r.u8('clockInfo.safe') !== 0,
  };
  const firmwareVersion = r.u64('firmwareVersion');
  const attest: TpmsAttest = { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion };
  if (type === TPM_ST_ATTEST_QUOTE) {
    const count = r.u32('pcrSelect.count');
    if (count > 16) throw new TpmError('TPM_ERR_ATTEST_FORMAT', `TPMS_ATTEST selects ${count} PCR banks`);
    const pcrSelect: PcrSelection[] = [];
    for (let i = 0; i < count; i++) {
      const hash = r.u16('pcrSelect.hash');
      const bitmap = r.bytes(r.u8('pcrSelect.sizeofSelect'), 'pcrSelect.pcrSelect');
      const pcrs: number[] = [];
      for (let bit = 0; bit < bitmap.length * 8; bit++) {
        if (((bitmap[bit >> 3] ?? 0) >> (bit & 7)) & 1) pcrs.push(bit);
      }
      pcrSelect.push({ hash, pcrs });
    }
    attest.quote = { pcrSelect, pcrDigest: r.tpm2b('pcrDigest') };
    if (r.remaining !== 0) {
      throw new TpmError(
        'TPM_ERR_ATTEST_FORMAT',
        `TPMS_ATTEST has ${r.remaining} trailing bytes after the quote`,
      );
    }
  }
  return attest;
}

export type QuoteFailureReason =
  | 'bad-signature'
  | 'malformed-attest'
  | 'not-a-quote'
  | 'nonce-mismatch'
  | 'wrong-signer'
  | 'unsupported-selection'
  | 'missing-pcr-value'
  | 'pcr-digest-mismatch'
  | 'malformed-log'
  | 'log-pcr-not-quoted'
  | 'log-mismatch';

export type QuoteVerification =
  | { ok: true; attest: TpmsAttest; pcrValues: Map<number, Buffer>; replayedLogPcr?: Buffer }
  | { ok: false; reason: QuoteFailureReason; detail: string };

export interface VerifyQuoteInput {
  quote: {
    attest: Uint8Array;
    /** DER ECDSA (what Tpm.quote returns). */
    signature: Uint8Array;
    /** The PCR values the quoting side reports; needed for every quoted PCR not covered by `log`. */
    pcrValues?: readonly { index: number; value: Uint8Array }[];
  };
  /** The attestation key: KeyObject, PEM, or SPKI DER. */
  publicKey: KeyObject | string | Uint8Array;
  /** The nonce the verifier chose for this quote. */
  nonce: Uint8Array;
  /** When given, the quoted value of `log.pcr` must equal the replay of `log.events`. */
  log?: { pcr: number; events: readonly MeasurementEvent[] };
  /** When given, the quote must name this key (TpmKey.qualifiedName) as its signer. */
  signerQualifiedName?: Uint8Array;
}

function toKey(k: KeyObject | string | Uint8Array): KeyObject {
  if (typeof k === 'string') return createPublicKey(k);
  if (k instanceof Uint8Array) return createPublicKey({ key: Buffer.from(k), format: 'der', type: 'spki' });
  return k;
}

function pcrDigest(values: readonly Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const v of values) h.update(v);
  return h.digest();
}

const fail = (reason: QuoteFailureReason, detail: string): QuoteVerification => ({
  ok: false,
  reason,
  detail,
});

/**
 * Verifies a TPM quote; the result says what failed. Checks, in order: the ECDSA signature over the
 * attest bytes, the structure (magic, ATTEST_QUOTE), the nonce, the signer, the PCR digest, and finally
 * that the log replays to the quoted application PCR.
 */
export function verifyQuote(input: VerifyQuoteInput): QuoteVerification {
  const attestBytes = Buffer.from(input.quote.attest);
  let key: KeyObject;
  try {
    key = toKey(input.publicKey);
  } catch (e) {
    throw new TpmError('TPM_ERR_ARGUMENT', `publicKey is not a usable public key: ${(e as Error).message}`);
  }
  let sigOk = false;
  try {
    sigOk = verify('sha256', attestBytes, key, Buffer.from(input.quote.signature));
  } catch {
    sigOk = false;
  }
  if (!sigOk)
    return fail('bad-signature', 'the signature does not verify over the attest bytes with this key');

  let attest: TpmsAttest;
  try {
    attest = parseAttest(attestBytes);
  } catch (e) {
    return fail('malformed-attest', (e as Error).message);
  }
  if (attest.magic !== TPM_GENERATED_VALUE) {
    return fail('not-a-quote', `magic is 0x${attest.magic.toString(16)}, not TPM_GENERATED_VALUE 0xff544347`);
  }
  if (attest.type !== TPM_ST_ATTEST_QUOTE || attest.quote === undefined) {
    return fail('not-a-quote', `type is 0x${attest.type.toString(16)}, not TPM_ST_ATTEST_QUOTE 0x8018`);
  }
  if (!attest.extraData.equals(Buffer.from(input.nonce))) {
    return fail('nonce-mismatch', 'extraData differs from the nonce (stale or replayed quote)');
  }
  if (input.signerQualifiedName && !attest.qualifiedSigner.equals(Buffer.from(input.signerQualifiedName))) {
    return fail('wrong-signer', 'qualifiedSigner is not the expected key');
  }

  const banks = attest.quote.pcrSelect.filter((s) => s.pcrs.length > 0);
  const bank = banks[0];
  if (banks.length !== 1 || bank === undefined || bank.hash !== TPM_ALG_SHA256) {
    return fail('unsupported-selection', 'only quotes over exactly one bank, sha256, are supported');
  }

  const log = input.log;
  let replayed: Buffer | undefined;
  if (log !== undefined) {
    const problem = checkEventSequence(log.events, log.pcr);
    if (problem !== undefined) return fail('malformed-log', problem);
    if (!bank.pcrs.includes(log.pcr))
      return fail('log-pcr-not-quoted', `the quote does not cover PCR ${log.pcr}`);
    replayed = replay(log.events);
  }

  const reported = new Map<number, Buffer>();
  for (const { index, value } of input.quote.pcrValues ?? []) reported.set(index, Buffer.from(value));
  // The log's PCR takes the replayed value, so the log is held against what the TPM signed, not
  // against whatever value the quoting side reports.
  const expected = new Map<number, Buffer>();
  for (const i of bank.pcrs) {
    const v = replayed !== undefined && i === log?.pcr ? replayed : reported.get(i);
    if (v === undefined || v.length !== 32)
      return fail('missing-pcr-value', `no 32-byte value for quoted PCR ${i}`);
    expected.set(i, v);
  }
  // The TPM hashes the selected PCRs in ascending index order within the bank.
  if (pcrDigest([...expected.values()]).equals(attest.quote.pcrDigest)) {
    return { ok: true, attest, pcrValues: expected, ...(replayed && { replayedLogPcr: replayed }) };
  }
  if (log === undefined || replayed === undefined) {
    return fail('pcr-digest-mismatch', 'the reported PCR values do not hash to the quoted pcrDigest');
  }
  const reportedAll = bank.pcrs.map((i) => reported.get(i));
  const quotedLogPcr = reported.get(log.pcr);
  if (
    reportedAll.every((v) => v !== undefined) &&
    pcrDigest(reportedAll as Buffer[]).equals(attest.quote.pcrDigest)
  ) {
    return fail(
      'log-mismatch',
      `the event log (${log.events.length} events) replays PCR ${log.pcr} to ${replayed.toString('hex')}, ` +
        `but the TPM quoted ${quotedLogPcr?.toString('hex')}`,
    );
  }
  return fail(
    'pcr-digest-mismatch',
    `the replayed event log (${log.events.length} events) and the reported PCR values do not hash to the quoted pcrDigest`,
  );
}
