/**
 * Request checking and value conversion between the CAM-OS wire shapes (proto-loader objects: snake_case
 * fields, int64 as number, enums as names, maps as objects, bytes as Buffer) and the WIT shapes the
 * components take (jco: camelCase records, u64 as bigint, options as value-or-undefined, maps as
 * [key, value] lists).
 *
 * Requests come from the network, so nothing here trusts a type: every accessor checks what it reads and
 * throws KERNEL_ERR_REQUEST_INVALID naming the syscall and the field.
 */
import { KernelError } from '../errors.js';

export type StringMap = Array<[string, string]>;

export function invalid(syscall: string, message: string): KernelError {
  return new KernelError('KERNEL_ERR_REQUEST_INVALID', `${syscall}: ${message}`);
}

export function tooLarge(syscall: string, message: string): KernelError {
  return new KernelError('KERNEL_ERR_PAYLOAD_TOO_LARGE', `${syscall}: ${message}`);
}

interface StrOpts {
  required?: boolean;
  /** Maximum length in UTF-8 bytes. */
  maxBytes?: number;
  pattern?: RegExp;
  patternText?: string;
}

/** Typed, checked access to one request object. */
export class Fields {
  private readonly o: Record<string, unknown>;

  constructor(
    readonly syscall: string,
    value: unknown,
  ) {
    if (!value || typeof value !== 'object' || Array.isArray(value))
      throw invalid(syscall, 'request must be a message');
    this.o = value as Record<string, unknown>;
  }

  private bad(field: string, problem: string): KernelError {
    return invalid(this.syscall, `${field} ${problem}`);
  }

  str(field: string, opts: StrOpts = {}): string {
    const v = this.o[field] ?? '';
    if (typeof v !== 'string') throw this.bad(field, 'must be a string');
    if (opts.required && v.length === 0) throw this.bad(field, 'is required');
    const max = opts.maxBytes ?? 65_536;
    if (v.length > max || Buffer.byteLength(v) > max) throw this.bad(field, `is longer than ${max} bytes`);
    if (v.length > 0 && opts.pattern && !opts.pattern.test(v)) {
      throw this.bad(field, `must be ${opts.patternText ?? `of the form ${opts.pattern.source}`}`);
    }
    return v;
  }

  bool(field: string): boolean {
    const v = this.o[field] ?? false;
    if (typeof v !== 'boolean') throw this.bad(field, 'must be a boolean');
    return v;
  }

  bytes(field: string, maxBytes: number, syscallLimit = false): Uint8Array {
    const v = (this.o[field] ?? new Uint8Array(0)) as Uint8Array;
    // Buffer.isBuffer as well: under test runners Uint8Array may come from another realm.
    if (!(v instanceof Uint8Array) && !Buffer.isBuffer(v)) throw this.bad(field, 'must be bytes');
    if (v.length > maxBytes) {
      if (syscallLimit)
        throw tooLarge(this.syscall, `${field} is ${v.length} bytes; the limit is ${maxBytes}`);
      throw this.bad(field, `is longer than ${maxBytes} bytes`);
    }
    return v;
  }

  /** An integer field (int32/int64 arrive as number, or string/Long when the loader is set that way). */
  int(field: string, min: number, max: number): number {
    const raw = this.o[field] ?? 0;
    const v = toInteger(raw);
    if (v === undefined) throw this.bad(field, 'must be an integer');
    if (v < min || v > max) throw this.bad(field, `must be from ${min} to ${max}, got ${v}`);
    return v;
  }

  double(field: string): number {
    const v = this.o[field] ?? 0;
    if (typeof v !== 'number') throw this.bad(field, 'must be a number');
    return v;
  }

  map(field: string, opts: { maxEntries: number; maxKeyBytes?: number; maxValueBytes?: number }): StringMap {
    const v = this.o[field] ?? {};
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw this.bad(field, 'must be a map of strings');
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length > opts.maxEntries) throw this.bad(field, `has more than ${opts.maxEntries} entries`);
    const mk = opts.maxKeyBytes ?? 256;
    const mv = opts.maxValueBytes ?? 4096;
    const out: StringMap = [];
    for (const [k, val] of entries) {
      if (typeof val !== 'string') throw this.bad(field, `entry '${clip(k)}' must be a string`);
      if (k.length === 0 || Buffer.byteLength(k) > mk) throw this.bad(field, `keys must be 1-${mk} bytes`);
      if (Buffer.byteLength(val) > mv)
        throw this.bad(field, `value of '${clip(k)}' is longer than ${mv} bytes`);
      out.push([k, val]);
    }
    return out;
  }

  strings(field: string, opts: { maxItems: number; maxBytes: number }): string[] {
    const v = this.o[field] ?? [];
    if (!Array.isArray(v)) throw this.bad(field, 'must be a list of strings');
    if (v.length > opts.maxItems) throw this.bad(field, `has more than ${opts.maxItems} items`);
    for (const s of v) {
      if (typeof s !== 'string' || s.length === 0) throw this.bad(field, 'items must be non-empty strings');
      if (Buffer.byteLength(s) > opts.maxBytes)
        throw this.bad(field, `items must be at most ${opts.maxBytes} bytes`);
    }
    return v as string[];
  }

  /** A nested message; undefined when absent (proto3 leaves unset messages null). */
  message(field: string): Fields | undefined {
    const v = this.o[field];
    if (v === undefined || v === null) return undefined;
    return new Fields(`${this.syscall}: ${field}`, v);
  }

  raw(field: string): unknown {
    return this.o[field];
  }
}

