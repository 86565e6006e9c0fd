/**
 * Federation of three real kernel processes on loopback (test/federation/cluster.ts): mTLS gRPC peer
 * links through TCP proxies the test controls, each also running the hybrid X25519 + ML-KEM-768 channel
 * with the nodes' publisher keys (frames sealed); writes and reads through the real gRPC SyscallClient.
 *
 * - a write on one node becomes readable on the others; a namespace that is not federated stays local;
 * - partition one node (its links blackholed), write on both sides, including the same key: after
 *   healing all nodes converge to the same values, the conflicting key by the documented rule, and every
 *   node's version history holds both sides' writes;
 * - kill -9 a node, write on the others, restart it: it catches up;
 * - no acknowledged write is lost in any of the above;
 * - `cam-os federation status` shows the peers, their lag and last sync.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Cluster, clientIdOf, federationMissing } from './cluster.js';

const missing = federationMissing();
if (missing && process.env.CI === 'true') throw new Error(`federation tests cannot run: ${missing}`);

const NODES = ['node-a', 'node-b', 'node-c'];
/** Every acknowledged write: ns/key -> the data the last acknowledged write stored, by node. */
const acked: Array<{ node: string; ns: string; key: string; data: string; hash: string }> = [];
let cluster: Cluster;

async function write(node: string, ns: string, key: string, data: string): Promise<void> {
  const r = await cluster.write(node, ns, key, data);
  acked.push({ node, ns, key, data, hash: r.hash });
}

/** Wait until every node reads the same value for each key; returns that value per key. */
async function converged(ns: string, keys: string[], nodes = NODES): Promise<Map<string, string>> {
  return cluster.until(
    `${nodes.join(', ')} to agree on ${keys.length} key(s) in '${ns}'`,
    async () => {
      const out = new Map<string, string>();
      for (const key of keys) {
        const seen = await Promise.all(nodes.map((n) => cluster.read(n, ns, key)));
        if (seen.some((s) => s === undefined)) return undefined;
        if (new Set(seen.map((s) => s!.hash)).size !== 1) return undefined;
        out.set(key, seen[0]!.data);
      }
      return out;
    },
    120_000,
  );
}

async function versionHashes(node: string, ns: string, key: string): Promise<string[]> {
  const r = await cluster
    .client(node)
    .call('ContextVersionList', { namespace: ns, key, limit: 1000, since_version: 0 });
  return r.versions.map((v) => v.hash);
}

