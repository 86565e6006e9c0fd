/**
 * The scheduler component (world `cam:kernel/scheduler-component@0.1.0`): ranks the kernel's whole queue in
 * one call with the triple-helix scoring of triple-helix.ts. Its only state is the dimension weights, which
 * survive hot-swap through export-state / import-state.
 *
 * Configuration (`init`): `weight.urgency`, `weight.importance`, `weight.efficiency`, `weight.energy`,
 * `weight.trust` — decimal numbers >= 0; unnamed weights keep CAM-OS's defaults (0.4 / 0.3 / 0.2 / 0.05 /
 * 0.05) and the set is normalised to sum to 1.0. Any other key is invalid-argument.
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import {
  DEFAULT_WEIGHTS,
  DIMENSION_NAMES,
  type Dimensions,
  invalid,
  normalizeWeights,
  type QueuedTask,
  type Ranking,
  type RunningTask,
  rank,
} from './triple-helix.js';

const STATE_FORMAT = 1;

let weights: Dimensions = { ...DEFAULT_WEIGHTS };
let initialized = false;
let rounds = 0;
let lastQueue = 0;

function fmt(w: Dimensions): Array<[string, string]> {
  return DIMENSION_NAMES.map((n): [string, string] => [`weight.${n}`, String(w[n])]);
}

export const lifecycle = {
  init(config: Array<[string, string]>): void {
    if (initialized) throw { tag: 'failed-precondition', val: 'init was already called' };
    const w: Dimensions = { ...DEFAULT_WEIGHTS };
    for (const [key, value] of config) {
      const name = key.startsWith('weight.') ? key.slice(7) : '';
      if (!(DIMENSION_NAMES as readonly string[]).includes(name)) {
        throw invalid(
          `unknown config key '${key}' (known: ${DIMENSION_NAMES.map((d) => `weight.${d}`).join(', ')})`,
        );
      }
      const v = value.trim() === '' ? Number.NaN : Number(value);
      w[name as keyof Dimensions] = v;
    }
    weights = normalizeWeights(w);
    initialized = true;
    log('info', 'scheduler initialised', fmt(weights));
  },

  health() {
    return {
      status: 'serving',
      detail: '',
      checks: [
        ['initialized', String(initialized)],
        ['rounds', String(rounds)],
        ['last-queue', String(lastQueue)],
      ],
    };
  },

  exportState(): Uint8Array {
    if (!initialized) throw { tag: 'failed-precondition', val: 'export-state before init' };
    return new TextEncoder().encode(JSON.stringify({ format: STATE_FORMAT, weights }));
  },

  importState(state: Uint8Array): void {
    let parsed: { format?: unknown; weights?: Dimensions };
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw invalid('state is not the JSON this component exports');
    }
    if (typeof parsed?.format !== 'number') throw invalid('state has no format number');
    if (parsed.format > STATE_FORMAT) {
      throw { tag: 'unimplemented', val: `state format ${parsed.format} is newer than ${STATE_FORMAT}` };
    }
    weights = normalizeWeights(parsed.weights as Dimensions);
    log('info', 'scheduler state imported', fmt(weights));
  },
};

export const scheduler = {
  rank(queue: QueuedTask[], running: RunningTask[]): Ranking {
    const ignoredHints: string[] = [];
    const result = rank(queue, running, { weights, nowMs: Number(nowMs()), ignoredHints });
    rounds++;
    lastQueue = queue.length;
    if (ignoredHints.length > 0) {
      // Reported, not refused: one submitter's malformed hint must not stall the whole queue.
      log('warn', 'ignored metadata hints that are not numbers in 0.0-1.0', [
        ['count', String(ignoredHints.length)],
        ['first', ignoredHints.slice(0, 5).join('; ')],
      ]);
    }
    return result;
  },

  setWeights(w: Dimensions): Dimensions {
    weights = normalizeWeights(w);
    log('info', 'scheduler weights changed', fmt(weights));
    return weights;
  },

  getWeights(): Dimensions {
    return weights;
  },
};
