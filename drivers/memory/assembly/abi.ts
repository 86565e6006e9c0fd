/**
 * Memory for the canonical ABI, by hand (there is no wit-bindgen for AssemblyScript).
 *
 * Everything that lives for one export call — the arguments the host lowers through `cabi_realloc`, the
 * results of imports, kv keys and JSON being built, the return area — comes from a bump arena that the
 * export's `cabi_post_*` resets once the host has lifted the result. So no call frees anything piecemeal,
 * and a string the host handed in can be returned or stored as is (no copy). Only the head cache
 * (layout.ts) and the last storage error (host.ts) outlive a call; they use the TLSF heap directly.
 *
 * The component keeps all its data in raw memory: no garbage-collected objects, except in two cold paths
 * that use AssemblyScript's number parsing and printing (see markGcGarbage).
 */

/** Every guest-detected violation (a bad value from the host, a broken invariant) is a trap. */
export function trap(): void {
  unreachable();
}

// ---------------------------------------------------------------------------------------------------------
// The call arena

// 64 KiB serves a read or write of a small value without touching the heap again.
const CHUNK: usize = 64 * 1024;
/** Allocations above this get their own heap block (a 4 MiB value should not strand a chunk). */
const LARGE: usize = CHUNK >> 2;

let base: usize = 0;
let cur: usize = 0;
let end: usize = 0;
/** Heap blocks to free at reset: chunks after the first, and large allocations. */
let blocks: usize = 0;
let blocksLen: i32 = 0;
let blocksCap: i32 = 0;

function remember(block: usize): void {
  if (blocksLen == blocksCap) {
    const cap = blocksCap == 0 ? 16 : blocksCap * 2;
    blocks = blocks == 0 ? heap.alloc(<usize>cap << 2) : heap.realloc(blocks, <usize>cap << 2);
    blocksCap = cap;
  }
  store<usize>(blocks + (<usize>blocksLen << 2), block);
  blocksLen++;
}

/** `size` bytes aligned to `align` (a power of two, at most 16), valid until the call's post-return. */
export function alloc(size: usize, align: usize): usize {
  const p = (cur + align - 1) & ~(align - 1);
  if (p >= cur && p <= end && size <= end - p) {
    cur = p + size;
    return p;
  }
  return allocSlow(size, align);
}

function allocSlow(size: usize, align: usize): usize {
  // Past ~2 GiB no allocation can succeed in a 32-bit memory; refuse before the sums below overflow.
  if (size > 0x7fff0000) trap();
  if (base == 0) {
    base = heap.alloc(CHUNK);
    cur = base;
    end = base + CHUNK;
    return alloc(size, align);
  }
  if (size + align > LARGE) {
    // heap.alloc aligns to 16, which covers every canonical ABI alignment.
    const block = heap.alloc(size == 0 ? 1 : size);
    remember(block);
    return block;
  }
  const chunk = heap.alloc(CHUNK);
  remember(chunk);
  cur = chunk;
  end = chunk + CHUNK;
  return alloc(size, align);
}

/** Frees everything allocated since the last reset. */
export function reset(): void {
  for (let i = 0; i < blocksLen; i++) heap.free(load<usize>(blocks + (<usize>i << 2)));
  blocksLen = 0;
  cur = base;
  end = base == 0 ? 0 : base + CHUNK;
}

/** The canonical ABI allocator: arguments of exports and results of imports land in the arena. */
export function realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  if (align == 0 || align > 16 || (align & (align - 1)) != 0) trap();
  const p = alloc(newSize, align);
  if (oldPtr != 0) memory.copy(p, oldPtr, oldSize < newSize ? oldSize : newSize);
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Garbage-collected objects

let gcGarbage = false;

/** Notes that this call created GC objects (cold paths only: AssemblyScript's number parsing/printing). */
export function markGcGarbage(): void {
  gcGarbage = true;
}

