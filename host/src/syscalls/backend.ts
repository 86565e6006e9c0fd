/**
 * The component behind a syscall group: found by the WIT interface it exports, at call time, so a
 * component loaded, swapped or unloaded after start is picked up without re-registering anything.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CallContext } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';

export const SERVICE_INTERFACES = {
  scheduler: 'cam:kernel/scheduler',
  arbitration: 'cam:kernel/arbitration',
  memory: 'cam:kernel/memory',
} as const;
export type ServiceName = keyof typeof SERVICE_INTERFACES;

export class Backend {
  readonly iface: string;

  constructor(
    private readonly kernel: Kernel,
    readonly service: ServiceName,
  ) {
    this.iface = SERVICE_INTERFACES[service];
  }

  provider(): string | undefined {
    return this.kernel.providerOf(this.iface);
  }

  /** The sentence HealthCheck and UNIMPLEMENTED answers use when no component backs the service. */
  missing(): string | undefined {
    return this.provider() === undefined
      ? `no loaded component exports ${this.iface} (the ${this.service} service)`
      : undefined;
  }

  /**
   * Call `fn` on the providing component. `query`: the call only reads, so the kernel may answer it from the
   * component's query replica (runtime/replica.ts); the service interface's WIT says which functions are. The caller's deadline is enforced by the dispatcher, not passed
   * to the component: a component deadline stops the instance, and a client must not be able to kill
   * shared instances by sending tiny deadlines.
   */
  call(fn: string, args: unknown[], _ctx: CallContext, opts: { query?: boolean } = {}): Promise<unknown> {
    const name = this.provider();
    if (!name) {
      return Promise.reject(new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', `${this.missing()}`));
    }
    return this.kernel.call(name, this.iface, fn, args, opts);
  }
}

/**
 * Snapshot ids handed to callers carry the namespace they cover and a MAC, so ContextRestore can check
 * the caller's namespace scope BEFORE the memory component restores anything (the memory interface only
 * reports the namespace after the fact). Form: `<namespace>~<component id>~<mac>`. The key lives in the
 * data dir so ids stay valid across restarts.
 */
export class SnapshotIds {
  private readonly key: Buffer;

  constructor(dataDir: string) {
    const file = join(dataDir, 'syscalls', 'snapshot-id.key');
    if (existsSync(file)) {
      this.key = readFileSync(file);
      if (this.key.length !== 32) throw new Error(`${file} must hold 32 bytes`);
    } else {
      this.key = randomBytes(32);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, this.key, { mode: 0o600 });
      renameSync(tmp, file);
    }
  }

  seal(namespace: string, inner: string): string {
    return `${namespace}~${inner}~${this.mac(namespace, inner)}`;
  }

  /** The namespace and component id of a sealed id; undefined when it is not one of ours. */
  open(id: string): { namespace: string; inner: string } | undefined {
    const first = id.indexOf('~');
    const last = id.lastIndexOf('~');
    if (first <= 0 || last <= first) return undefined;
    const namespace = id.slice(0, first);
    const inner = id.slice(first + 1, last);
    const given = Buffer.from(id.slice(last + 1));
    const want = Buffer.from(this.mac(namespace, inner));
    if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
    return { namespace, inner };
  }

  private mac(namespace: string, inner: string): string {
    return createHmac('sha256', this.key).update(`${namespace}\0${inner}`).digest('base64url').slice(0, 22);
  }
}
