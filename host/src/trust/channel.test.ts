import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptChannel,
  type ChannelAccept,
  ChannelError,
  type ChannelErrorCode,
  initiateChannel,
  RECORD_HEADER_BYTES,
  type SecureChannel,
} from './channel.js';
import { publicKeyOf } from './keys.js';
import { testKeyPair } from './testing.js';
import { TrustStore } from './trust-store.js';

const nodeA = testKeyPair('channel/node-a');
const nodeB = testKeyPair('channel/node-b');
const intruder = testKeyPair('channel/intruder');
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

let dir: string;
let trust: TrustStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-trust-channel-'));
  trust = await TrustStore.open(dir);
  await trust.add(publicKeyOf(nodeA));
  await trust.add(publicKeyOf(nodeB));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function handshake(): Promise<[SecureChannel, SecureChannel]> {
  const initiator = await initiateChannel({ identity: nodeA, peerKeys: trust });
  const responder = await acceptChannel(initiator.hello, { identity: nodeB, peerKeys: trust });
  const { finish, channel: a } = initiator.complete(responder.accept);
  const b = responder.complete(finish);
  return [a, b];
}

function expectChannelError(fn: () => unknown, code: ChannelErrorCode, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ChannelError);
    expect((err as ChannelError).code).toBe(code);
    if (message) expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error(`expected ChannelError ${code}`);
}