function toInteger(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'bigint')
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : undefined;
  if (typeof v === 'string' && /^-?\d{1,16}$/.test(v)) return Number(v);
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const { low, high } = v as { low: number; high: number };
    const n = high * 2 ** 32 + (low >>> 0);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

export function mapToObject(m: StringMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of m ?? []) out[k] = v;
  return out;
}

/**
 * CAM-OS clients disagree on the unit of their int64 timestamps (seconds, milliseconds, nanoseconds all
 * occur), so incoming values are read by magnitude: < 1e11 seconds, < 1e14 ms, < 1e17 us, else ns.
 * 0 means "not given". Returns unix ms.
 */
export function timestampToMs(v: number): number {
  if (v <= 0) return 0;
  if (v < 1e11) return v * 1000;
  if (v < 1e14) return v;
  if (v < 1e17) return Math.floor(v / 1000);
  return Math.floor(v / 1e6);
}

/** Outgoing CAM-OS timestamps are unix seconds, the unit the spec documents (Task.deadline). */
export function msToWireSeconds(ms: bigint | number): number {
  return Math.floor(Number(ms) / 1000);
}

export const NAMESPACE_RE = /^[A-Za-z0-9._-]{1,128}$/;

export function checkNamespace(f: Fields, field = 'namespace'): string {
  return f.str(field, {
    required: true,
    maxBytes: 128,
    pattern: NAMESPACE_RE,
    patternText: '1-128 characters of A-Z a-z 0-9 . _ -',
  });
}

export function checkKey(f: Fields, field = 'key'): string {
  const k = f.str(field, { required: true, maxBytes: 512 });
  if (k.includes('\0')) throw invalid(f.syscall, `${field} must not contain NUL`);
  return k;
}

export const TASK_TYPES = [
  'unspecified',
  'arbitration',
  'collaboration',
  'routing',
  'analysis',
  'security',
  'memory',
  'policy',
] as const;

export function taskType(f: Fields, field: string): (typeof TASK_TYPES)[number] {
  const v = f.raw(field) ?? 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < TASK_TYPES.length) return TASK_TYPES[v]!;
  if (typeof v === 'string') {
    const m = /^TASK_TYPE_([A-Z]+)$/.exec(v);
    const name = m?.[1]?.toLowerCase();
    const hit = TASK_TYPES.find((t) => t === name);
    if (hit) return hit;
  }
  throw invalid(f.syscall, `${field} is not a known TaskType`);
}

/** The WIT `task` record from a CAM-OS Task message. */
export function taskFromWire(parent: Fields, field: string): WitTask {
  const t = parent.message(field);
  if (!t) throw invalid(parent.syscall, `${field} is required`);
  const deadline = t.int('deadline', 0, Number.MAX_SAFE_INTEGER);
  const agentId = t.str('agent_id', { maxBytes: 256 });
  return {
    id: t.str('id', { required: true, maxBytes: 256 }),
    description: t.str('description', { maxBytes: 65_536 }),
    requirements: t.strings('requirements', { maxItems: 256, maxBytes: 256 }),
    metadata: t.map('metadata', { maxEntries: 256 }),
    priority: t.int('priority', 0, 100),
    deadline: deadline === 0 ? undefined : BigInt(deadline),
    taskType: taskType(t, 'type'),
    agentId: agentId === '' ? undefined : agentId,
    dependsOn: [],
    // A presented TPM identity is not verified yet (the security syscalls are not wired), and the WIT
    // promises components only verified identities, so none is passed on.
    tpmIdentity: undefined,
  };
}

export interface WitTask {
  id: string;
  description: string;
  requirements: string[];
  metadata: StringMap;
  priority: number;
  deadline: bigint | undefined;
  taskType: (typeof TASK_TYPES)[number];
  agentId: string | undefined;
  dependsOn: string[];
  tpmIdentity: undefined;
}
