// Converts the TPM's raw ECC material into what node:crypto understands.

import { createPublicKey, type KeyObject } from 'node:crypto';

const P256_COORD = 32;

/** An uncompressed P-256 point (0x04 || X || Y) as a node:crypto public key. */
export function p256PublicKey(point: Uint8Array): KeyObject {
  if (point.length !== 1 + 2 * P256_COORD || point[0] !== 0x04) {
    throw new TypeError(
      `expected a 65-byte uncompressed P-256 point (0x04||X||Y), got ${point.length} bytes`,
    );
  }
  const buf = Buffer.from(point);
  return createPublicKey({
    format: 'jwk',
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: buf.subarray(1, 1 + P256_COORD).toString('base64url'),
      y: buf.subarray(1 + P256_COORD).toString('base64url'),
    },
  });
}

function derInteger(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  let body = unsigned.subarray(i);
  // A set top bit would read as negative; DER wants a leading zero then.
  if ((body[0] ?? 0) & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

/** ECDSA r||s (IEEE P1363, as the TPM returns it) to the DER SEQUENCE node:crypto verifies by default. */
export function p1363ToDer(rs: Uint8Array): Buffer {
  if (rs.length !== 2 * P256_COORD)
    throw new TypeError(`expected a 64-byte r||s signature, got ${rs.length}`);
  const buf = Buffer.from(rs);
  const body = Buffer.concat([derInteger(buf.subarray(0, P256_COORD)), derInteger(buf.subarray(P256_COORD))]);
  // Two P-256 integers are at most 2 * 35 bytes, so the length always fits in one short-form byte.
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
