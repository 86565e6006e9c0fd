/**
 * Scale-out inside a site plus federation between sites (docs/federation.md, "Deployment"): site EU runs
 * two kernel processes on one real Redis Cluster (3 masters, test/harness/redis.ts) — eu-1 federates,
 * eu-2 shares its memory through the cluster — and site US runs one kernel on its embedded store. Needs
 * redis-server: skipped with a message outside CI, a failure in CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisClusterInstance, startRedisCluster } from '../harness/redis.js';
import { Cluster, federationMissing } from './cluster.js';

const missing = federationMissing();
if (missing && process.env.CI === 'true') throw new Error(`federation tests cannot run: ${missing}`);

let redis: RedisClusterInstance | null = null;
let sites: Cluster | undefined;

describe.skipIf(missing !== undefined)(
  'two sites: EU (2 kernels, one Redis Cluster) federated with US',
  () => {
    beforeAll(async () => {
      redis = await startRedisCluster();
      if (!redis) return;
      const kv = { backend: 'redis-cluster', nodes: redis.nodes };
      sites = new Cluster({
        nodes: ['eu-1', 'eu-2', 'us-1'],
        plain: ['eu-2'],
        extra: { 'eu-1': { kv }, 'eu-2': { kv } },
      });
      await sites.start();
    }, 400_000);

    afterAll(async () => {
      await sites?.stop();
      await redis?.stop();
    }, 60_000);

    it('a write in the US is readable on both EU kernels; an EU write reaches the US', async (ctx) => {
      // startRedisCluster() said why on stderr (and fails in CI); outside CI the test is skipped.
      if (!sites) return ctx.skip();
      const s = sites;
      await s.write('us-1', 'shared', 'from-us', 'hello EU');
      for (const node of ['eu-1', 'eu-2']) {
        const r = await s.until(`${node} to read the US write`, () => s.read(node, 'shared', 'from-us'));
        expect(r.data).toBe('hello EU');
      }
      await s.write('eu-1', 'shared', 'from-eu', 'hello US');
      const r = await s.until('us-1 to read the EU write', () => s.read('us-1', 'shared', 'from-eu'));
      expect(r.data).toBe('hello US');
      // Inside the site, memory is shared through the cluster: a write on eu-2 is read on eu-1.
      await s.write('eu-2', 'site-local', 'k', 'written on eu-2');
      expect((await s.read('eu-1', 'site-local', 'k'))?.data).toBe('written on eu-2');
      expect(await s.read('us-1', 'site-local', 'k')).toBeUndefined();
    }, 120_000);
  },
);