/** Whether the call created GC objects since the last check; the post-return then collects them. */
export function takeGcGarbage(): bool {
  const g = gcGarbage;
  gcGarbage = false;
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// Values from the host: checked before use

/** Traps unless [ptr, ptr + bytes) lies inside memory and ptr is aligned to `align`. */
export function checkRange(ptr: usize, bytes: u64, align: usize): void {
  if ((ptr & (align - 1)) != 0) trap();
  if (<u64>ptr + bytes > (<u64>memory.size() << 16)) trap();
}

/** Traps unless `len` bytes at `ptr` are well-formed UTF-8 (what the canonical ABI requires of a string). */
export function checkUtf8(ptr: usize, len: usize): void {
  checkRange(ptr, len, 1);
  if (!isUtf8(ptr, len)) trap();
}

/** Whether `len` bytes at `ptr` are well-formed UTF-8: no overlong forms, no surrogates, at most U+10FFFF. */
export function isUtf8(ptr: usize, len: usize): bool {
  const end = ptr + len;
  let p = ptr;
  while (p < end) {
    // Eight ASCII bytes at a time: keys and names are mostly ASCII.
    if (p + 8 <= end && (load<u64>(p) & 0x8080808080808080) == 0) {
      p += 8;
      continue;
    }
    const c = <u32>load<u8>(p);
    if (c < 0x80) {
      p++;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (p + 2 > end || (load<u8>(p + 1) & 0xc0) != 0x80) return false;
      p += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (p + 3 > end) return false;
      const c1 = <u32>load<u8>(p + 1);
      if ((c1 & 0xc0) != 0x80 || (load<u8>(p + 2) & 0xc0) != 0x80) return false;
      if (c == 0xe0 && c1 < 0xa0) return false;
      if (c == 0xed && c1 > 0x9f) return false;
      p += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (p + 4 > end) return false;
      const c1 = <u32>load<u8>(p + 1);
      if ((c1 & 0xc0) != 0x80 || (load<u8>(p + 2) & 0xc0) != 0x80 || (load<u8>(p + 3) & 0xc0) != 0x80)
        return false;
      if (c == 0xf0 && c1 < 0x90) return false;
      if (c == 0xf4 && c1 > 0x8f) return false;
      p += 4;
    } else {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Byte strings, byte buffers and vectors, all in the arena

/** A UTF-8 string or byte list: `len` bytes at `ptr` (for a raw ABI list: `len` elements). */
@unmanaged
export class Str {
  ptr: usize;
  len: usize;
}

export function str(ptr: usize, len: usize): Str {
  const s = changetype<Str>(alloc(offsetof<Str>(), 4));
  s.ptr = ptr;
  s.len = len;
  return s;
}

/** A checked string argument or import result. */
export function hostStr(ptr: usize, len: usize): Str {
  checkUtf8(ptr, len);
  return str(ptr, len);
}

/** A checked byte list from the host. */
export function hostBytes(ptr: usize, len: usize): Str {
  checkRange(ptr, len, 1);
  return str(ptr, len);
}

export function strEq(a: Str, b: Str): bool {
  return a.len == b.len && memory.compare(a.ptr, b.ptr, a.len) == 0;
}

/** Whether `s` equals the ASCII literal `lit`. */
export function strIs(s: Str, lit: string): bool {
  const n = <usize>lit.length;
  if (s.len != n) return false;
  const chars = changetype<usize>(lit);
  for (let i: usize = 0; i < n; i++) {
    if (<u32>load<u8>(s.ptr + i) != <u32>load<u16>(chars + (i << 1))) return false;
  }
  return true;
}

export function hasByte(s: Str, byte: u8): bool {
  for (let i: usize = 0; i < s.len; i++) if (load<u8>(s.ptr + i) == byte) return true;
  return false;
}

/** A growable byte buffer. */
@unmanaged
export class Buf {
  ptr: usize;
  len: usize;
  cap: usize;
}

export function buf(cap: usize): Buf {
  const b = changetype<Buf>(alloc(offsetof<Buf>(), 4));
  b.ptr = alloc(cap, 8);
  b.len = 0;
  b.cap = cap;
  return b;
}

/** Room for `n` more bytes; returns where they go (the caller advances `len`). */
export function room(b: Buf, n: usize): usize {
  if (b.len + n > b.cap) {
    let cap = b.cap * 2;
    if (cap < b.len + n) cap = b.len + n;
    const p = alloc(cap, 8);
    memory.copy(p, b.ptr, b.len);
    b.ptr = p;
    b.cap = cap;
  }
  return b.ptr + b.len;
}

export function putByte(b: Buf, c: u32): void {
  store<u8>(room(b, 1), <u8>c);
  b.len++;
}

export function putBytes(b: Buf, ptr: usize, n: usize): void {
  memory.copy(room(b, n), ptr, n);
  b.len += n;
}

export function putStr(b: Buf, s: Str): void {
  putBytes(b, s.ptr, s.len);
}

/** An ASCII literal. */
export function putLit(b: Buf, lit: string): void {
  const n = <usize>lit.length;
  const p = room(b, n);
  const chars = changetype<usize>(lit);
  for (let i: usize = 0; i < n; i++) store<u8>(p + i, <u8>load<u16>(chars + (i << 1)));
  b.len += n;
}

export function putU64(b: Buf, v: u64): void {
  let digits = 1;
  for (let x = v; x >= 10; x /= 10) digits++;
  const p = room(b, digits);
  for (let i = digits - 1; i >= 0; i--) {
    store<u8>(p + <usize>i, <u8>(48 + (v % 10)));
    v /= 10;
  }
  b.len += digits;
}

export function bufStr(b: Buf): Str {
  return str(b.ptr, b.len);
}

/** The bytes of an ASCII literal, as a string. */
export function lit(s: string): Str {
  const b = buf(<usize>s.length);
  putLit(b, s);
  return bufStr(b);
}

/** A growable vector of pointer-sized values. */
@unmanaged
export class Vec {
  ptr: usize;
  len: i32;
  cap: i32;
}

export function vec(cap: i32): Vec {
  const v = changetype<Vec>(alloc(offsetof<Vec>(), 4));
  v.ptr = alloc(<usize>cap << 2, 4);
  v.len = 0;
  v.cap = cap;
  return v;
}

export function push(v: Vec, x: usize): void {
  if (v.len == v.cap) {
    const cap = v.cap < 4 ? 8 : v.cap * 2;
    const p = alloc(<usize>cap << 2, 4);
    memory.copy(p, v.ptr, <usize>v.len << 2);
    v.ptr = p;
    v.cap = cap;
  }
  store<usize>(v.ptr + (<usize>v.len << 2), x);
  v.len++;
}

export function at(v: Vec, i: i32): usize {
  return load<usize>(v.ptr + (<usize>i << 2));
}

export function setAt(v: Vec, i: i32, x: usize): void {
  store<usize>(v.ptr + (<usize>i << 2), x);
}

// ---------------------------------------------------------------------------------------------------------
// A string-keyed hash map in the arena (insertion ordered: entries are kept in a Vec)

function hashBytes(h: u32, ptr: usize, len: usize): u32 {
  for (let i: usize = 0; i < len; i++) h = (h ^ <u32>load<u8>(ptr + i)) * 16777619;
  return h;
}

export function hashStr(s: Str): u32 {
  return hashBytes(2166136261, s.ptr, s.len);
}

/** Hash of `a \0 b` without building it (the head cache's key). */
export function hashPair(a: Str, b: Str): u32 {
  const h = hashBytes(2166136261, a.ptr, a.len) * 16777619; // the NUL byte: h ^ 0 == h
  return hashBytes(h, b.ptr, b.len);
}

@unmanaged
export class StrMap {
  /** Open-addressing slots holding entry index + 1 (0 = empty). */
  slots: usize;
  mask: u32;
  keys: Vec;
  vals: Vec;
}

export function strMap(expected: i32): StrMap {
  let size: u32 = 16;
  while (size < <u32>expected * 2) size <<= 1;
  const m = changetype<StrMap>(alloc(offsetof<StrMap>(), 4));
  m.slots = alloc(<usize>size << 2, 4);
  memory.fill(m.slots, 0, <usize>size << 2);
  m.mask = size - 1;
  m.keys = vec(expected < 4 ? 4 : expected);
  m.vals = vec(expected < 4 ? 4 : expected);
  return m;
}

/** Index of `key`, or -1. */
export function mapFind(m: StrMap, key: Str): i32 {
  let i = hashStr(key) & m.mask;
  for (;;) {
    const slot = load<u32>(m.slots + (<usize>i << 2));
    if (slot == 0) return -1;
    if (strEq(changetype<Str>(at(m.keys, slot - 1)), key)) return <i32>slot - 1;
    i = (i + 1) & m.mask;
  }
  return -1;
}

/** Sets `key` to `val` (keeping the key's first position); returns its index. */
export function mapSet(m: StrMap, key: Str, val: usize): i32 {
  if (<u32>(m.keys.len + 1) * 2 > m.mask + 1) grow(m);
  let i = hashStr(key) & m.mask;
  for (;;) {
    const slot = load<u32>(m.slots + (<usize>i << 2));
    if (slot == 0) break;
    if (strEq(changetype<Str>(at(m.keys, slot - 1)), key)) {
      setAt(m.vals, slot - 1, val);
      return <i32>slot - 1;
    }
    i = (i + 1) & m.mask;
  }
  push(m.keys, changetype<usize>(key));
  push(m.vals, val);
  store<u32>(m.slots + (<usize>i << 2), <u32>m.keys.len);
  return m.keys.len - 1;
}

function grow(m: StrMap): void {
  const size = (m.mask + 1) << 1;
  m.slots = alloc(<usize>size << 2, 4);
  memory.fill(m.slots, 0, <usize>size << 2);
  m.mask = size - 1;
  for (let k = 0; k < m.keys.len; k++) {
    let i = hashStr(changetype<Str>(at(m.keys, k))) & m.mask;
    while (load<u32>(m.slots + (<usize>i << 2)) != 0) i = (i + 1) & m.mask;
    store<u32>(m.slots + (<usize>i << 2), <u32>k + 1);
  }
}

export function mapKey(m: StrMap, i: i32): Str {
  return changetype<Str>(at(m.keys, i));
}

export function mapVal(m: StrMap, i: i32): usize {
  return at(m.vals, i);
}
