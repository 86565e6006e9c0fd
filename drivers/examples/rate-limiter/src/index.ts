/**
 * A per-agent token-bucket rate limiter (world `cam:kernel/driver`).
 *
 * Every agent has a bucket of `capacity` tokens that refills at `refill-per-sec`; a request takes tokens
 * and is allowed only if enough are left. Per-agent limits override the defaults from the config and are
 * stored durably in `cam:kernel/kv`; the buckets themselves live in memory and move to the new version
 * on a hot-swap (export/import-state), so a swap never hands every agent a full bucket.
 *
 * The `driver` world has no clock import: callers pass the time (`nowMs`, unix ms), which also makes the
 * limiter deterministic to test. Time going backwards is treated as no time passing.
 *
 * Ops (JSON payloads):
 *   take  {agent, nowMs, tokens?=1}            -> {allowed, remaining, retryAfterMs}
 *   limit {agent, capacity, refillPerSec}       -> {}       (durable per-agent override)
 *   peek  {agent, nowMs}                        -> {remaining, capacity}
 */
import { batch, get } from 'cam:kernel/kv@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import { fromUtf8, kernelError, lifecycle as makeLifecycle, utf8 } from '@cam-os/sdk/guest';

interface Limit {
  capacity: number;
  refillPerSec: number;
}
interface Bucket {
  tokens: number;
  atMs: number;
}

let defaults: Limit = { capacity: 10, refillPerSec: 5 };
let buckets: Record<string, Bucket> = {};

function positive(name: string, v: unknown, max = 1e9): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > max)
    throw kernelError('invalid-argument', `${name} must be a number in (0, ${max}]`);
  return n;
}

export const lifecycle = makeLifecycle<{ buckets: Record<string, Bucket> }>({
  configKeys: ['capacity', 'refill-per-sec'],
  init(config) {
    defaults = {
      capacity: config.capacity === undefined ? 10 : positive('capacity', config.capacity),
      refillPerSec:
        config['refill-per-sec'] === undefined ? 5 : positive('refill-per-sec', config['refill-per-sec']),
    };
  },
  health: () => ({ status: 'serving', checks: [['agents', String(Object.keys(buckets).length)]] }),
  exportState: () => ({ buckets }),
  importState(s) {
    buckets = s.buckets;
  },
});

function body(payload: Uint8Array): Record<string, unknown> {
  try {
    const v = JSON.parse(fromUtf8(payload)) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw kernelError('invalid-argument', 'payload must be a JSON object');
}

function agentOf(b: Record<string, unknown>): string {
  const a = b.agent;
  if (typeof a !== 'string' || a.length === 0 || a.length > 256)
    throw kernelError('invalid-argument', 'agent must be a string of 1-256 characters');
  return a;
}

function nowOf(b: Record<string, unknown>): number {
  const t = b.nowMs;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0)
    throw kernelError('invalid-argument', 'nowMs must be a unix time in ms');
  return t;
}

function limitOf(agent: string): Limit {
  const raw = get('limits', agent);
  return raw === undefined ? defaults : (JSON.parse(fromUtf8(raw)) as Limit);
}

/** The bucket of `agent` refilled up to `now`. */
function refill(agent: string, limit: Limit, now: number): Bucket {
  const b = buckets[agent] ?? { tokens: limit.capacity, atMs: now };
  const elapsed = Math.max(0, now - b.atMs) / 1000;
  const next = {
    tokens: Math.min(limit.capacity, b.tokens + elapsed * limit.refillPerSec),
    atMs: Math.max(now, b.atMs),
  };
  buckets[agent] = next;
  return next;
}

export const handler = {
  handle(op: string, payload: Uint8Array): Uint8Array {
    const b = body(payload);
    if (op === 'take') {
      const agent = agentOf(b);
      const limit = limitOf(agent);
      const want = b.tokens === undefined ? 1 : positive('tokens', b.tokens, limit.capacity);
      const bucket = refill(agent, limit, nowOf(b));
      const allowed = bucket.tokens >= want;
      if (allowed) bucket.tokens -= want;
      else log('debug', 'rate limited', [['agent', agent]]);
      const retryAfterMs = allowed ? 0 : Math.ceil(((want - bucket.tokens) / limit.refillPerSec) * 1000);
      return utf8(JSON.stringify({ allowed, remaining: Math.floor(bucket.tokens), retryAfterMs }));
    }
    if (op === 'limit') {
      const agent = agentOf(b);
      const limit = {
        capacity: positive('capacity', b.capacity),
        refillPerSec: positive('refillPerSec', b.refillPerSec),
      };
      batch('limits', [{ tag: 'put', val: { key: agent, value: utf8(JSON.stringify(limit)) } }]);
      const cur = buckets[agent];
      if (cur) cur.tokens = Math.min(cur.tokens, limit.capacity);
      log('info', 'limit set', [
        ['agent', agent],
        ['capacity', String(limit.capacity)],
      ]);
      return utf8('{}');
    }
    if (op === 'peek') {
      const agent = agentOf(b);
      const limit = limitOf(agent);
      const bucket = refill(agent, limit, nowOf(b));
      return utf8(JSON.stringify({ remaining: Math.floor(bucket.tokens), capacity: limit.capacity }));
    }
    throw kernelError('unimplemented', `unknown op '${op}' (take, limit, peek)`);
  },
};
