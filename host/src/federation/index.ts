/**
 * Federation wiring for `boot`: the ContextWrite override (record local writes in federated namespaces),
 * the admin Status service on the kernel's listener, and start/stop of the federation component and the
 * peer node. Only created when the kernel config has a `federation` section, so a plain `cam-os up` loads
 * no federation component and opens no peer port.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { requireAdmin } from '../grpc/admin-guard.js';
import { toServiceError } from '../server/grpc-errors.js';
import type { KernelContext, RunningKernel, ServiceRegistration } from '../server/server.js';
import { contextSyscalls } from '../syscalls/context.js';
import { requireNamespace, type SyscallEnv } from '../syscalls/env.js';
import type { FederationConfig } from './config.js';
import { FederationNode } from './node.js';
import { ADMIN_SERVICE } from './wire.js';

export type { FederationConfig } from './config.js';
export { FederationNode, type FederationStatus, type PeerStatus } from './node.js';

export interface FederationWiring {
  /** Syscall-table overrides to add to the gateway's (ContextWrite). */
  overrides(env: SyscallEnv): SyscallDef<never, unknown>[];
  /** The admin service (`cam.federation.v1.FederationAdmin`) for the kernel's own listener. */
  service: ServiceRegistration;
  /** Load the federation component from `systemRoot` and start the peer node. */
  start(k: RunningKernel, systemRoot: string, log?: (line: string) => void): Promise<FederationNode>;
  stop(): Promise<void>;
  node(): FederationNode | undefined;
}

/**
 * A local write in a federated namespace: memory stores it (`store`) while the document records it
 * (`record`, which sends the update to the peers as soon as it is durable), so memory's write, a component
 * call and an fsync, is not on the replication path; the caller's answer waits for both. When memory
 * fails and the document took the write, the write replicates anyway: memory gets it once more, so its
 * latest version stays the document's current value here too, and the caller gets memory's error either way
 * (as with a timeout, a failed write may still appear). When the document fails, the write is local only
 * until it is written again.
 */
export async function storeAndRecord<R extends { hash: string }>(
  store: () => Promise<R>,
  record: () => Promise<void>,
  hash: string,
  what: string,
  warn: (line: string) => void,
): Promise<R> {
  const [mem, doc] = await Promise.allSettled([store(), record()]);
  if (mem.status === 'rejected') {
    if (doc.status === 'fulfilled') {
      await store().then(
        (again) => {
          if (again.hash !== hash)
            warn(`federation: memory stored ${what} with hash ${again.hash}, not ${hash}`);
        },
        (e: Error) =>
          warn(
            `federation: ${what} is in the document but memory refused it twice (${e.message}); this kernel serves the key's previous value until it is written again`,
          ),
      );
    }
    throw mem.reason;
  }
  if (doc.status === 'rejected') throw doc.reason;
  if (mem.value.hash !== hash)
    throw new KernelError(
      'KERNEL_ERR_INTERNAL',
      `federation: memory stored ${what} with hash ${mem.value.hash}, the document with ${hash}`,
    );
  return mem.value;
}

export function federationWiring(config: FederationConfig): FederationWiring {
  let node: FederationNode | undefined;
  const notRunning = () =>
    new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', 'federation is configured but not running yet');
  return {
    node: () => node,
    overrides(env) {
      const base = contextSyscalls(env).find((d) => d.name === 'ContextWrite') as unknown as SyscallDef<
        { ns: string; key: string; data: Uint8Array; metadata: Array<[string, string]> },
        { version: number; hash: string; write_proof: null }
      >;
      const write: typeof base = {
        ...base,
        summary: `${base.summary} In a federated namespace the write also replicates to every peer.`,
        async handle(r, ctx) {
          if (!node?.replicates(r.ns)) return base.handle(r, ctx);
          const n = node;
          // Not during a remote apply, not beside another write of the key: memory's latest must stay the
          // document's current value.
          return n.localWrite(r.ns, r.key, async () => {
            // The scope check comes before the document sees the write (base.handle repeats it for memory).
            requireNamespace(env, ctx, 'ContextWrite', r.ns);
            const change = {
              namespace: r.ns,
              key: r.key,
              hash: createHash('sha256').update(r.data).digest('hex'),
              data: r.data,
              metadata: r.metadata,
              author: ctx.callerId,
              timestampMs: BigInt(Date.now()),
            };
            return storeAndRecord(
              () => base.handle(r, ctx),
              () => n.recordLocal(change),
              change.hash,
              `${r.ns}/${r.key}`,
              (line) => n.warn(line),
            );
          });
        },
      };
      return [write as unknown as SyscallDef<never, unknown>];
    },
    service: {
      name: 'cam.federation.v1.FederationAdmin',
      register(server: grpc.Server, ctx: KernelContext) {
        server.addService(ADMIN_SERVICE, {
          Status: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
            requireAdmin(ctx, call, 'Federation.Status')
              .then(() => {
                if (!node) throw notRunning();
                return node.status();
              })
              .then(
                (s) => cb(null, s),
                (e: unknown) => cb(toServiceError(e)),
              );
          },
        });
      },
    },
    async start(k, systemRoot, log) {
      const dist = join(systemRoot, 'drivers', 'federation', 'dist');
      const wasm = join(dist, 'federation.wasm');
      const manifest = join(dist, 'manifest.json');
      if (!existsSync(wasm) || !existsSync(manifest)) {
        throw new KernelError(
          'KERNEL_ERR_CONFIG_INVALID',
          `federation is configured but the federation component is not built (${wasm}; run \`npm run build\`)`,
        );
      }
      await k.loader.load(readFileSync(wasm), readFileSync(manifest, 'utf8'), {
        config: { 'node-id': config.nodeId, namespaces: config.namespaces.join(',') },
      });
      const n = new FederationNode({ config, kernel: k.kernel, log });
      await n.start();
      node = n;
      return n;
    },
    async stop() {
      await node?.stop();
    },
  };
}
