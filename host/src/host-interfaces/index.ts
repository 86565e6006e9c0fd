/**
 * Kernel-side implementations of the host interfaces of `cam:kernel@0.1.0` (wit/kernel@0.1.0/host.wit), one
 * file per capability, each a factory returning a `HostInterface` for `Kernel.provide`. The kernel passes
 * the calling component's name to every function; a grant in the component's manifest still decides
 * whether a component may import an interface at all.
 */
import type { HostInterface } from '../kernel/kernel.js';
import type { KvStore } from '../kv/index.js';
import { type ClockHostOptions, clockHostInterface } from './clock.js';
import { digestHostInterface } from './digest.js';
import { type KvHostOptions, kvHostInterface } from './kv.js';
import { type LogHostOptions, logHostInterface } from './log.js';

export { CLOCK_INTERFACE, type ClockHostOptions, clockHostInterface, ManualClock } from './clock.js';
export { DIGEST_INTERFACE, digestHostInterface } from './digest.js';
export {
  describeValue,
  GuestFacingError,
  guestError,
  type KernelErrorTag,
  type KernelErrorValue,
} from './errors.js';
export { KV_GUEST_LIMITS, KV_INTERFACE, type KvHostOptions, kvHostInterface, scopedPartition } from './kv.js';
export {
  LOG_INTERFACE,
  LOG_LEVELS,
  type LogHostOptions,
  type LogLevel,
  type LogLine,
  logHostInterface,
  truncateUtf8,
} from './log.js';

export interface HostInterfacesOptions {
  kv: KvStore;
  kvOptions?: KvHostOptions;
  log?: LogHostOptions;
  clock?: ClockHostOptions;
}

/** All four host interfaces of cam:kernel@0.1.0, ready for `kernel.provide`. */
export function hostInterfaces(options: HostInterfacesOptions): HostInterface[] {
  return [
    kvHostInterface(options.kv, options.kvOptions),
    logHostInterface(options.log),
    clockHostInterface(options.clock),
    digestHostInterface(),
  ];
}
