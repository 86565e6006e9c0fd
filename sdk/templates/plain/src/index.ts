/**
 * __NAME__: a CAM-OS driver (world `cam:kernel/driver`). The kernel reaches it through
 * `handler.handle(op, payload)`; payloads are UTF-8 JSON here.
 *
 *   echo          -> the payload, unchanged
 *   put {key,value} -> stores value under key (durable: cam:kernel/kv)
 *   get {key}     -> {value} or not-found
 *   stats         -> {calls}: calls since the first load (kept across hot-swaps by export/import-state)
 */
import { batch, get } from 'cam:kernel/kv@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import { fromUtf8, kernelError, lifecycle as makeLifecycle, utf8 } from '@cam-os/sdk/guest';

const PARTITION = 'values';
let prefix = '';
let calls = 0;

export const lifecycle = makeLifecycle<{ calls: number }>({
  configKeys: ['prefix'],
  init(config) {
    prefix = config.prefix ?? '';
  },
  exportState: () => ({ calls }),
  importState(state) {
    calls = state.calls;
  },
});

function parse(payload: Uint8Array): Record<string, unknown> {
  try {
    const v = JSON.parse(fromUtf8(payload)) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw kernelError('invalid-argument', 'payload must be a JSON object');
}

function field(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v.length === 0)
    throw kernelError('invalid-argument', `"${name}" must be a non-empty string`);
  return v;
}

export const handler = {
  handle(op: string, payload: Uint8Array): Uint8Array {
    calls++;
    switch (op) {
      case 'echo':
        return payload;
      case 'put': {
        const body = parse(payload);
        const key = prefix + field(body, 'key');
        batch(PARTITION, [{ tag: 'put', val: { key, value: utf8(field(body, 'value')) } }]);
        log('info', 'stored', [['key', key]]);
        return utf8('{}');
      }
      case 'get': {
        const key = prefix + field(parse(payload), 'key');
        const value = get(PARTITION, key);
        if (value === undefined) throw kernelError('not-found', `no value for '${key}'`);
        return utf8(JSON.stringify({ value: fromUtf8(value) }));
      }
      case 'stats':
        return utf8(JSON.stringify({ calls }));
      default:
        throw kernelError('unimplemented', `unknown op '${op}' (known: echo, put, get, stats)`);
    }
  },
};
