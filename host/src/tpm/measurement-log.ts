// Measured loading: every component the kernel loads is extended into an application PCR and recorded
// in an append-only JSON-lines event log, so a verifier can replay the log against a TPM quote.

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { TpmError } from './errors.js';
import type { Tpm } from './tpm.js';

export const DEFAULT_APP_PCR = 23;

export interface MeasurementEvent {
  /** Position in the log, 0-based and contiguous. */
  index: number;
  pcr: number;
  /** sha256 of the component, lowercase hex (64 chars); this exact value is what was extended. */
  digest: string;
  name: string;
  version: string;
  /** ISO-8601 time of the measurement. */
  time: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The PCR value the events produce from a freshly reset PCR: start at 32 zero bytes, then
 * new = sha256(old || digest) per event, in log order.
 */
export function replay(events: readonly MeasurementEvent[]): Buffer {
  let pcr = Buffer.alloc(32);
  for (const e of events) {
    pcr = createHash('sha256').update(pcr).update(Buffer.from(e.digest, 'hex')).digest();
  }
  return pcr;
}

/** Why these events are not a well-formed log for `pcr`, or undefined when they are. */
export function checkEventSequence(events: readonly MeasurementEvent[], pcr: number): string | undefined {
  for (const [i, e] of events.entries()) {
    if (e.index !== i)
      return `event at position ${i} has index ${e.index} (removed, inserted or reordered events)`;
    if (e.pcr !== pcr) return `event ${i} is for PCR ${e.pcr}, not PCR ${pcr}`;
    if (!HEX64.test(e.digest)) return `event ${i} digest is not 64 lowercase hex characters`;
  }
  return undefined;
}

function parseEvent(line: string, lineNo: number, path: string): MeasurementEvent {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new TpmError('TPM_ERR_LOG_FORMAT', `${path}:${lineNo}: not JSON (${(e as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  const ok =
    typeof v === 'object' &&
    v !== null &&
    Number.isInteger(o.index) &&
    Number.isInteger(o.pcr) &&
    typeof o.digest === 'string' &&
    HEX64.test(o.digest) &&
    typeof o.name === 'string' &&
    typeof o.version === 'string' &&
    typeof o.time === 'string';
  if (!ok) {
    throw new TpmError(
      'TPM_ERR_LOG_FORMAT',
      `${path}:${lineNo}: not a measurement event {index, pcr, digest (64 hex), name, version, time}`,
    );
  }
  return {
    index: o.index as number,
    pcr: o.pcr as number,
    digest: o.digest as string,
    name: o.name as string,
    version: o.version as string,
    time: o.time as string,
  };
}

/** Reads a JSON-lines event log; a missing file is an empty log. */
export async function readEventLog(path: string): Promise<MeasurementEvent[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const lines = text.split('\n');
  // A crash mid-append leaves a last line without its newline; that is corruption, not an event.
  if (lines.at(-1) !== '') {
    throw new TpmError('TPM_ERR_LOG_FORMAT', `${path}: last line is incomplete (no trailing newline)`);
  }
  return lines.slice(0, -1).map((l, i) => parseEvent(l, i + 1, path));
}

export interface MeasurementLogOptions {
  /** Append-only JSON-lines file; created if missing. */
  path: string;
  /** Application PCR; default 23. */
  pcr?: number;
  /**
   * Reset the PCR before use. Only allowed with an empty or missing log, because the log is never
   * rewritten: a fresh PCR needs a fresh log file.
   */
  resetPcr?: boolean;
}

export class MeasurementLog {
  readonly path: string;
  readonly pcr: number;
  readonly #tpm: Tpm;
  readonly #file: FileHandle;
  readonly #events: MeasurementEvent[];
  #tail: Promise<unknown> = Promise.resolve();
  #broken: string | undefined;

  private constructor(tpm: Tpm, file: FileHandle, path: string, pcr: number, events: MeasurementEvent[]) {
    this.#tpm = tpm;
    this.#file = file;
    this.path = path;
    this.pcr = pcr;
    this.#events = events;
  }

  /**
   * Opens (or starts) the log and checks that it replays to the PCR's current value, so measurements are
   * never appended to a log that no longer describes the PCR.
   */
  static async open(tpm: Tpm, options: MeasurementLogOptions): Promise<MeasurementLog> {
    const pcr = options.pcr ?? DEFAULT_APP_PCR;
    const events = await readEventLog(options.path);
    const problem = checkEventSequence(events, pcr);
    if (problem !== undefined) throw new TpmError('TPM_ERR_LOG_FORMAT', `${options.path}: ${problem}`);
    if (options.resetPcr) {
      if (events.length > 0) {
        throw new TpmError(
          'TPM_ERR_LOG_MISMATCH',
          `refusing to reset PCR ${pcr}: ${options.path} already holds ${events.length} events and is append-only; ` +
            'use a new log file',
        );
      }
      await tpm.pcrReset(pcr);
    }
    const actual = await tpm.pcrRead('sha256', pcr);
    const expected = replay(events);
    if (!actual.equals(expected)) {
      throw new TpmError(
        'TPM_ERR_LOG_MISMATCH',
        `PCR ${pcr} is ${actual.toString('hex')} but ${options.path} (${events.length} events) replays to ` +
          `${expected.toString('hex')}: the log does not describe this PCR (TPM rebooted, PCR extended elsewhere, ` +
          'or log edited)',
      );
    }
    // O_APPEND: every write lands at the end, whatever else has the file open.
    const file = await open(options.path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o644);
    return new MeasurementLog(tpm, file, options.path, pcr, events);
  }

  /** The events so far, in order. */
  get events(): readonly MeasurementEvent[] {
    return this.#events;
  }

  /** The PCR value the log predicts. */
  expectedPcr(): Buffer {
    return replay(this.#events);
  }

  /**
   * Extends the PCR with `digestHex` (the component's sha256), then appends the event. Calls are applied
   * one at a time in call order, so log order is extend order.
   */
  measure(name: string, version: string, digestHex: string): Promise<MeasurementEvent> {
    const digest = digestHex.toLowerCase();
    const run = async (): Promise<MeasurementEvent> => {
      if (this.#broken !== undefined) throw new TpmError('TPM_ERR_LOG_BROKEN', this.#broken);
      if (!HEX64.test(digest)) {
        throw new TpmError(
          'TPM_ERR_ARGUMENT',
          `digest must be 64 hex characters (sha256), got '${digestHex}'`,
        );
      }
      if (typeof name !== 'string' || typeof version !== 'string') {
        throw new TpmError('TPM_ERR_ARGUMENT', 'name and version must be strings');
      }
      const event: MeasurementEvent = {
        index: this.#events.length,
        pcr: this.pcr,
        digest,
        name,
        version,
        time: new Date().toISOString(),
      };
      // Extend first: if the process dies before the append, the PCR is ahead of the log and every later
      // verification fails, which is the safe direction (an unlogged load can never pass as logged).
      await this.#tpm.pcrExtend(this.pcr, Buffer.from(digest, 'hex'));
      try {
        await this.#file.appendFile(`${JSON.stringify(event)}\n`, 'utf8');
        await this.#file.datasync();
      } catch (e) {
        this.#broken =
          `PCR ${this.pcr} was extended for event ${event.index} (${name}@${version}) but ${this.path} could not ` +
          `record it (${(e as Error).message}); the log no longer matches the PCR`;
        throw new TpmError('TPM_ERR_LOG_BROKEN', this.#broken, { cause: e });
      }
      this.#events.push(event);
      return event;
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Waits for pending measurements and closes the file (not the TPM). */
  async close(): Promise<void> {
    await this.#tail;
    await this.#file.close();
  }
}
