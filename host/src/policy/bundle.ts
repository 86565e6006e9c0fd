/**
 * Decoding PolicyUpdate's `policy_data` bytes. Three encodings, told apart by their first bytes:
 * - an OPA bundle, gzip-compressed tar (1f 8b): `policy.wasm` (or `/policy.wasm`) and an optional
 *   `data.json`; `.manifest` and other files are ignored;
 * - a bare WebAssembly module (`\0asm`): the policy with no data;
 * - a JSON object (`{`): data only — the policy keeps its current module (the built-in module for a new id).
 * Everything is checked here; a bad input throws PolicyBundleError naming what was wrong.
 */
import { gunzipSync, gzipSync } from 'node:zlib';

export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;
export const MAX_UNPACKED_BYTES = 16 * 1024 * 1024;

export class PolicyBundleError extends Error {}

export interface DecodedBundle {
  wasm?: Uint8Array;
  data?: Record<string, unknown>;
  encoding: 'bundle' | 'wasm' | 'data';
}

function parseData(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new PolicyBundleError(`${where} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new PolicyBundleError(`${where} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** Files of a ustar/GNU tar archive (regular files only). */
export function untar(tar: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const buf = Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength);
  let off = 0;
  let total = 0;
  let longName: string | undefined;
  while (off + 512 <= buf.length) {
    const header = buf.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, len: number) => {
      const s = header.subarray(start, start + len);
      const nul = s.indexOf(0);
      return s.subarray(0, nul < 0 ? len : nul).toString('utf8');
    };
    const sizeText = field(124, 12).trim();
    if (!/^[0-7]*$/.test(sizeText))
      throw new PolicyBundleError(`tar header at byte ${off} has a bad size field`);
    const size = sizeText === '' ? 0 : Number.parseInt(sizeText, 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    const stored = Number.parseInt(field(148, 8).trim(), 8);
    if (stored !== sum) throw new PolicyBundleError(`tar header at byte ${off} has a bad checksum`);
    const type = String.fromCharCode(header[156]!);
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const start = off + 512;
    if (start + size > buf.length) throw new PolicyBundleError(`tar entry '${name}' is truncated`);
    const body = buf.subarray(start, start + size);
    total += size;
    if (total > MAX_UNPACKED_BYTES)
      throw new PolicyBundleError(`bundle unpacks to more than ${MAX_UNPACKED_BYTES} bytes`);
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0.*$/s, '');
    } else if (type === '0' || type === '\0') {
      name = name.replace(/^\.?\//, '');
      if (files.has(name)) throw new PolicyBundleError(`bundle has '${name}' twice`);
      files.set(name, new Uint8Array(body));
    }
    off = start + Math.ceil(size / 512) * 512;
  }
  return files;
}

export function decodePolicyData(bytes: Uint8Array): DecodedBundle {
  if (bytes.length === 0) throw new PolicyBundleError('policy_data is empty');
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new PolicyBundleError(`policy_data is ${bytes.length} bytes; the limit is ${MAX_BUNDLE_BYTES}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    let tar: Buffer;
    try {
      tar = gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES });
    } catch (e) {
      throw new PolicyBundleError(`bundle is not valid gzip: ${(e as Error).message}`);
    }
    const files = untar(tar);
    const wasm = files.get('policy.wasm');
    if (!wasm)
      throw new PolicyBundleError(
        `bundle has no policy.wasm (found: ${[...files.keys()].join(', ') || 'nothing'})`,
      );
    const dataFile = files.get('data.json');
    return {
      encoding: 'bundle',
      wasm,
      ...(dataFile ? { data: parseData(Buffer.from(dataFile).toString('utf8'), 'data.json') } : {}),
    };
  }
  if (bytes[0] === 0x00 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d) {
    return { encoding: 'wasm', wasm: bytes };
  }
  const text = Buffer.from(bytes).toString('utf8').trimStart();
  if (text.startsWith('{')) return { encoding: 'data', data: parseData(text, 'policy_data (JSON data)') };
  throw new PolicyBundleError(
    'policy_data is neither an OPA bundle (tar.gz), a WebAssembly module (\\0asm) nor a JSON data object',
  );
}

/** Build a tar.gz OPA bundle (used by the CLI and tests). */
export function makeBundle(files: Record<string, Uint8Array | string>): Uint8Array {
  const parts: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const body = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    parts.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return new Uint8Array(gzipSync(Buffer.concat(parts)));
}