describe.skipIf(missing !== undefined)(
  `federation of 3 kernel processes${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    beforeAll(async () => {
      cluster = new Cluster({
        nodes: NODES,
        tuning: { heartbeatMs: 200, suspectAfterMs: 1000, reconnectMinMs: 50, reconnectMaxMs: 500 },
        // Every link: mTLS plus the hybrid post-quantum secure channel binding each node's publisher key.
        identity: true,
      });
      await cluster.start();
      // Membership: each node was given one seed; gossip finds the third.
      await cluster.until('every node to have two live peers', async () => {
        for (const n of NODES) {
          const s = await status(n);
          if (s.peers.filter((p) => p.state === 'alive').length !== 2) return undefined;
        }
        return true;
      });
    }, 400_000);

    afterAll(async () => {
      await cluster?.stop();
    }, 60_000);

    it('a write on one node is readable on the others; other namespaces stay local', async () => {
      await write('node-a', 'shared', 'greeting', 'hello from a');
      await write('node-b', 'team-blue', 'plan', 'from b');
      await cluster.write('node-c', 'private', 'secret', 'only on c');
      const g = await converged('shared', ['greeting']);
      expect(g.get('greeting')).toBe('hello from a');
      expect((await converged('team-blue', ['plan'])).get('plan')).toBe('from b');
      // The replicated copy keeps the author and says where it came from.
      const r = await cluster
        .client('node-c')
        .call('ContextRead', { namespace: 'shared', key: 'greeting', version: 0 });
      expect(r.metadata['federation.origin']).toBe('node-a');
      // Not federated: still only on node-c, after the others have certainly received later writes.
      await write('node-c', 'shared', 'marker', 'm');
      await converged('shared', ['marker']);
      expect(await cluster.read('node-a', 'private', 'secret')).toBeUndefined();
      expect(await cluster.read('node-b', 'private', 'secret')).toBeUndefined();
    }, 120_000);

    it('parallel writes of the same keys on two nodes: every node ends on the same value', async () => {
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          write(i % 3 ? 'node-a' : 'node-b', 'shared', `hot-${i % 2}`, `v${i}`),
        ),
      );
      const values = await converged('shared', ['hot-0', 'hot-1']);
      // Memory's latest on each node is the document's current value, so the reads agree (converged
      // compares hashes on all three nodes); both keys hold one of the written values.
      expect(values.get('hot-0')).toMatch(/^v\d+$/);
      expect(values.get('hot-1')).toMatch(/^v\d+$/);
    }, 120_000);

    it('partition, writes on both sides (same key too), heal: all converge by the documented rule', async () => {
      cluster.partition('node-c');
      // Both sides keep accepting writes.
      const keys: string[] = [];
      for (let i = 0; i < 40; i++) {
        await write(i % 2 ? 'node-a' : 'node-b', 'shared', `p-${i}`, `majority-${i}`);
        await write('node-c', 'shared', `q-${i}`, `minority-${i}`);
        keys.push(`p-${i}`, `q-${i}`);
      }
      await write('node-a', 'shared', 'contested', 'a-side');
      await write('node-c', 'shared', 'contested', 'c-side');
      // During the partition node-c has none of the majority's writes.
      expect(await cluster.read('node-c', 'shared', 'p-0')).toBeUndefined();
      cluster.heal('node-c');
      const values = await converged('shared', [...keys, 'contested']);
      for (let i = 0; i < 40; i++) {
        expect(values.get(`p-${i}`)).toBe(`majority-${i}`);
        expect(values.get(`q-${i}`)).toBe(`minority-${i}`);
      }
      // The documented rule: concurrent writes -> the node with the higher client id wins.
      const winner = clientIdOf('node-a') > clientIdOf('node-c') ? 'a-side' : 'c-side';
      expect(values.get('contested')).toBe(winner);
      // Version histories merge: every node's history of the key holds both writes.
      const both = acked.filter((w) => w.key === 'contested').map((w) => w.hash);
      await cluster.until('every history to hold both contested writes', async () => {
        for (const n of NODES) {
          const h = await versionHashes(n, 'shared', 'contested');
          if (!both.every((x) => h.includes(x))) return undefined;
        }
        return true;
      });
      // Reconnecting did not cost a link: each side's first frame on a link was its hello (an acceptor's
      // heartbeat or diff used to go out first, and the dialer dropped the link with the diff on it).
      for (const n of NODES) expect(cluster.node(n).stderr.join('')).not.toMatch(/before hello/);
    }, 240_000);

    it('kill -9 a node, write on the others, restart it: it catches up', async () => {
      // Acknowledged on node-c, then SIGKILL at once (no wait for replication).
      const early: string[] = [];
      for (let i = 0; i < 10; i++) {
        await write('node-c', 'team-red', `c-${i}`, `c was here ${i}`);
        early.push(`c-${i}`);
      }
      await cluster.kill9('node-c');
      const keys: string[] = [];
      for (let i = 0; i < 30; i++) {
        await write(i % 2 ? 'node-a' : 'node-b', 'team-red', `k-${i}`, `while-c-was-down-${i}`);
        keys.push(`k-${i}`);
      }
      await cluster.startNode('node-c');
      const values = await converged('team-red', [...keys, ...early]);
      for (let i = 0; i < 30; i++) expect(values.get(`k-${i}`)).toBe(`while-c-was-down-${i}`);
      for (let i = 0; i < 10; i++) expect(values.get(`c-${i}`)).toBe(`c was here ${i}`);
      // And it replicates its own new writes again.
      await write('node-c', 'team-red', 'after-restart', 'c is back');
      await converged('team-red', ['after-restart']);
    }, 400_000);

    it('loses no acknowledged write: every node holds each one in its history', async () => {
      expect(acked.length).toBeGreaterThan(110);
      for (const n of NODES) {
        const byKey = new Map<string, string[]>();
        for (const w of acked) {
          const k = `${w.ns}\0${w.key}`;
          if (!byKey.has(k)) byKey.set(k, await versionHashes(n, w.ns, w.key));
          expect(byKey.get(k), `${n}: ${w.ns}/${w.key} written on ${w.node}`).toContain(w.hash);
        }
      }
    }, 240_000);

    it('refuses a kernel that claims the node id of a member without its key (even with a CA-valid certificate)', async () => {
      const imp = await cluster.startImpostor('node-b', 'node-a');
      await cluster.until('node-a to refuse the impostor', async () =>
        cluster.node('node-a').stderr.join('').includes('is not trusted') ? true : undefined,
      );
      // The impostor never got a link: it has no peer, and it received none of the federated data.
      const s = JSON.parse(
        await cli(['federation', 'status', '--json', '--data-dir', imp.dataDir]),
      ) as Status;
      expect(s.peers.filter((p) => p.state === 'alive')).toEqual([]);
      expect(await cluster.read(imp.id, 'shared', 'greeting')).toBeUndefined();
      await cluster.kill9(imp.id);
    }, 120_000);

    it('cam-os federation status shows peers, lag and last sync', async () => {
      const s = await cluster.until('node-a to report both peers in sync', async () => {
        const st = await status('node-a');
        return st.peers.length === 2 &&
          st.peers.every((p) => p.state === 'alive' && p.lagWrites === 0 && p.lastSyncMs)
          ? st
          : undefined;
      });
      expect(s.nodeId).toBe('node-a');
      // Every link runs mTLS plus the hybrid X25519 + ML-KEM-768 channel bound to the nodes' keys.
      expect(s.peers.map((p) => p.protection)).toEqual(['mtls+hybrid', 'mtls+hybrid']);
      expect(s.peers.map((p) => p.node)).toEqual(['node-b', 'node-c']);
      expect(s.peers.find((p) => p.node === 'node-c')!.reconnects).toBeGreaterThanOrEqual(1);
      expect(s.document.entries).toBeGreaterThan(110);
      const text = await cli(['federation', 'status', '--data-dir', cluster.node('node-a').dataDir]);
      expect(text).toMatch(/^node node-a /);
      expect(text).toMatch(/node-b {2}alive .* lag 0 writes {2}last sync /);
      await expect(cli(['federation', 'stat', '--data-dir', cluster.node('node-a').dataDir])).rejects.toThrow(
        /unknown federation subcommand 'stat'/,
      );
    }, 120_000);
  },
);

interface Status {
  nodeId: string;
  peers: Array<{
    node: string;
    state: string;
    lagWrites: number | null;
    lastSyncMs: number | null;
    reconnects: number;
    protection: string | null;
  }>;
  document: { entries: number };
}

async function cli(args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { timeout: 30_000 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(err.stderr || err.message);
  }
}

async function status(node: string): Promise<Status> {
  return JSON.parse(
    await cli(['federation', 'status', '--json', '--data-dir', cluster.node(node).dataDir]),
  ) as Status;
}
