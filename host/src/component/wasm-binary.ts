/**
 * Just enough of the WebAssembly binary format for the loader: tell a component from a core module,
 * read and add custom sections (the ABI stamp), and cap every memory a core module defines.
 *
 * The memory cap is the only memory limit Node can enforce on wasm (worker resourceLimits do not cover
 * wasm memory): with a `maximum` in the memory type, `memory.grow` beyond it returns -1 and the guest
 * traps or reports OOM, which hits that component only.
 */

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const SECTION_CUSTOM = 0;
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const PAGE = 65536;
export const WASM_PAGE_SIZE = PAGE;

export type WasmKind = 'component' | 'module';

export class WasmFormatError extends Error {
  override name = 'WasmFormatError';
}

export function wasmKind(bytes: Uint8Array): WasmKind {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new WasmFormatError('not a WebAssembly binary (bad magic number)');
  }
  // Core modules: version 1, layer 0. Components: version 0x0d (or later), layer 1.
  const layer = bytes[6]! | (bytes[7]! << 8);
  return layer === 1 ? 'component' : 'module';
}

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
  ) {
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.bytes.length) throw new WasmFormatError('unexpected end of wasm binary');
    return this.bytes[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
      if (shift > 28) throw new WasmFormatError('LEB128 value too long');
    }
  }
  u64(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new WasmFormatError('LEB128 value too long');
    }
  }
  name(): string {
    const len = this.u32();
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.pos, len).toString('utf8');
    this.pos += len;
    return s;
  }
}

export interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  /** Offset of the section payload. */
  payloadStart: number;
  end: number;
}

export function sections(bytes: Uint8Array): Section[] {
  wasmKind(bytes);
  const out: Section[] = [];
  const r = new Reader(bytes, 8);
  while (r.pos < bytes.length) {
    const start = r.pos;
    const id = r.byte();
    const size = r.u32();
    const payloadStart = r.pos;
    const end = payloadStart + size;
    if (end > bytes.length) throw new WasmFormatError(`section ${id} runs past the end of the binary`);
    out.push({ id, start, payloadStart, end });
    r.pos = end;
  }
  return out;
}

/** Custom sections by name (component or module; top level only). */
export function customSections(bytes: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const s of sections(bytes)) {
    if (s.id !== SECTION_CUSTOM) continue;
    const r = new Reader(bytes, s.payloadStart);
    const name = r.name();
    out.set(name, bytes.subarray(r.pos, s.end));
  }
  return out;
}

/** The binary without its custom sections (debug names, producers...): code and data only. */
export function withoutCustomSections(bytes: Uint8Array): Uint8Array {
  const keep = sections(bytes).filter((s) => s.id !== SECTION_CUSTOM);
  return Buffer.concat([bytes.subarray(0, 8), ...keep.map((s) => bytes.subarray(s.start, s.end))]);
}

function leb(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

/** Append a custom section (works for components and core modules). */
export function addCustomSection(bytes: Uint8Array, name: string, data: Uint8Array): Uint8Array {
  wasmKind(bytes);
  const nameBytes = Buffer.from(name, 'utf8');
  const payload = Buffer.concat([Buffer.from(leb(nameBytes.length)), nameBytes, Buffer.from(data)]);
  return Buffer.concat([Buffer.from(bytes), Buffer.from([SECTION_CUSTOM, ...leb(payload.length)]), payload]);
}

interface Limits {
  flags: number;
  min: bigint;
  max: bigint | undefined;
  start: number;
  end: number;
}

function readLimits(r: Reader): Limits {
  const start = r.pos;
  const flags = r.byte();
  // bit0: has max, bit1: shared, bit2: memory64
  const is64 = (flags & 0x04) !== 0;
  const min = is64 ? r.u64() : BigInt(r.u32());
  const max = flags & 0x01 ? (is64 ? r.u64() : BigInt(r.u32())) : undefined;
  return { flags, min, max, start, end: r.pos };
}

function encodeLimits(flags: number, min: bigint, max: bigint): number[] {
  if (flags & 0x04) throw new WasmFormatError('memory64 is not supported by the memory cap');
  return [flags | 0x01, ...leb(Number(min)), ...leb(Number(max))];
}

/**
 * Cap every memory a core module defines at `maxPages`. Returns the patched module, or throws if a
 * memory's minimum already exceeds the cap (the component could never run within it).
 * Imported memories are left alone: they are defined, and capped, in the module that exports them.
 */
export function capMemories(module: Uint8Array, maxPages: number): Uint8Array {
  if (wasmKind(module) !== 'module') throw new WasmFormatError('capMemories expects a core module');
  const memSection = sections(module).find((s) => s.id === SECTION_MEMORY);
  if (!memSection) return module;
  const r = new Reader(module, memSection.payloadStart);
  const count = r.u32();
  const body: number[] = [...leb(count)];
  for (let i = 0; i < count; i++) {
    const lim = readLimits(r);
    if (lim.min > BigInt(maxPages)) {
      throw new WasmFormatError(
        `memory ${i} needs at least ${lim.min} pages (${Number(lim.min) * 64} KiB) but the cap is ${maxPages} pages`,
      );
    }
    const max = lim.max === undefined || lim.max > BigInt(maxPages) ? BigInt(maxPages) : lim.max;
    body.push(...encodeLimits(lim.flags, lim.min, max));
  }
  const payload = Buffer.from(body);
  return Buffer.concat([
    module.subarray(0, memSection.start),
    Buffer.from([SECTION_MEMORY, ...leb(payload.length)]),
    payload,
    module.subarray(memSection.end),
  ]);
}

/** The import names of a core module (`module`/`name` pairs), used to report unlinked imports. */
export function coreImports(module: Uint8Array): Array<{ module: string; name: string }> {
  const sec = sections(module).find((s) => s.id === SECTION_IMPORT);
  if (!sec) return [];
  const r = new Reader(module, sec.payloadStart);
  const n = r.u32();
  const out: Array<{ module: string; name: string }> = [];
  for (let i = 0; i < n; i++) {
    const mod = r.name();
    const name = r.name();
    const kind = r.byte();
    if (kind === 0) r.u32();
    else if (kind === 1) {
      r.byte();
      readLimits(r);
    } else if (kind === 2) readLimits(r);
    else if (kind === 3) {
      r.byte();
      r.byte();
    } else if (kind === 4) {
      r.byte();
      r.u32();
    } else throw new WasmFormatError(`unknown import kind ${kind}`);
    out.push({ module: mod, name });
  }
  return out;
}
