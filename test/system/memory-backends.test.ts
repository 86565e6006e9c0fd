/**
 * Issue 3 acceptance: the memory service behaves the same on each context-memory backend — embedded,
 * a real redis-server, and a 3-master Redis Cluster — through a kernel booted with that backend and the
 * CAM-OS gRPC API: write/read by version, version listing, snapshot/restore, retention.
 * The Redis variants skip when redis-server is absent, except in CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelConfig } from '../../host/src/server/config.js';
import type { SyscallClient } from '../../sdk/src/client/index.js';
import { startRedis, startRedisCluster } from '../harness/redis.js';
import { bootSystemKernel, type SystemKernel, systemMissing } from './system-kernel.js';

const missing = systemMissing();
if (missing && process.env.CI === 'true') throw new Error(`system tests need built drivers: ${missing}`);

type Backend = 'embedded' | 'redis' | 'redis-cluster';

async function fails(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: number; details: string };
  }
  throw new Error('the call succeeded, a failure was expected');
}

function scenarios(
  backend: Backend,
  startKv: () => Promise<{ kv: KernelConfig['kv']; stop(): Promise<void> } | null>,
) {
  describe.skipIf(missing !== undefined)(`memory service on ${backend}`, () => {
    let sys: SystemKernel | undefined;
    let service: { kv: KernelConfig['kv']; stop(): Promise<void> } | null = null;
    let client: SyscallClient;
    let skip = false;
    const text = async (namespace: string, key: string, version = 0) =>
      Buffer.from((await client.call('ContextRead', { namespace, key, version })).data).toString('utf8');
    const write = (namespace: string, key: string, data: string) =>
      client.call('ContextWrite', { namespace, key, data: Buffer.from(data) });

    beforeAll(async () => {
      service = await startKv();
      if (!service) {
        skip = true;
        return;
      }
      sys = await bootSystemKernel({ kv: service.kv });
      client = sys.client;
    });
    afterAll(async () => {
      await sys?.stop();
      await service?.stop();
    });

    it('writes immutable versions and reads latest or by number, with the sha-256', async (ctx) => {
      if (skip) return ctx.skip();
      const w1 = await write('docs', 'readme', 'one');
      const w2 = await write('docs', 'readme', 'two');
      expect([Number(w1.version), Number(w2.version)]).toEqual([1, 2]);
      const { createHash } = await import('node:crypto');
      expect(w1.hash).toContain(createHash('sha256').update('one').digest('hex'));
      const latest = await client.call('ContextRead', { namespace: 'docs', key: 'readme' });
      expect([Number(latest.version), latest.hash]).toEqual([2, w2.hash]);
      expect(await text('docs', 'readme', 1)).toBe('one');
      expect((await fails(client.call('ContextRead', { namespace: 'docs', key: 'nope' }))).code).toBe(5);
      expect(
        (await fails(client.call('ContextRead', { namespace: 'docs', key: 'readme', version: 9 }))).code,
      ).toBe(5);
    });

    it('lists versions newest first with paging', async (ctx) => {
      if (skip) return ctx.skip();
      for (let i = 1; i <= 5; i++) await write('list', 'k', `v${i}`);
      const page = await client.call('ContextVersionList', { namespace: 'list', key: 'k', limit: 2 });
      expect(page.versions).toHaveLength(2);
      expect(page.has_more).toBe(true);
      const all = await client.call('ContextVersionList', { namespace: 'list', key: 'k', limit: 10 });
      expect(all.versions.map((v) => Number(v.version)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    });

    it('snapshots and restores a namespace, refusing newer data without force', async (ctx) => {
      if (skip) return ctx.skip();
      await write('proj', 'a', 'a1');
      await write('proj', 'b', 'b1');
      const { snapshot_id } = await client.call('ContextSnapshot', {
        namespace: 'proj',
        description: 'before',
      });
      expect(snapshot_id).toMatch(/\S/);
      await write('proj', 'a', 'a2');
      await write('proj', 'new', 'n1');
      expect((await fails(client.call('ContextRestore', { snapshot_id, force: false }))).code).toBe(9);
      expect(await text('proj', 'a')).toBe('a2');
      const r = await client.call('ContextRestore', { snapshot_id, force: true });
      expect(r.namespace).toBe('proj');
      expect(Number(r.restored_items)).toBe(2);
      expect(await text('proj', 'a')).toBe('a1');
      expect(await text('proj', 'b')).toBe('b1');
      expect(await text('proj', 'new', 1)).toBe('n1');
    });

    it('keeps at most 100 versions per key, and snapshot versions beyond that', async (ctx) => {
      if (skip) return ctx.skip();
      await write('keep', 'k', 'original');
      const { snapshot_id } = await client.call('ContextSnapshot', { namespace: 'keep', description: '' });
      for (let i = 1; i <= 104; i++) await write('ret', 'k', `v${i}`);
      for (let i = 0; i < 105; i++) await write('keep', 'k', `churn ${i}`);
      // Versions 1-4 of 'ret/k' fell out of the newest 100.
      const pruned = await fails(client.call('ContextRead', { namespace: 'ret', key: 'k', version: 1 }));
      expect(pruned.code).toBe(5);
      expect(pruned.details).toContain('pruned');
      expect(await text('ret', 'k', 5)).toBe('v5');
      expect(await text('ret', 'k')).toBe('v104');
      expect(await text('keep', 'k', 1)).toBe('original');
      await client.call('ContextRestore', { snapshot_id, force: true });
      expect(await text('keep', 'k')).toBe('original');
    });
  });
}

scenarios('embedded', async () => ({ kv: { backend: 'embedded' }, stop: async () => {} }));
scenarios('redis', async () => {
  const r = await startRedis();
  return r && { kv: { backend: 'redis', url: r.url }, stop: () => r.stop() };
});
scenarios('redis-cluster', async () => {
  const c = await startRedisCluster();
  return c && { kv: { backend: 'redis-cluster', nodes: c.nodes }, stop: () => c.stop() };
});
