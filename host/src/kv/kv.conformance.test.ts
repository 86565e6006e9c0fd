/**
 * One conformance suite for every kv backend, each against a real store: a temp LMDB directory, a private
 * redis-server, and a private 3-master Redis Cluster (started by test/harness/redis.ts). Redis suites skip
 * when redis-server is not installed, and fail instead in CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RedisClusterInstance,
  type RedisInstance,
  startRedis,
  startRedisCluster,
} from '../../../test/harness/redis.js';
import { makeTempDir, removeDir, requireBinary } from '../../../test/harness/service.js';
import { type KvConfig, KvError, type KvStore, openKv } from './index.js';

interface Fixture {
  store: KvStore;
  /** Closes the store and opens a new one on the same data. */
  reopen(): Promise<KvStore>;
  teardown(): Promise<void>;
}

interface Backend {
  name: string;
  available: boolean;
  setup(): Promise<Fixture>;
}

const hasRedis = requireBinary('redis-server', 'the redis kv conformance suites') !== undefined;

function fixtureFor(config: KvConfig, stopService: () => Promise<void>): Promise<Fixture> {
  return openKv(config).then((first) => {
    let store = first;
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await openKv(config);
        return store;
      },
      async teardown() {
        await store.close();
        await stopService();
      },
    };
  });
}

