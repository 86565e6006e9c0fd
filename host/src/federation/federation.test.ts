/**
 * Unit tests of the federation host pieces that stand alone: the config section, the frame codec, the plan
 * of memory writes for a peer update, a link's frame order, the reconnect delay, the cut of a peer update
 * to what a node lacks, the state vector mirror, and the outcomes of a local write stored and recorded side
 * by side. The data paths are tested with real kernel processes in test/federation and
 * with the real component in drivers/federation.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { KernelError } from '../errors.js';
import { loadConfig } from '../server/config.js';
import { namespaceMatches, parseFederationConfig } from './config.js';
import { storeAndRecord } from './index.js';
import {
  advanceStateVector,
  ENTRY_META,
  type KeyUpdate,
  Link,
  lacking,
  missingWrites,
  ORIGIN_META,
  plan,
  reconnectDelay,
} from './node.js';
import { decodeFrame, encodeFrame, type Frame, FrameError, pack, unpack } from './wire.js';

const dir = mkdtempSync(join(tmpdir(), 'cam-fed-config-'));
for (const f of ['ca.crt', 'peer.crt', 'peer.key', 'me.crt', 'me.key']) writeFileSync(join(dir, f), 'pem');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tls = { ca: 'ca.crt', cert: 'peer.crt', key: 'peer.key', clientCert: 'me.crt', clientKey: 'me.key' };
const good = { nodeId: 'site-a-1', listen: '127.0.0.1:7400', namespaces: ['shared', 'team-*'], tls };
const parse = (v: unknown) => parseFederationConfig(v, 'config.json', dir);
const refused = (v: unknown) => {
  try {
    parse(v);
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).code).toBe('KERNEL_ERR_CONFIG_INVALID');
    return (e as Error).message;
  }
  throw new Error('expected the config to be refused');
};

describe('federation config', () => {
  it('accepts a minimal section with defaults, resolving TLS paths against the data dir', () => {
    const c = parse(good);
    expect(c.advertise).toBe('127.0.0.1:7400');
    expect(c.seeds).toEqual([]);
    expect(c.tls.ca).toBe(join(dir, 'ca.crt'));
    expect(c.heartbeatMs).toBe(250);
    expect(c.suspectAfterMs).toBe(3000);
    expect([c.reconnectMinMs, c.reconnectMaxMs]).toEqual([50, 500]);
  });

  it('names what is wrong', () => {
    expect(refused({ ...good, nodeId: 'a b' })).toMatch(/federation\.nodeId must be 1-128 characters/);
    expect(refused({ ...good, listen: 'nowhere' })).toMatch(/federation\.listen must be host:port/);
    expect(refused({ ...good, listen: '0.0.0.0:7400' })).toMatch(
      /advertise must be an address peers can dial/,
    );
    expect(refused({ ...good, seeds: ['x'] })).toMatch(/seeds\[0\] must be host:port/);
    expect(refused({ ...good, namespaces: [] })).toMatch(/namespaces must be a non-empty list/);
    expect(refused({ ...good, namespaces: ['a*b'] })).toMatch(/'a\*b' is not a namespace/);
    expect(refused({ ...good, tls: undefined })).toMatch(/peer links are mTLS only/);
    expect(refused({ ...good, tls: { ...tls, key: 'missing.key' } })).toMatch(
      /tls\.key: .*missing\.key does not exist/,
    );
    expect(refused({ ...good, routes: { 'b 1': '127.0.0.1:1' } })).toMatch(/routes: 'b 1' is not a node id/);
    expect(refused({ ...good, heartbeatMs: 1000, suspectAfterMs: 1500 })).toMatch(
      /more than twice heartbeatMs/,
    );
    expect(refused({ ...good, peers: [] })).toMatch(/unknown key\(s\) peers/);
    expect(refused({ ...good, identity: { key: 'me.key' } })).toMatch(/identity must be \{ "key"/);
    expect(refused({ ...good, identity: { key: 'none.json', peers: {} } })).toMatch(
      /identity\.key: .*none\.json does not exist/,
    );
    expect(refused({ ...good, identity: { key: 'me.key', peers: { b: 'gone.json' } } })).toMatch(
      /identity\.peers\.b: .*gone\.json does not exist/,
    );
  });

  it('is read from config.json by loadConfig, and absent by default', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cam-fed-load-'));
    try {
      expect(loadConfig({ dataDir }, {}).federation).toBeUndefined();
      for (const f of ['ca.crt', 'peer.crt', 'peer.key', 'me.crt', 'me.key'])
        writeFileSync(join(dataDir, f), 'pem');
      writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ federation: good }));
      expect(loadConfig({ dataDir }, {}).federation?.nodeId).toBe('site-a-1');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('matches namespaces like the component', () => {
    expect(namespaceMatches(['shared', 'team-*'], 'shared')).toBe(true);
    expect(namespaceMatches(['shared', 'team-*'], 'team-blue')).toBe(true);
    expect(namespaceMatches(['shared', 'team-*'], 'sharedx')).toBe(false);
    expect(namespaceMatches(['*'], 'anything')).toBe(true);
  });
});

describe('peer frames', () => {
  it('round-trip, payload untouched', () => {
    const payload = new Uint8Array([0, 1, 2, 255]);
    const members = [{ node: 'a', address: '127.0.0.1:1' }];
    expect(decodeFrame(encodeFrame({ t: 'hello', node: 'a', address: 'x:1', members, payload }))).toEqual({
      t: 'hello',
      node: 'a',
      address: 'x:1',
      members,
      payload,
    });
    expect(decodeFrame(encodeFrame({ t: 'update', payload }))).toEqual({ t: 'update', payload });
    expect(decodeFrame(encodeFrame({ t: 'sv', members, payload }))).toEqual({ t: 'sv', members, payload });
  });

  it('carry handshake messages with their bytes intact', () => {
    const m = {
      protocol: 'cam-os/channel@1',
      kem: new Uint8Array([1, 2, 3]),
      sig: { a: Buffer.from([9]) },
      n: 1,
    };
    const f = decodeFrame(encodeFrame({ t: 'ch1', node: 'a', m, payload: new Uint8Array(0) }));
    expect(f).toEqual({
      t: 'ch1',
      node: 'a',
      m: {
        protocol: 'cam-os/channel@1',
        kem: new Uint8Array([1, 2, 3]),
        sig: { a: new Uint8Array([9]) },
        n: 1,
      },
      payload: new Uint8Array(0),
    });
    expect(unpack(pack([new Uint8Array([7])]))).toEqual([new Uint8Array([7])]);
  });

  it('refuse malformed input with the reason', () => {
    expect(() => decodeFrame(Buffer.from([0, 0]))).toThrow(FrameError);
    expect(() => decodeFrame(Buffer.from([0, 0, 0, 9, 1]))).toThrow(/runs past the frame/);
    const h = Buffer.from('{"t":"nope"}');
    const b = Buffer.concat([Buffer.from([0, 0, 0, h.length]), h]);
    expect(() => decodeFrame(b)).toThrow(/unknown frame type "nope"/);
    const s = Buffer.from('{"t":"sv"}');
    expect(() => decodeFrame(Buffer.concat([Buffer.from([0, 0, 0, s.length]), s]))).toThrow(
      /without a members list/,
    );
  });
});

describe('plan of memory writes for a peer update', () => {
  const entry = (id: string, node: string, value: string, t: number) => ({
    id,
    originNode: node,
    change: {
      namespace: 'shared',
      key: 'k',
      hash: 'h',
      data: new TextEncoder().encode(value),
      metadata: [['x', '1']] as Array<[string, string]>,
      author: 'alice',
      timestampMs: BigInt(t),
    },
  });
  const values = (ws: ReturnType<typeof plan>) => ws.map((w) => new TextDecoder().decode(w.data));
  /** A key update as the component sends it: the current entry itself only when it is not one of `added`. */
  const update = (added: Entry[], current: Entry, currentChanged: boolean): KeyUpdate => ({
    namespace: 'shared',
    key: 'k',
    added,
    currentId: current.id,
    current: added.some((e) => e.id === current.id) ? undefined : current,
    currentChanged,
  });
  type Entry = ReturnType<typeof entry>;

  it('writes new entries oldest first and ends on the current value', () => {
    const a = entry('1.0', 'a', 'from-a', 1);
    const b = entry('2.0', 'b', 'from-b', 2);
    // b is current and the newest: written last once.
    expect(values(plan([update([a, b], b, true)]))).toEqual(['from-a', 'from-b']);
    // a is current though older: the loser b is kept in history, then a is written again on top.
    expect(values(plan([update([a, b], a, true)]))).toEqual(['from-a', 'from-b', 'from-a']);
    // Only a losing entry arrived: history gets it, the unchanged current value is restored on top.
    const cur = entry('3.0', 'c', 'local', 0);
    expect(values(plan([update([b], cur, false)]))).toEqual(['from-b', 'local']);
    // Nothing new and the current value unchanged: nothing to write.
    expect(plan([update([], cur, false)])).toEqual([]);
  });

  it('refuses a key update that names a current value it does not carry', () => {
    const a = entry('1.0', 'a', 'from-a', 1);
    const b = entry('2.0', 'b', 'from-b', 2);
    expect(() => plan([{ ...update([a], b, true), current: undefined }])).toThrow(
      /named 2\.0 current for shared\/k without sending it/,
    );
  });

  it('keeps the metadata and the author, and says where the write came from', () => {
    const a = entry('1.0', 'a', 'v', 1);
    const [w] = plan([update([a], a, true)]);
    expect(w!.author).toBe('alice');
    expect(w!.metadata).toEqual([
      ['x', '1'],
      [ORIGIN_META, 'a'],
      [ENTRY_META, '1.0'],
    ]);
  });
});

