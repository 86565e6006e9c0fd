/**
 * Federation wiring for `boot`: the ContextWrite override (record local writes in federated namespaces),
 * the admin Status service on the kernel's listener, and start/stop of the federation component and the
 * peer node. Only created when the kernel config has a `federation` section, so a plain `cam-os up` loads
 * no federation component and opens no peer port.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { requireAdmin } from '../grpc/admin-guard.js';
import { toServiceError } from '../server/grpc-errors.js';
import type { KernelContext, RunningKernel, ServiceRegistration } from '../server/server.js';
import { contextSyscalls } from '../syscalls/context.js';
import type { SyscallEnv } from '../syscalls/env.js';
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
            const receipt = await base.handle(r, ctx);
            await n.recordLocal({
              namespace: r.ns,
              key: r.key,
              hash: receipt.hash,
              data: r.data,
              metadata: r.metadata,
              author: ctx.callerId,
              timestampMs: BigInt(Date.now()),
            });
            return receipt;
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
