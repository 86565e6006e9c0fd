import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publicKeyOf } from './keys.js';
import { testKeyPair } from './testing.js';
import { TRUST_STORE_FILE, TrustStore, TrustStoreError } from './trust-store.js';

const alice = publicKeyOf(testKeyPair('alice'));
const bob = publicKeyOf(testKeyPair('bob'));
const carol = publicKeyOf(testKeyPair('carol'));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-trust-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrustStoreError);
  expect((err as TrustStoreError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
}

describe('TrustStore', () => {
  it('starts empty, creates its directory, and persists nothing until a change', async () => {
    const store = await TrustStore.open(join(dir, 'nested', 'trust'));
    expect(store.list()).toEqual([]);
    expect(store.lookup(alice.keyId)).toEqual({ status: 'unknown' });
    expect(await readdir(join(dir, 'nested', 'trust'))).toEqual([]);
  });

  it('adds, lists, looks up, and survives a reopen', async () => {
    const store = await TrustStore.open(dir);
    const added = await store.add(alice, {
      label: 'Alice Drivers Ltd',
      now: new Date('2026-01-01T00:00:00Z'),
    });
    await store.add(bob, { now: new Date('2026-01-02T00:00:00Z') });
    expect(added).toMatchObject({
      keyId: alice.keyId,
      label: 'Alice Drivers Ltd',
      addedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(store.list().map((k) => k.keyId)).toEqual([alice.keyId, bob.keyId]);
    expect(store.lookup(alice.keyId)).toMatchObject({ status: 'trusted', key: { keyId: alice.keyId } });

    const reopened = await TrustStore.open(dir);
    expect(reopened.list()).toEqual(store.list());
    const doc = JSON.parse(await readFile(join(dir, TRUST_STORE_FILE), 'utf8'));
    expect(doc.format).toBe('cam-os/trust-store@1');
    expect(doc.keys).toHaveLength(2);
  });

  it('adding the same key again is a no-op; a key whose id does not match its keys is refused', async () => {
    const store = await TrustStore.open(dir);
    const first = await store.add(alice, { now: new Date('2026-01-01T00:00:00Z') });
    const again = await store.add(alice, { now: new Date('2026-02-01T00:00:00Z') });
    expect(again).toBe(first);
    await expectCode(
      store.add({ ...alice, keyId: bob.keyId }),
      'invalid-argument',
      /does not match its public keys/,
    );
    await expectCode(
      store.add({ ...alice, ed25519: new Uint8Array(31) }),
      'invalid-argument',
      /must be 1952/,
    );
    await expectCode(store.add(bob, { label: 'bad\nlabel' }), 'invalid-argument', /control characters/);
    expect(store.list()).toHaveLength(1);
  });

  it('removes a key', async () => {
    const store = await TrustStore.open(dir);
    await store.add(alice);
    await store.add(bob);
    await store.remove(alice.keyId);
    expect(store.lookup(alice.keyId).status).toBe('unknown');
    expect((await TrustStore.open(dir)).list().map((k) => k.keyId)).toEqual([bob.keyId]);
    await expectCode(store.remove(alice.keyId), 'unknown-key', /not in the trust store/);
  });

  it('revokes with reason and time; revoked keys are kept, refused, and cannot be removed or re-added', async () => {
    const store = await TrustStore.open(dir);
    await store.add(alice);
    const at = new Date('2026-03-04T05:06:07Z');
    const revoked = await store.revoke(alice.keyId, '  signing key leaked  ', at);
    expect(revoked.revoked).toEqual({ reason: 'signing key leaked', at: '2026-03-04T05:06:07.000Z' });
    expect(store.lookup(alice.keyId)).toMatchObject({
      status: 'revoked',
      key: { revoked: { reason: 'signing key leaked' } },
    });

    const reopened = await TrustStore.open(dir);
    expect(reopened.lookup(alice.keyId).status).toBe('revoked');
    expect(reopened.list()).toHaveLength(1);

    await expectCode(reopened.remove(alice.keyId), 'revoked-key', /revoked keys are kept/);
    await expectCode(reopened.add(alice), 'revoked-key', /cannot be added again/);
    await expectCode(reopened.revoke(alice.keyId, 'again'), 'revoked-key', /already revoked at 2026-03-04/);
    await expectCode(reopened.revoke(bob.keyId, 'x'), 'unknown-key', /not in the trust store/);
    await reopened.add(bob);
    await expectCode(reopened.revoke(bob.keyId, '   '), 'invalid-argument', /needs a reason/);
    expect(reopened.lookup(bob.keyId).status).toBe('trusted');
  });

  it('serializes concurrent changes: every one lands in the file', async () => {
    const store = await TrustStore.open(dir);
    await Promise.all([store.add(alice), store.add(bob), store.add(carol)]);
    expect((await TrustStore.open(dir)).list()).toHaveLength(3);
  });

  it('leaves file and memory unchanged when a write fails, and leaves no temp file behind', async () => {
    const store = await TrustStore.open(dir);
    await store.add(alice);
    const before = await readFile(join(dir, TRUST_STORE_FILE), 'utf8');
    // Make the rename fail: the store file's place is taken by a non-empty directory.
    await rm(join(dir, TRUST_STORE_FILE));
    await mkdir(join(dir, TRUST_STORE_FILE));
    await writeFile(join(dir, TRUST_STORE_FILE, 'x'), 'x');
    await expect(store.add(bob)).rejects.toThrow();
    await expect(store.revoke(alice.keyId, 'test')).rejects.toThrow();
    expect(store.lookup(bob.keyId).status).toBe('unknown');
    expect(store.lookup(alice.keyId).status).toBe('trusted');
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // Once the path is free again, the next change writes the whole state.
    await rm(join(dir, TRUST_STORE_FILE), { recursive: true });
    await writeFile(join(dir, TRUST_STORE_FILE), before);
    await store.add(bob);
    expect((await TrustStore.open(dir)).list()).toHaveLength(2);
  });

  it('refuses a corrupt or tampered store file, saying what is wrong', async () => {
    const path = join(dir, TRUST_STORE_FILE);
    const store = await TrustStore.open(dir);
    await store.add(alice);
    const good = JSON.parse(await readFile(path, 'utf8'));

    const cases: [unknown, RegExp][] = [
      ['{', /not valid JSON/],
      [{ ...good, format: 'other' }, /format must be/],
      [{ ...good, extra: 1 }, /unknown field 'extra'/],
      [
        { ...good, keys: [{ ...good.keys[0], keyId: bob.keyId }] },
        /keys\[0\]\.keyId .* does not match its keys/,
      ],
      [{ ...good, keys: [{ ...good.keys[0], ed25519: 'AAAA' }] }, /keys\[0\]\.ed25519 is not/],
      [{ ...good, keys: [good.keys[0], good.keys[0]] }, /listed twice/],
      [
        { ...good, keys: [{ ...good.keys[0], revoked: { reason: 'x' } }] },
        /needs a reason and an ISO 8601 time/,
      ],
    ];
    for (const [content, message] of cases) {
      await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
      await expectCode(TrustStore.open(dir), 'corrupt', message);
      // reload() on an open store keeps the current state when the file is bad.
      await expect(store.reload()).rejects.toThrow(message);
      expect(store.lookup(alice.keyId).status).toBe('trusted');
    }
  });
});