describe('a peer link', () => {
  /** A link over a fake stream: the frames written to it, decoded. */
  const fakeLink = () => {
    const written: Frame[] = [];
    const stream = { write: (b: Buffer) => written.push(decodeFrame(b)), end: () => undefined };
    return { link: new Link(stream as never, 'in', 'peer:1'), written };
  };
  const members = [{ node: 'a', address: '127.0.0.1:1' }];
  const payload = new Uint8Array([1]);

  it('sends nothing before its hello (the peer drops a link whose first frame is not one), then in order', () => {
    const { link, written } = fakeLink();
    link.send({ t: 'ping', payload: new Uint8Array(0) });
    link.send({ t: 'update', payload });
    expect(written).toEqual([]);
    expect(link.ready).toBe(false);
    link.send({ t: 'hello', node: 'a', address: 'x:1', members, payload });
    expect(written.map((f) => f.t)).toEqual(['hello', 'ping', 'update']);
    expect(link.ready).toBe(true);
    link.send({ t: 'sv', members, payload });
    expect(written.map((f) => f.t)).toEqual(['hello', 'ping', 'update', 'sv']);
  });

  it('drops what it held when closed before its hello', () => {
    const { link, written } = fakeLink();
    link.send({ t: 'update', payload });
    link.close();
    link.send({ t: 'hello', node: 'a', address: 'x:1', members, payload });
    expect(written).toEqual([]);
  });
});

