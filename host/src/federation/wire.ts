/**
 * The peer protocol: one gRPC bidirectional stream per link (`cam.federation.v1.Peer/Link`), carrying
 * frames. A frame is `[u32 BE header length][header: UTF-8 JSON][payload bytes]`; the payload is a Yjs
 * state vector or update, passed through untouched. Both ends of a link speak the same protocol:
 *
 * - `hello` {node, address, members} + state vector: first frame in each direction. The acceptor checks
 *   that `node` is the identity in the dialer's client certificate.
 * - `sv` {members} + state vector: every heartbeat. It is at once the heartbeat (failure detection),
 *   membership gossip and anti-entropy: the receiver answers with a `update` holding what the sender lacks.
 * - `update` {} + Yjs update: a local write, or an anti-entropy diff.
 * - `ping` {}: every heartbeat, so failure detection never waits for a busy component.
 * - `ch1`/`ch2`/`ch3`: with `federation.identity`, the hybrid X25519 + ML-KEM-768 handshake of
 *   host/src/trust/channel.ts, each side proving its node key (ML-DSA-65 + Ed25519); after it every frame
 *   travels as `sealed` (one AES-256-GCM record of the channel).
 *
 * The admin side (`cam.federation.v1.FederationAdmin/Status`, on the kernel's own listener) answers JSON.
 */
import * as grpc from '@grpc/grpc-js';

export interface Member {
  node: string;
  address: string;
}

export type Frame =
  | { t: 'hello'; node: string; address: string; members: Member[]; payload: Uint8Array }
  | { t: 'sv'; members: Member[]; payload: Uint8Array }
  | { t: 'update'; payload: Uint8Array }
  | { t: 'ping'; payload: Uint8Array }
  // The hybrid secure-channel handshake (ChannelHello / ChannelAccept / ChannelFinish, bytes packed).
  | { t: 'ch1'; node: string; m: unknown; payload: Uint8Array }
  | { t: 'ch2'; node: string; m: unknown; payload: Uint8Array }
  | { t: 'ch3'; m: unknown; payload: Uint8Array }
  // Any other frame, encoded, then sealed as one record of the secure channel.
  | { t: 'sealed'; payload: Uint8Array };

export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Byte arrays inside handshake messages travel as `{"$b": base64}` in the JSON header. */
export function pack(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $b: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(pack);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, pack(x)]));
  return v;
}

export function unpack(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unpack);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.$b === 'string' && Object.keys(o).length === 1)
      return new Uint8Array(Buffer.from(o.$b, 'base64'));
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unpack(x)]));
  }
  return v;
}

export function encodeFrame(f: Frame): Buffer {
  const { payload, ...rest } = f;
  const header = 'm' in rest ? { ...rest, m: pack(rest.m) } : rest;
  const h = Buffer.from(JSON.stringify(header));
  const out = Buffer.allocUnsafe(4 + h.length + payload.byteLength);
  out.writeUInt32BE(h.length, 0);
  h.copy(out, 4);
  out.set(payload, 4 + h.length);
  return out;
}

export class FrameError extends Error {}

export function decodeFrame(b: Buffer): Frame {
  if (b.length < 4) throw new FrameError('frame shorter than its 4-byte header length');
  const n = b.readUInt32BE(0);
  if (4 + n > b.length)
    throw new FrameError(`frame header length ${n} runs past the frame (${b.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new FrameError('frame header is not JSON');
  }
  const payload = new Uint8Array(b.subarray(4 + n));
  const members = (): Member[] => {
    const m = header.members;
    if (!Array.isArray(m)) throw new FrameError(`'${String(header.t)}' frame without a members list`);
    for (const x of m) {
      if (!x || typeof x.node !== 'string' || typeof x.address !== 'string')
        throw new FrameError('members entries must be {node, address} strings');
    }
    return m as Member[];
  };
  switch (header.t) {
    case 'hello':
      if (typeof header.node !== 'string' || typeof header.address !== 'string')
        throw new FrameError('hello frame needs node and address');
      return { t: 'hello', node: header.node, address: header.address, members: members(), payload };
    case 'sv':
      return { t: 'sv', members: members(), payload };
    case 'update':
      return { t: 'update', payload };
    case 'ping':
      return { t: 'ping', payload };
    case 'ch1':
    case 'ch2':
      if (typeof header.node !== 'string') throw new FrameError(`${header.t} frame needs node`);
      return { t: header.t, node: header.node, m: unpack(header.m), payload };
    case 'ch3':
      return { t: 'ch3', m: unpack(header.m), payload };
    case 'sealed':
      return { t: 'sealed', payload };
    default:
      throw new FrameError(`unknown frame type ${JSON.stringify(header.t)}`);
  }
}

const raw = {
  serialize: (b: Buffer) => b,
  deserialize: (b: Buffer) => b,
};

export const PEER_SERVICE: grpc.ServiceDefinition = {
  Link: {
    path: '/cam.federation.v1.Peer/Link',
    requestStream: true,
    responseStream: true,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
};

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v ?? {})),
  deserialize: (b: Buffer) => (b.length === 0 ? {} : JSON.parse(b.toString('utf8'))),
};

export const ADMIN_SERVICE: grpc.ServiceDefinition = {
  Status: {
    path: '/cam.federation.v1.FederationAdmin/Status',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

export const PeerClient = grpc.makeGenericClientConstructor(PEER_SERVICE, 'cam.federation.v1.Peer');
export const AdminClient = grpc.makeGenericClientConstructor(
  ADMIN_SERVICE,
  'cam.federation.v1.FederationAdmin',
);