describe('secure channel', () => {
  it('full handshake with mutual identities, messages both ways, rekey, tamper detection', async () => {
    const initiator = await initiateChannel({ identity: nodeA, peerKeys: trust });
    expect(initiator.hello.kemPublicKey.byteLength).toBe(1184);
    expect(initiator.hello.x25519PublicKey.byteLength).toBe(32);
    expect(initiator.hello.keyId).toBe(nodeA.keyId);

    const responder = await acceptChannel(initiator.hello, { identity: nodeB, peerKeys: trust });
    expect(responder.accept.kemCiphertext.byteLength).toBe(1088);
    expect(responder.accept.signature?.mlDsa65.byteLength).toBe(3309);

    const { finish, channel: a } = initiator.complete(responder.accept);
    const b = responder.complete(finish);
    expect(a.id).toMatch(/^[0-9a-f]{32}$/);
    expect(b.id).toBe(a.id);
    expect(a.peerKeyId).toBe(nodeB.keyId);
    expect(b.peerKeyId).toBe(nodeA.keyId);

    // Messages both ways, with AAD.
    for (let i = 0; i < 5; i++) {
      expect(str(b.open(a.seal(text(`ping ${i}`), text('hdr')), text('hdr')))).toBe(`ping ${i}`);
      expect(str(a.open(b.seal(text(`pong ${i}`))))).toBe(`pong ${i}`);
    }
    const sealed = a.seal(text('same plaintext'));
    const again = a.seal(text('same plaintext'));
    expect(
      Buffer.from(sealed.subarray(RECORD_HEADER_BYTES)).equals(
        Buffer.from(again.subarray(RECORD_HEADER_BYTES)),
      ),
    ).toBe(false);
    b.open(sealed);
    b.open(again);

    // A record reflected back to its sender does not open (per-direction keys).
    expectChannelError(() => a.open(a.seal(text('mirror'))), 'tampered');

    // Rekey: the sender ratchets, the receiver follows on the next record; old-epoch records are then refused.
    const oldEpochRecord = a.seal(text('before rekey'));
    a.rekey();
    expect(a.sendEpoch).toBe(1);
    const afterRekey = a.seal(text('after rekey'));
    expect(str(b.open(afterRekey))).toBe('after rekey');
    expect(b.receiveEpoch).toBe(1);
    expectChannelError(() => b.open(oldEpochRecord), 'replay', /epoch 0/);
    b.rekey();
    b.rekey();
    expect(str(a.open(b.seal(text('two rekeys later'))))).toBe('two rekeys later');
    expect(a.receiveEpoch).toBe(2);

    // Tampering: any flipped bit (header, ciphertext, tag) or wrong AAD fails authentication; state is unchanged.
    const record = a.seal(text('integrity matters'), text('aad'));
    for (const index of [0, 5, 11, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 3, record.byteLength - 1]) {
      const forged = new Uint8Array(record);
      forged[index]! ^= 0x01;
      // A changed header may read as a stale record or an epoch too far ahead; either way it is refused.
      const allowed = index < RECORD_HEADER_BYTES ? ['replay', 'tampered', 'malformed-record'] : ['tampered'];
      try {
        b.open(forged, text('aad'));
        throw new Error(`forged record accepted (byte ${index})`);
      } catch (err) {
        expect(err).toBeInstanceOf(ChannelError);
        expect(allowed).toContain((err as ChannelError).code);
      }
    }
    expectChannelError(() => b.open(record, text('other aad')), 'tampered');
    expect(str(b.open(record, text('aad')))).toBe('integrity matters');

    // Replays and reordering are refused; lost records are tolerated.
    expectChannelError(() => b.open(record, text('aad')), 'replay');
    const r1 = a.seal(text('1'));
    const r2 = a.seal(text('2'));
    const r3 = a.seal(text('3'));
    expect(str(b.open(r2))).toBe('2');
    expectChannelError(() => b.open(r1), 'replay');
    expect(str(b.open(r3))).toBe('3');

    // Truncated records, and records from too far ahead.
    expectChannelError(() => b.open(new Uint8Array(27)), 'malformed-record');
    const ahead = new Uint8Array(a.seal(text('x')));
    new DataView(ahead.buffer).setUint32(0, 1000);
    expectChannelError(() => b.open(ahead), 'malformed-record', /too far ahead/);

    a.close();
    b.close();
    expectChannelError(() => a.seal(text('x')), 'closed');
  });

  it('anonymous channels work when no identity is required', async () => {
    const initiator = await initiateChannel();
    const responder = await acceptChannel(initiator.hello);
    const { finish, channel: a } = initiator.complete(responder.accept);
    const b = responder.complete(finish);
    expect(a.peerKeyId).toBeUndefined();
    expect(b.peerKeyId).toBeUndefined();
    expect(str(b.open(a.seal(text('hi'))))).toBe('hi');
  });

  it('two handshakes give unrelated channels', async () => {
    const [a1, b1] = await handshake();
    const [a2] = await handshake();
    expect(a2.id).not.toBe(a1.id);
    expectChannelError(() => b1.open(a2.seal(text('cross-channel'))), 'tampered');
  });

  it('a man in the middle swapping the key shares is caught by the identity signatures', async () => {
    const initiator = await initiateChannel({ identity: nodeA, peerKeys: trust });
    // The attacker replaces the initiator's key shares with its own before forwarding the hello.
    const attackerSide = await initiateChannel();
    const forwardedHello = {
      ...initiator.hello,
      kemPublicKey: attackerSide.hello.kemPublicKey,
      x25519PublicKey: attackerSide.hello.x25519PublicKey,
    };
    const responder = await acceptChannel(forwardedHello, { identity: nodeB, peerKeys: trust });
    // The responder's signature covers the transcript it saw, which is not the initiator's.
    expectChannelError(
      () => initiator.complete(responder.accept),
      'peer-bad-signature',
      /transcript signature failed/,
    );
  });

  it('without identities, a man in the middle is not detected by the handshake but cannot read the records', async () => {
    const initiator = await initiateChannel();
    const attackerSide = await initiateChannel();
    const responder = await acceptChannel({
      ...initiator.hello,
      x25519PublicKey: attackerSide.hello.x25519PublicKey,
    });
    const { finish, channel: a } = initiator.complete(responder.accept);
    const b = responder.complete(finish);
    expect(a.id).not.toBe(b.id);
    expectChannelError(() => b.open(a.seal(text('secret'))), 'tampered');
  });

  it('refuses unknown, revoked, impersonated and missing identities', async () => {
    // Unknown initiator key: refused by the responder before any KEM work.
    const strangerInit = await initiateChannel({ identity: intruder });
    await expect(
      acceptChannel(strangerInit.hello, { identity: nodeB, peerKeys: trust }),
    ).rejects.toMatchObject({ code: 'peer-unknown' });

    // An intruder claiming node A's key id cannot produce node A's transcript signature.
    const impostor = await initiateChannel({ identity: intruder });
    const claimedHello = { ...impostor.hello, keyId: nodeA.keyId };
    const responder = await acceptChannel(claimedHello, { identity: nodeB, peerKeys: trust });
    const { finish } = impostor.complete(responder.accept);
    expectChannelError(() => responder.complete(finish), 'peer-bad-signature');

    // Anonymous initiator to a responder that requires identities.
    const anon = await initiateChannel();
    await expect(acceptChannel(anon.hello, { peerKeys: trust })).rejects.toMatchObject({
      code: 'peer-unauthenticated',
    });

    // Anonymous responder to an initiator that requires identities.
    const strict = await initiateChannel({ identity: nodeA, peerKeys: trust });
    const anonResponder = await acceptChannel(strict.hello);
    expectChannelError(() => strict.complete(anonResponder.accept), 'peer-unauthenticated');

    // Revoked responder key.
    const revokedDir = await mkdtemp(join(tmpdir(), 'cam-trust-channel-revoked-'));
    try {
      const store = await TrustStore.open(revokedDir);
      await store.add(publicKeyOf(nodeA));
      await store.add(publicKeyOf(nodeB));
      await store.revoke(nodeB.keyId, 'node decommissioned');
      const init = await initiateChannel({ identity: nodeA, peerKeys: store });
      const resp = await acceptChannel(init.hello, { identity: nodeB, peerKeys: trust });
      expectChannelError(() => init.complete(resp.accept), 'peer-revoked', /node decommissioned/);
    } finally {
      await rm(revokedDir, { recursive: true, force: true });
    }
  });

  it('refuses malformed handshake messages and single-use handshakes', async () => {
    const initiator = await initiateChannel();
    await expect(
      acceptChannel({ ...initiator.hello, kemPublicKey: new Uint8Array(10) }),
    ).rejects.toMatchObject({ code: 'malformed-handshake' });
    await expect(acceptChannel({ ...initiator.hello, protocol: 'other' as never })).rejects.toMatchObject({
      code: 'malformed-handshake',
    });
    await expect(
      acceptChannel({ ...initiator.hello, x25519PublicKey: new Uint8Array(32) }),
    ).rejects.toMatchObject({
      code: 'malformed-handshake',
      message: expect.stringMatching(/X25519/),
    });
    const badKem = new Uint8Array(initiator.hello.kemPublicKey);
    badKem[0] = 0xff;
    badKem[1] = 0x0f;
    await expect(acceptChannel({ ...initiator.hello, kemPublicKey: badKem })).rejects.toMatchObject({
      code: 'malformed-handshake',
    });

    const responder = await acceptChannel(initiator.hello);
    const truncated: ChannelAccept = {
      ...responder.accept,
      kemCiphertext: responder.accept.kemCiphertext.subarray(1),
    };
    expectChannelError(() => initiator.complete(truncated), 'malformed-handshake', /1088 bytes/);
    // The initiator's ephemeral secrets are single-use, even after a failure.
    expectChannelError(() => initiator.complete(responder.accept), 'closed');
    const b = responder.complete({});
    expectChannelError(() => responder.complete({}), 'closed');
    expect(b.peerKeyId).toBeUndefined();
  });
});
