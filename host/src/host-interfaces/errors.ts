/**
 * How a host interface answers a guest with a WIT `kernel-error`: the kernel worker forwards an own
 * `payload` property of a thrown Error into the guest, where jco lowers it as the `result`'s error. Anything
 * thrown without `payload` traps the guest instead, which is right for host bugs and values that do not
 * match the WIT type, and wrong for everything a guest is expected to handle.
 */

/** The cases of `cam:kernel/types.kernel-error` (wit/kernel@0.1.0/types.wit). */
export type KernelErrorTag =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'permission-denied'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'deadline-exceeded'
  | 'unavailable'
  | 'unimplemented'
  | 'internal';

export type KernelErrorValue = { tag: 'deadline-exceeded' } | { tag: KernelErrorTag; val: string };

/** WIT caps kernel-error messages at 500 characters. */
const MAX_MESSAGE = 500;

export class GuestFacingError extends Error {
  readonly payload: KernelErrorValue;

  constructor(tag: KernelErrorTag, message: string) {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    super(text);
    this.name = 'GuestFacingError';
    this.payload = tag === 'deadline-exceeded' ? { tag } : { tag, val: text };
  }
}

export function guestError(tag: KernelErrorTag, message: string): GuestFacingError {
  return new GuestFacingError(tag, message);
}

/** A short description of a value for error messages, never echoing more than a few characters of it. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (typeof v === 'string') return v.length > 40 ? `'${v.slice(0, 40)}…'` : `'${v}'`;
  if (typeof v === 'object') return 'a record';
  return `${typeof v} ${String(v)}`;
}

const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Checks a guest string and returns its UTF-8 length. Strings lowered from a component are valid UTF-8 by
 * construction; the check still runs because host interfaces are also reachable from other host code.
 */
export function utf8Length(what: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'string')
    throw guestError('invalid-argument', `${what} must be a string, got ${describeValue(v)}`);
  if (LONE_SURROGATE.test(v)) throw guestError('invalid-argument', `${what} is not valid UTF-8`);
  const n = Buffer.byteLength(v, 'utf8');
  if (n < min) throw guestError('invalid-argument', `${what} must not be empty`);
  if (n > max)
    throw guestError('invalid-argument', `${what} is ${n} bytes of UTF-8, more than the limit of ${max}`);
  return n;
}