describe('reconnect delay', () => {
  const c = { reconnectMinMs: 50, reconnectMaxMs: 500 };

  it('backs off exponentially with jitter up to the maximum', () => {
    expect(reconnectDelay(1, 0, c, 1)).toBe(50);
    expect(reconnectDelay(1, 0, c, 0)).toBe(25);
    expect(reconnectDelay(3, 0, c, 1)).toBe(200);
    expect(reconnectDelay(10, 0, c, 1)).toBe(500);
  });

  it('counts from the start of the failed attempt: one that hung through a partition redials at once', () => {
    expect(reconnectDelay(10, 120, c, 1)).toBe(380);
    expect(reconnectDelay(10, 3000, c, 1)).toBe(0);
  });
});

describe('what of a peer update a node lacks', () => {
  const doc = (client: number, keys: string[]) => {
    const d = new Y.Doc();
    d.clientID = client;
    for (const k of keys) d.getMap('v:shared').set(k, `${client}:${k}`);
    return d;
  };

  it('nothing when the node has every struct of it, the missing part otherwise', () => {
    const a = doc(1, ['x', 'y']);
    const b = doc(2, ['z']);
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    expect(lacking(Y.encodeStateAsUpdate(a), Y.encodeStateVector(b))).toBeUndefined();
    // b has x and y; after a writes w, the cut of a's whole state holds only w, and brings b level.
    a.getMap('v:shared').set('w', 'later');
    const whole = Y.encodeStateAsUpdate(a);
    const rest = lacking(whole, Y.encodeStateVector(b))!;
    expect(rest.byteLength).toBeLessThan(whole.byteLength);
    Y.applyUpdate(b, rest);
    expect(b.getMap('v:shared').get('w')).toBe('later');
    expect(b.getMap('v:shared').get('x')).toBe('1:x');
  });

  it('keeps overwrites: the cut update still replaces an overwritten value', () => {
    const a = doc(1, ['k']);
    const b = new Y.Doc();
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    a.getMap('v:shared').set('k', 'second');
    const rest = lacking(Y.encodeStateAsUpdate(a), Y.encodeStateVector(b))!;
    Y.applyUpdate(b, rest);
    expect(b.getMap('v:shared').get('k')).toBe('second');
    expect(lacking(Y.encodeStateAsUpdate(a), Y.encodeStateVector(b))).toBeUndefined();
  });
});