const backends: Backend[] = [
  {
    name: 'embedded',
    available: true,
    async setup() {
      const dir = await makeTempDir('camos-kv-embedded');
      return fixtureFor({ backend: 'embedded', path: `${dir}/store` }, () => removeDir(dir));
    },
  },
  {
    name: 'redis',
    available: hasRedis,
    async setup() {
      const redis = (await startRedis()) as RedisInstance;
      return fixtureFor({ backend: 'redis', url: redis.url }, () => redis.stop());
    },
  },
  {
    name: 'redis-cluster',
    available: hasRedis,
    async setup() {
      const cluster = (await startRedisCluster()) as RedisClusterInstance;
      return fixtureFor({ backend: 'redis-cluster', nodes: cluster.nodes }, () => cluster.stop());
    },
  },
];

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
/** The order every backend must return: raw UTF-8 bytes, compared unsigned. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function expectKvError(p: Promise<unknown>, code: KvError['code'], message?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the call to reject').toBeInstanceOf(KvError);
  expect((err as KvError).code).toBe(code);
  if (message) expect((err as KvError).message).toMatch(message);
}

describe.each(backends)('kv conformance: $name', (backend) => {
  let fx: Fixture;
  let n = 0;
  // Every test uses fresh partitions, so tests do not depend on each other's data.
  const part = (label: string) => `t${++n}-${label}`;
  const kv = () => fx.store;

  beforeAll(async () => {
    if (backend.available) fx = await backend.setup();
  });
  afterAll(async () => {
    await fx?.teardown();
  });

  describe.skipIf(!backend.available)('against a live store', () => {
    it('reports its kind', () => {
      expect(kv().kind).toBe(backend.name);
    });

    it('puts, gets, overwrites and deletes', async () => {
      const p = part('crud');
      expect(await kv().get(p, 'a')).toBeUndefined();
      await kv().batch(p, [{ op: 'put', key: 'a', value: bytes('one') }]);
      expect(text(await kv().get(p, 'a'))).toBe('one');
      await kv().batch(p, [{ op: 'put', key: 'a', value: bytes('two') }]);
      expect(text(await kv().get(p, 'a'))).toBe('two');
      await kv().batch(p, [{ op: 'delete', key: 'a' }]);
      expect(await kv().get(p, 'a')).toBeUndefined();
      // Deleting a missing key is not an error.
      await kv().batch(p, [{ op: 'delete', key: 'never-written' }]);
      expect(await kv().scan(p, { limit: 10 })).toEqual([]);
    });

    it('getMany answers per key, in order, with undefined for missing keys', async () => {
      const p = part('many');
      await kv().batch(p, [
        { op: 'put', key: 'x', value: bytes('X') },
        { op: 'put', key: 'y', value: bytes('Y') },
      ]);
      const got = await kv().getMany(p, ['y', 'missing', 'x', 'y']);
      expect(got.map(text)).toEqual(['Y', undefined, 'X', 'Y']);
      expect(await kv().getMany(p, [])).toEqual([]);
    });

    it('returns plain Uint8Arrays and keeps values the caller mutates after batch()', async () => {
      const p = part('copy');
      const value = bytes('original');
      const pending = kv().batch(p, [{ op: 'put', key: 'k', value }]);
      value.fill(0x21);
      await pending;
      const got = await kv().get(p, 'k');
      expect(got?.constructor).toBe(Uint8Array);
      expect(text(got)).toBe('original');
    });

    it('applies a batch in op order', async () => {
      const p = part('order');
      await kv().batch(p, [
        { op: 'put', key: 'gone', value: bytes('1') },
        { op: 'delete', key: 'gone' },
        { op: 'delete', key: 'back' },
        { op: 'put', key: 'back', value: bytes('2') },
        { op: 'put', key: 'twice', value: bytes('first') },
        { op: 'put', key: 'twice', value: bytes('second') },
      ]);
      expect((await kv().getMany(p, ['gone', 'back', 'twice'])).map(text)).toEqual([
        undefined,
        '2',
        'second',
      ]);
    });

    it('a batch with one invalid op applies nothing', async () => {
      const p = part('atomic');
      await kv().batch(p, [{ op: 'put', key: 'keep', value: bytes('before') }]);
      const invalidOps: unknown[][] = [
        [
          { op: 'put', key: 'new', value: bytes('x') },
          { op: 'put', key: 'keep', value: 'not bytes' },
        ],
        [
          { op: 'delete', key: 'keep' },
          { op: 'put', key: '', value: bytes('x') },
        ],
        [
          { op: 'put', key: 'new', value: bytes('x') },
          { op: 'upsert', key: 'keep', value: bytes('x') },
        ],
        [{ op: 'put', key: 'new', value: bytes('x') }, null],
        [
          { op: 'put', key: 'new', value: bytes('x') },
          { op: 'put', key: 'k'.repeat(2000), value: bytes('x') },
        ],
      ];
      for (const ops of invalidOps) {
        await expectKvError(kv().batch(p, ops as never), 'KV_ERR_INVALID_ARGUMENT', /ops\[1\]/);
      }
      expect((await kv().scan(p, { limit: 10 })).map((e) => [e.key, text(e.value)])).toEqual([
        ['keep', 'before'],
      ]);
    });

    it('stores arbitrary binary values, including empty and 1 MiB ones', async () => {
      const p = part('binary');
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      const big = new Uint8Array(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
      await kv().batch(p, [
        { op: 'put', key: 'all', value: all },
        { op: 'put', key: 'empty', value: new Uint8Array(0) },
        { op: 'put', key: 'big', value: big },
        // A view into a larger buffer: only the viewed bytes are stored.
        { op: 'put', key: 'view', value: all.subarray(10, 13) },
      ]);
      const [a, e, b, v] = await kv().getMany(p, ['all', 'empty', 'big', 'view']);
      expect(a).toEqual(all);
      expect(e).toEqual(new Uint8Array(0));
      expect(b?.length).toBe(big.length);
      expect(Buffer.from(b!).equals(Buffer.from(big))).toBe(true);
      expect(v).toEqual(Uint8Array.of(10, 11, 12));
      const scanned = await kv().scan(p, { limit: 10 });
      expect(scanned.map((x) => x.key)).toEqual(['all', 'big', 'empty', 'view']);
      expect(scanned[0]!.value).toEqual(all);
    });

    describe('scan', () => {
      // Chosen so that UTF-8 byte order differs from JS string (UTF-16) order and from locale order:
      // 'B' < 'a', and U+1F600 (F0 9F 98 80) sorts after U+FFFD (EF BF BD) although its UTF-16 form is smaller.
      const keys = [
        'a',
        'B',
        'ab',
        'abc',
        'abd',
        'ac',
        'b',
        'é',
        '\u{1F600}',
        '\uFFFD',
        'a\u0000z',
        'a/1',
        'a/2',
      ];
      const sorted = [...keys].sort(byteOrder);
      let p: string;

      beforeAll(async () => {
        if (!backend.available) return;
        p = part('scan');
        await fx.store.batch(
          p,
          keys.map((k) => ({ op: 'put' as const, key: k, value: bytes(`v:${k}`) })),
        );
      });

      const scanKeys = async (opts: Parameters<KvStore['scan']>[1]) =>
        (await kv().scan(p, opts)).map((e) => e.key);

      it('returns every key in byte-lexicographic order with its value', async () => {
        const all = await kv().scan(p, { limit: 100 });
        expect(all.map((e) => e.key)).toEqual(sorted);
        for (const e of all) expect(text(e.value)).toBe(`v:${e.key}`);
        expect(sorted.indexOf('\u{1F600}')).toBeGreaterThan(sorted.indexOf('\uFFFD'));
      });

      it('reverses', async () => {
        expect(await scanKeys({ limit: 100, reverse: true })).toEqual([...sorted].reverse());
      });

      it('limits', async () => {
        expect(await scanKeys({ limit: 3 })).toEqual(sorted.slice(0, 3));
        expect(await scanKeys({ limit: 3, reverse: true })).toEqual([...sorted].reverse().slice(0, 3));
        expect(await scanKeys({ limit: 1 })).toEqual(sorted.slice(0, 1));
      });

      it('filters by prefix, forward and reverse', async () => {
        const withA = sorted.filter((k) => k.startsWith('a'));
        expect(await scanKeys({ prefix: 'a', limit: 100 })).toEqual(withA);
        expect(await scanKeys({ prefix: 'a', limit: 100, reverse: true })).toEqual([...withA].reverse());
        expect(await scanKeys({ prefix: 'ab', limit: 100 })).toEqual(['ab', 'abc', 'abd']);
        expect(await scanKeys({ prefix: 'abc', limit: 100 })).toEqual(['abc']);
        expect(await scanKeys({ prefix: 'zz', limit: 100 })).toEqual([]);
        expect(await scanKeys({ prefix: '', limit: 100 })).toEqual(sorted);
        expect(await scanKeys({ prefix: '\u{1F600}', limit: 100 })).toEqual(['\u{1F600}']);
      });

      it('starts strictly after the cursor, forward and reverse', async () => {
        expect(await scanKeys({ after: 'ab', limit: 100 })).toEqual(
          sorted.filter((k) => byteOrder(k, 'ab') > 0),
        );
        expect(await scanKeys({ after: 'ab', limit: 100, reverse: true })).toEqual(
          sorted.filter((k) => byteOrder(k, 'ab') < 0).reverse(),
        );
        // A cursor that is not a stored key.
        expect(await scanKeys({ after: 'aa', limit: 2 })).toEqual(['ab', 'abc']);
        expect(await scanKeys({ after: 'aa', limit: 2, reverse: true })).toEqual(['a/2', 'a/1']);
        // An empty cursor means "from the start" in both directions.
        expect(await scanKeys({ after: '', limit: 100 })).toEqual(sorted);
        expect(await scanKeys({ after: '', limit: 100, reverse: true })).toEqual([...sorted].reverse());
      });

      it('combines prefix and cursor', async () => {
        expect(await scanKeys({ prefix: 'ab', after: 'ab', limit: 100 })).toEqual(['abc', 'abd']);
        expect(await scanKeys({ prefix: 'ab', after: 'abd', limit: 100, reverse: true })).toEqual([
          'abc',
          'ab',
        ]);
        // Cursor before the prefix range: the whole range; after it: nothing.
        expect(await scanKeys({ prefix: 'ab', after: 'a', limit: 100 })).toEqual(['ab', 'abc', 'abd']);
        expect(await scanKeys({ prefix: 'ab', after: 'b', limit: 100 })).toEqual([]);
        expect(await scanKeys({ prefix: 'ab', after: 'b', limit: 100, reverse: true })).toEqual([
          'abd',
          'abc',
          'ab',
        ]);
        expect(await scanKeys({ prefix: 'ab', after: 'a', limit: 100, reverse: true })).toEqual([]);
      });

      it('pages through a partition with the last key as cursor, each key exactly once', async () => {
        for (const reverse of [false, true]) {
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await scanKeys({ limit: 4, after, reverse });
            if (page.length === 0) break;
            seen.push(...page);
            after = page[page.length - 1];
          }
          expect(seen).toEqual(reverse ? [...sorted].reverse() : sorted);
        }
      });
    });

    it('keeps partitions isolated, including names that differ only by bytes a layout could confuse', async () => {
      const base = part('iso');
      // '{', '}' and '%' could move a Redis Cluster hash tag or collide after escaping; NUL-adjacent bytes
      // could straddle the embedded key separator.
      const partitions = [
        base,
        `${base}\u0001`,
        `${base}x`,
        `{${base}}`,
        `%7B${base}%7D`,
        `${base}}`,
        `%${base}`,
      ];
      await Promise.all(
        partitions.map((p) =>
          kv().batch(p, [
            { op: 'put', key: 'k', value: bytes(p) },
            { op: 'put', key: `only-${p}`, value: bytes(p) },
          ]),
        ),
      );
      for (const p of partitions) {
        expect(text(await kv().get(p, 'k'))).toBe(p);
        expect((await kv().scan(p, { limit: 100 })).map((e) => e.key).sort(byteOrder)).toEqual(
          ['k', `only-${p}`].sort(byteOrder),
        );
      }
      await kv().batch(base, [{ op: 'delete', key: 'k' }]);
      expect(await kv().get(base, 'k')).toBeUndefined();
      expect(text(await kv().get(`${base}x`, 'k'))).toBe(`${base}x`);
    });

    it('runs many concurrent batches, each atomically visible', async () => {
      const p = part('concurrent');
      const writers = Array.from({ length: 200 }, (_, i) =>
        kv().batch(p, [
          { op: 'put', key: `w${i}-a`, value: bytes(String(i)) },
          { op: 'put', key: `w${i}-b`, value: bytes(String(i)) },
          { op: 'put', key: 'pair-1', value: bytes(String(i)) },
          { op: 'put', key: 'pair-2', value: bytes(String(i)) },
        ]),
      );
      // Readers racing the writers must never see pair-1 and pair-2 from different batches.
      const readers = Array.from({ length: 50 }, async () => {
        const [a, b] = await kv().getMany(p, ['pair-1', 'pair-2']);
        expect(text(a)).toBe(text(b));
        const scanned = await kv().scan(p, { prefix: 'pair-', limit: 2 });
        if (scanned.length > 0) expect(text(scanned[0]!.value)).toBe(text(scanned[1]?.value));
      });
      await Promise.all([...writers, ...readers]);
      const all = await kv().scan(p, { limit: 1000 });
      expect(all.length).toBe(402);
      for (let i = 0; i < 200; i++) {
        expect((await kv().getMany(p, [`w${i}-a`, `w${i}-b`])).map(text)).toEqual([String(i), String(i)]);
      }
    });

    it('rejects invalid arguments with KV_ERR_INVALID_ARGUMENT, before touching the store', async () => {
      const p = part('invalid');
      const s = kv();
      await expectKvError(s.get('', 'k'), 'KV_ERR_INVALID_ARGUMENT', /partition must not be empty/);
      await expectKvError(s.get('a\u0000b', 'k'), 'KV_ERR_INVALID_ARGUMENT', /NUL/);
      await expectKvError(
        s.get('p'.repeat(257), 'k'),
        'KV_ERR_INVALID_ARGUMENT',
        /partition is 257 UTF-8 bytes/,
      );
      await expectKvError(s.get(p, ''), 'KV_ERR_INVALID_ARGUMENT', /key must not be empty/);
      await expectKvError(s.get(p, 'é'.repeat(513)), 'KV_ERR_INVALID_ARGUMENT', /1026 UTF-8 bytes/);
      await expectKvError(s.get(p, 'bad\uD800'), 'KV_ERR_INVALID_ARGUMENT', /lone UTF-16 surrogate/);
      await expectKvError(s.get(p, 42 as never), 'KV_ERR_INVALID_ARGUMENT', /key must be a string/);
      await expectKvError(s.getMany(p, 'k' as never), 'KV_ERR_INVALID_ARGUMENT', /keys must be an array/);
      await expectKvError(s.getMany(p, ['ok', '']), 'KV_ERR_INVALID_ARGUMENT', /keys\[1\]/);
      await expectKvError(s.batch(p, {} as never), 'KV_ERR_INVALID_ARGUMENT', /ops must be an array/);
      const tooBig = new Uint8Array(16 * 1024 * 1024 + 1);
      await expectKvError(
        s.batch(p, [{ op: 'put', key: 'k', value: tooBig }]),
        'KV_ERR_INVALID_ARGUMENT',
        /ops\[0\]\.value is 16777217 bytes/,
      );
      const max = tooBig.subarray(1);
      await expectKvError(
        s.batch(
          p,
          [0, 1, 2, 3, 4].map((i) => ({ op: 'put' as const, key: `k${i}`, value: max })),
        ),
        'KV_ERR_INVALID_ARGUMENT',
        /at most 67108864 bytes of keys and values, got 83886090/,
      );
      await expectKvError(
        s.batch(
          p,
          Array.from({ length: 10_001 }, () => ({ op: 'delete' as const, key: 'k' })),
        ),
        'KV_ERR_INVALID_ARGUMENT',
        /at most 10000 ops/,
      );
      for (const limit of [0, 10_001, 1.5, Number.NaN, '10']) {
        await expectKvError(s.scan(p, { limit: limit as number }), 'KV_ERR_INVALID_ARGUMENT', /limit/);
      }
      await expectKvError(
        s.scan(p, { limit: 1, reverse: 'yes' as never }),
        'KV_ERR_INVALID_ARGUMENT',
        /reverse/,
      );
      await expectKvError(s.scan(p, { limit: 1, prefix: 7 as never }), 'KV_ERR_INVALID_ARGUMENT', /prefix/);
      await expectKvError(s.scan(p, null as never), 'KV_ERR_INVALID_ARGUMENT', /scan options/);
      expect(await s.scan(p, { limit: 10_000 })).toEqual([]);
    });

    it('persists across close and reopen', async () => {
      const p = part('reopen');
      await kv().batch(p, [{ op: 'put', key: 'durable', value: bytes('yes') }]);
      const reopened = await fx.reopen();
      expect(text(await reopened.get(p, 'durable'))).toBe('yes');
    });

    it('refuses calls after close, and close is idempotent', async () => {
      const s = kv();
      await s.close();
      await s.close();
      await expectKvError(s.get('p', 'k'), 'KV_ERR_CLOSED', /closed/);
      await expectKvError(s.batch('p', [{ op: 'delete', key: 'k' }]), 'KV_ERR_CLOSED');
      await fx.reopen();
    });
  });
});

describe.skipIf(!hasRedis)('kv redis standalone with AOF (appendfsync always)', () => {
  let redis: RedisInstance;
  beforeAll(async () => {
    redis = (await startRedis({ aof: true }))!;
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('keeps every acknowledged batch across a kill -9 of the server', async () => {
    const store = await openKv({ backend: 'redis', url: redis.url });
    const acked: string[] = [];
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        store
          .batch('aof', [{ op: 'put', key: `k${i}`, value: bytes(String(i)) }])
          .then(() => acked.push(`k${i}`)),
      ),
    );
    await store.close();
    await redis.halt('SIGKILL');
    await redis.restart();
    const reopened = await openKv({ backend: 'redis', url: redis.url });
    try {
      const got = await reopened.getMany('aof', acked);
      expect(got.map(text)).toEqual(acked.map((k) => k.slice(1)));
      expect((await reopened.scan('aof', { limit: 1000 })).length).toBe(100);
    } finally {
      await reopened.close();
    }
  });
});

describe('kv embedded: one store per directory per process', () => {
  it('refuses a second open of the same directory until the first is closed', async () => {
    const dir = await makeTempDir('camos-kv-twice');
    try {
      const first = await openKv({ backend: 'embedded', path: dir });
      await expectKvError(
        openKv({ backend: 'embedded', path: `${dir}/` }),
        'KV_ERR_CONFIG_INVALID',
        /already open/,
      );
      await first.close();
      const second = await openKv({ backend: 'embedded', path: dir });
      await second.close();
    } finally {
      await removeDir(dir);
    }
  });
});
