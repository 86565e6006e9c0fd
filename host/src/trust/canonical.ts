/**
 * RFC 8785 canonical JSON (the `canonicalize` package): the one form every signed or hashed document in
 * CAM-OS is computed over — manifests, audit entries and checkpoints, marketplace statements and indexes.
 */
import canonicalize from 'canonicalize';

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError(`a ${typeof value} has no canonical JSON form`);
  return text;
}