describe('the state vector mirror', () => {
  /** A write as the component makes it: two map sets, one transaction, one update. */
  const write = (d: Y.Doc, key: string): Uint8Array => {
    let u: Uint8Array | undefined;
    const on = (x: Uint8Array) => {
      u = x;
    };
    d.on('update', on);
    d.transact(() => {
      const id = `${d.clientID}.${Y.getState(d.store, d.clientID)}`;
      d.getMap('e:shared').set(id, new Uint8Array([1]));
      d.getMap('v:shared').set(key, id);
    });
    d.off('update', on);
    return u!;
  };

  it("follows local writes and applied updates like the document's own state vector", () => {
    const a = new Y.Doc();
    const b = new Y.Doc();
    const sv = Y.decodeStateVector(Y.encodeStateVector(a));
    for (let i = 0; i < 3; i++) advanceStateVector(sv, write(a, `k${i}`));
    const fromB = write(b, 'x');
    write(b, 'x');
    const twoOfB = Y.encodeStateAsUpdate(b);
    Y.applyUpdate(a, fromB);
    advanceStateVector(sv, fromB);
    // An update that repeats what the document has moves nothing back.
    Y.applyUpdate(a, twoOfB);
    advanceStateVector(sv, twoOfB);
    advanceStateVector(sv, fromB);
    expect(sv).toEqual(Y.decodeStateVector(Y.encodeStateVector(a)));
  });

  it("counts the writes a peer lacks as the component's missing does", () => {
    const a = new Y.Doc();
    const b = new Y.Doc();
    for (let i = 0; i < 5; i++) write(a, `k${i}`);
    const ours = Y.decodeStateVector(Y.encodeStateVector(a));
    expect(missingWrites(ours, Y.encodeStateVector(b))).toBe(5);
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    expect(missingWrites(ours, Y.encodeStateVector(b))).toBe(0);
    write(b, 'only-on-b');
    expect(missingWrites(ours, Y.encodeStateVector(b))).toBe(0);
  });
});

describe('a local write stored in memory and recorded in the document side by side', () => {
  const hash = 'ab'.repeat(32);
  /** Runs storeAndRecord with memory answering `mem` in turn (an Error rejects) and the document `doc`. */
  const run = async (mem: Array<string | Error>, doc: Error | undefined) => {
    const calls = { store: 0, record: 0 };
    const warnings: string[] = [];
    const outcome = await storeAndRecord(
      async () => {
        const answer = mem[calls.store++]!;
        if (answer instanceof Error) throw answer;
        return { hash: answer, version: calls.store };
      },
      async () => {
        calls.record++;
        if (doc) throw doc;
      },
      hash,
      'shared/k',
      (l) => warnings.push(l),
    ).then(
      (v) => ({ ok: v }),
      (e: Error) => ({ error: e.message }),
    );
    return { outcome, calls, warnings };
  };

  it('answers with the receipt when both succeed, each called once', async () => {
    expect(await run([hash], undefined)).toEqual({
      outcome: { ok: { hash, version: 1 } },
      calls: { store: 1, record: 1 },
      warnings: [],
    });
  });

  it("stores again when memory failed but the document took the write, and answers with memory's error", async () => {
    const r = await run([new Error('memory busy'), hash], undefined);
    expect(r.outcome).toEqual({ error: 'memory busy' });
    expect(r.calls).toEqual({ store: 2, record: 1 });
    expect(r.warnings).toEqual([]);
    const twice = await run([new Error('memory busy'), new Error('memory down')], undefined);
    expect(twice.outcome).toEqual({ error: 'memory busy' });
    expect(twice.warnings).toEqual([
      expect.stringMatching(/shared\/k is in the document but memory refused it twice \(memory down\)/),
    ]);
  });

  it("answers with the document's error when only the document failed (the write is local only), memory's when both did", async () => {
    expect((await run([hash], new Error('kv down'))).outcome).toEqual({ error: 'kv down' });
    const both = await run([new Error('memory down')], new Error('kv down'));
    expect(both.outcome).toEqual({ error: 'memory down' });
    expect(both.calls).toEqual({ store: 1, record: 1 });
  });

  it('refuses a receipt whose hash is not the one the document recorded', async () => {
    expect((await run(['cd'.repeat(32)], undefined)).outcome).toEqual({
      error: expect.stringMatching(/memory stored shared\/k with hash cdcd.*, the document with abab/),
    });
  });
});
