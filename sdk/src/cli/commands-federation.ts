/**
 * `cam-os federation status`: the federation as this kernel sees it — peers, their link state, how many
 * writes each has not yet received from this node (lag), when each was last in sync, and the document.
 */
import type { FederationStatus, PeerStatus } from '@cam-os/host/federation/node.js';
import { AdminClient } from '@cam-os/host/federation/wire.js';
import * as grpc from '@grpc/grpc-js';
import { KernelNotRunning, resolveAddress } from '../admin-client.js';
import { type Command, str, UsageError } from './shared.js';

export function fetchFederationStatus(address: string, timeoutMs = 10_000): Promise<FederationStatus> {
  const client = new AdminClient(address, grpc.credentials.createInsecure());
  return new Promise<FederationStatus>((resolve, reject) => {
    (
      client as unknown as {
        Status(
          req: unknown,
          md: grpc.Metadata,
          opts: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, r: FederationStatus) => void,
        ): void;
      }
    ).Status({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => {
      client.close();
      if (!e) resolve(r);
      else if (e.code === grpc.status.UNAVAILABLE && /federation/.test(e.details))
        reject(new Error(e.details));
      else if (e.code === grpc.status.UNAVAILABLE)
        reject(new KernelNotRunning(`cannot reach the kernel at ${address}: ${e.details || e.message}`));
      else if (e.code === grpc.status.UNIMPLEMENTED)
        reject(
          new Error(`the kernel at ${address} does not federate (no federation section in its config.json)`),
        );
      else reject(new Error(e.details || e.message));
    });
  });
}

function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  const d = Math.max(0, now - ms);
  return d < 1000 ? `${d} ms ago` : `${(d / 1000).toFixed(1)} s ago`;
}

function formatPeer(p: PeerStatus, now: number): string {
  const lag = p.lagWrites === null ? 'lag ?' : `lag ${p.lagWrites} write${p.lagWrites === 1 ? '' : 's'}`;
  return (
    `  ${p.node}  ${p.state}  ${p.address}  ${lag}  last sync ${ago(p.lastSyncMs, now)}  ` +
    `last heard ${ago(p.lastHeardMs, now)}  links=${p.links}${p.protection ? ` (${p.protection})` : ''} reconnects=${p.reconnects}` +
    (p.lastError && p.state !== 'alive' ? `\n    last error: ${p.lastError}` : '')
  );
}

export function formatFederationStatus(s: FederationStatus, now = Date.now()): string {
  return [
    `node ${s.nodeId}  peers on ${s.listen} (advertised ${s.advertise})`,
    `namespaces: ${s.namespaces.join(', ')}`,
    `document: ${s.document.entries} writes (${s.document.localEntries} from this node), ${s.document.pendingStructs} pending, client id ${s.document.clientId}`,
    `local writes ${s.localWrites}, remote updates ${s.remoteUpdates}, replicated memory writes ${s.memoryWrites}`,
    `peers (${s.peers.length}):`,
    ...(s.peers.length ? s.peers.map((p) => formatPeer(p, now)) : ['  (none yet)']),
  ].join('\n');
}

const federation: Command = {
  name: 'federation',
  summary: 'federation of this kernel with others: `status` (peers, lag, last sync)',
  usage: 'federation status [--address <host:port>] [--data-dir <dir>] [--json]',
  details:
    'status: the peers this kernel knows (from its seeds and membership gossip), whether a link to each is up,\n' +
    'how many writes each has not yet received from this kernel (lag, from its last state vector), when each\n' +
    'was last in sync, and the replicated document. The kernel must have a federation section in its\n' +
    'config.json (docs/federation.md).',
  async run(args, io) {
    const sub = args.positionals[0];
    if (sub !== 'status') {
      throw new UsageError(
        sub === undefined
          ? 'federation needs a subcommand: status'
          : `unknown federation subcommand '${sub}' (known: status)`,
      );
    }
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument '${args.positionals[1]}'`);
    const address = resolveAddress({ address: str(args, 'address'), dataDir: str(args, 'data-dir') });
    const s = await fetchFederationStatus(address);
    io.out(args.json ? JSON.stringify(s) : formatFederationStatus(s));
    return 0;
  },
};

export const FEDERATION_COMMANDS: Command[] = [federation];
