import { describe, expect, it } from 'vitest';
import { freePort } from '../../../test/harness/service.js';
import { checkConfig, KvError, openKv } from './index.js';

async function rejection(p: Promise<unknown>): Promise<KvError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KvError);
  return err as KvError;
}

describe('openKv config validation', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', 'embedded', /expected an object/],
    ['null', null, /expected an object/],
    [
      'unknown backend',
      { backend: 'rocksdb', path: '/x' },
      /backend must be one of embedded, redis, redis-cluster; got "rocksdb"/,
    ],
    ['missing backend', { path: '/x' }, /backend must be one of/],
    [
      'field of another backend',
      { backend: 'embedded', path: '/x', url: 'redis://h:1' },
      /unknown field\(s\) url/,
    ],
    ['embedded without path', { backend: 'embedded' }, /needs path/],
    ['embedded blank path', { backend: 'embedded', path: '  ' }, /needs path/],
    ['redis without url', { backend: 'redis' }, /needs url/],
    ['redis url garbage', { backend: 'redis', url: 'not a url' }, /not a URL/],
    [
      'redis url wrong scheme',
      { backend: 'redis', url: 'http://127.0.0.1:6379' },
      /redis:\/\/ or rediss:\/\/, got http:/,
    ],
    ['cluster without nodes', { backend: 'redis-cluster' }, /non-empty array/],
    ['cluster empty nodes', { backend: 'redis-cluster', nodes: [] }, /non-empty array/],
    [
      'cluster node not a string',
      { backend: 'redis-cluster', nodes: [7000] },
      /nodes\[0\] must be a "host:port" string/,
    ],
    [
      'cluster node without port',
      { backend: 'redis-cluster', nodes: ['127.0.0.1'] },
      /nodes\[0\] needs a host and a port/,
    ],
    ['cluster node bad port', { backend: 'redis-cluster', nodes: ['h:1', 'h:70000'] }, /nodes\[1\]/],
    [
      'cluster node with path',
      { backend: 'redis-cluster', nodes: ['redis://h:1/2'] },
      /nodes\[0\] must be "host:port"/,
    ],
  ];
  for (const [name, config, message] of cases) {
    it(`rejects ${name}`, async () => {
      const err = await rejection(openKv(config as never));
      expect(err.code).toBe('KV_ERR_CONFIG_INVALID');
      expect(err.status).toBe('INVALID_ARGUMENT');
      expect(err.message).toMatch(message);
    });
  }

  it('accepts host:port and redis://host:port cluster nodes, including IPv6', () => {
    expect(
      checkConfig({
        backend: 'redis-cluster',
        nodes: ['127.0.0.1:7000', 'redis://node-b:7001', '[::1]:7002'],
      }),
    ).toEqual({
      backend: 'redis-cluster',
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: 'node-b', port: 7001 },
        { host: '::1', port: 7002 },
      ],
    });
  });
});

describe('openKv against an unreachable server', () => {
  it('redis: fails with KV_ERR_UNAVAILABLE naming the address, without the password', async () => {
    const port = await freePort();
    const err = await rejection(openKv({ backend: 'redis', url: `redis://:s3cret@127.0.0.1:${port}` }));
    expect(err.code).toBe('KV_ERR_UNAVAILABLE');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain('s3cret');
  });

  it('redis-cluster: fails with KV_ERR_UNAVAILABLE instead of retrying forever', async () => {
    const port = await freePort();
    const err = await rejection(openKv({ backend: 'redis-cluster', nodes: [`127.0.0.1:${port}`] }));
    expect(err.code).toBe('KV_ERR_UNAVAILABLE');
    expect(err.message).toContain(`127.0.0.1:${port}`);
  });
});
