/**
 * JSON in and out, byte for byte what the TypeScript component's `JSON.stringify`/`JSON.parse` did, so the
 * stored records of the two builds are interchangeable (drivers/memory/src/compat.test.ts checks it).
 *
 * Writing: strings are escaped as JSON.stringify escapes them (`"`, `\`, and control characters; every
 * other byte of the UTF-8 is copied); numbers are integers. Reading: a small cursor parser over the stored
 * bytes. A stored record that does not parse is a broken invariant: callers trap (as JSON.parse threw).
 */
import { alloc, Buf, buf, markGcGarbage, putByte, putBytes, putLit, Str, str } from './abi';

// ---------------------------------------------------------------------------------------------------------
// Writing

const HEX = '0123456789abcdef';

/** `s` as a JSON string literal. */
export function jsonStr(b: Buf, s: Str): void {
  putByte(b, 34);
  let start: usize = 0;
  for (let i: usize = 0; i < s.len; i++) {
    const c = <u32>load<u8>(s.ptr + i);
    if (c >= 0x20 && c != 34 && c != 92) continue;
    putBytes(b, s.ptr + start, i - start);
    start = i + 1;
    putByte(b, 92);
    if (c == 34 || c == 92) putByte(b, c);
    else if (c == 8) putByte(b, 98); // \b
    else if (c == 12) putByte(b, 102); // \f
    else if (c == 10) putByte(b, 110); // \n
    else if (c == 13) putByte(b, 114); // \r
    else if (c == 9) putByte(b, 116); // \t
    else {
      putLit(b, 'u00');
      putByte(b, <u32>load<u16>(changetype<usize>(HEX) + ((<usize>c >> 4) << 1)));
      putByte(b, <u32>load<u16>(changetype<usize>(HEX) + ((<usize>c & 15) << 1)));
    }
  }
  putBytes(b, s.ptr + start, s.len - start);
  putByte(b, 34);
}

// ---------------------------------------------------------------------------------------------------------
// Reading

let p: usize = 0;
let end: usize = 0;
/** Set when the input is not valid JSON (or not the shape asked for). */
export let jsonBad = false;

export function jsonBegin(s: Str): void {
  p = s.ptr;
  end = s.ptr + s.len;
  jsonBad = false;
  ws();
}

function ws(): void {
  while (p < end) {
    const c = load<u8>(p);
    if (c != 32 && c != 9 && c != 10 && c != 13) return;
    p++;
  }
}

/** Marks the input bad; returns false. */
function bad(): bool {
  jsonBad = true;
  p = end;
  return false;
}

/** Consumes `c` (and whitespace after it) if it is next. */
export function jsonEat(c: u32): bool {
  if (p < end && <u32>load<u8>(p) == c) {
    p++;
    ws();
    return true;
  }
  return false;
}

export function jsonExpect(c: u32): void {
  if (!jsonEat(c)) bad();
}

export function jsonPeek(): i32 {
  return p < end ? <i32>load<u8>(p) : -1;
}

/** True when only whitespace is left (and nothing went wrong). */
export function jsonDone(): bool {
  return !jsonBad && p == end;
}

function hexDigit(c: u32): i32 {
  if (c >= 48 && c <= 57) return <i32>(c - 48);
  if (c >= 97 && c <= 102) return <i32>(c - 87);
  if (c >= 65 && c <= 70) return <i32>(c - 55);
  return -1;
}

function hex4(at: usize): i32 {
  if (at + 4 > end) return -1;
  let v = 0;
  for (let i: usize = 0; i < 4; i++) {
    const d = hexDigit(<u32>load<u8>(at + i));
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

function putCodePoint(b: Buf, cp: u32): void {
  if (cp < 0x80) putByte(b, cp);
  else if (cp < 0x800) {
    putByte(b, 0xc0 | (cp >> 6));
    putByte(b, 0x80 | (cp & 63));
  } else if (cp < 0x10000) {
    putByte(b, 0xe0 | (cp >> 12));
    putByte(b, 0x80 | ((cp >> 6) & 63));
    putByte(b, 0x80 | (cp & 63));
  } else {
    putByte(b, 0xf0 | (cp >> 18));
    putByte(b, 0x80 | ((cp >> 12) & 63));
    putByte(b, 0x80 | ((cp >> 6) & 63));
    putByte(b, 0x80 | (cp & 63));
  }
}

/**
 * A string value. Without escapes it is a slice of the input (no copy); with escapes it is decoded into
 * the arena. A lone surrogate escape becomes U+FFFD, as its UTF-8 encoding would.
 */
export function jsonString(): Str {
  if (p >= end || load<u8>(p) != 34) {
    bad();
    return str(0, 0);
  }
  p++;
  const start = p;
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c == 34) {
      const s = str(start, p - start);
      p++;
      ws();
      return s;
    }
    if (c == 92) break;
    if (c < 0x20) {
      bad();
      return str(0, 0);
    }
    p++;
  }
  if (p >= end) {
    bad();
    return str(0, 0);
  }
  // Escapes: decode from the start.
  const b = changetype<Buf>(alloc(offsetof<Buf>(), 4));
  b.cap = p - start + 16;
  b.ptr = alloc(b.cap, 8);
  b.len = 0;
  putBytes(b, start, p - start);
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c == 34) {
      p++;
      ws();
      return str(b.ptr, b.len);
    }
    if (c < 0x20) break;
    if (c != 92) {
      putByte(b, c);
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const e = <u32>load<u8>(p + 1);
    p += 2;
    if (e == 34 || e == 92 || e == 47) putByte(b, e);
    else if (e == 98) putByte(b, 8);
    else if (e == 102) putByte(b, 12);
    else if (e == 110) putByte(b, 10);
    else if (e == 114) putByte(b, 13);
    else if (e == 116) putByte(b, 9);
    else if (e == 117) {
      const u = hex4(p);
      if (u < 0) break;
      p += 4;
      let cp = <u32>u;
      if (cp >= 0xd800 && cp <= 0xdbff && p + 1 < end && load<u8>(p) == 92 && load<u8>(p + 1) == 117) {
        const lo = hex4(p + 2);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (<u32>lo - 0xdc00);
          p += 6;
        }
      }
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      putCodePoint(b, cp);
    } else break;
  }
  bad();
  return str(0, 0);
}

/** The text of a number token, checked against the JSON grammar. */
function numberToken(): Str {
  const start = p;
  if (p < end && load<u8>(p) == 45) p++;
  if (p >= end) {
    bad();
    return str(0, 0);
  }
  const first = load<u8>(p);
  if (first == 48) p++;
  else if (first >= 49 && first <= 57) while (p < end && load<u8>(p) >= 48 && load<u8>(p) <= 57) p++;
  else {
    bad();
    return str(0, 0);
  }
  if (p < end && load<u8>(p) == 46) {
    p++;
    const d = p;
    while (p < end && load<u8>(p) >= 48 && load<u8>(p) <= 57) p++;
    if (p == d) {
      bad();
      return str(0, 0);
    }
  }
  if (p < end && (load<u8>(p) == 101 || load<u8>(p) == 69)) {
    p++;
    if (p < end && (load<u8>(p) == 43 || load<u8>(p) == 45)) p++;
    const d = p;
    while (p < end && load<u8>(p) >= 48 && load<u8>(p) <= 57) p++;
    if (p == d) {
      bad();
      return str(0, 0);
    }
  }
  const s = str(start, p - start);
  ws();
  return s;
}

/** A non-negative integer below 2^53 (every number the component stores); anything else is bad. */
export function jsonInt(): i64 {
  const t = numberToken();
  if (jsonBad || t.len == 0 || t.len > 16) {
    bad();
    return 0;
  }
  let v: i64 = 0;
  for (let i: usize = 0; i < t.len; i++) {
    const c = load<u8>(t.ptr + i);
    if (c < 48 || c > 57) {
      bad();
      return 0;
    }
    v = v * 10 + <i64>(c - 48);
  }
  if (v > 9007199254740991) bad();
  return v;
}

/** Any JSON number, as JSON.parse reads it (correctly rounded; see parseFloat in AssemblyScript's std). */
export function jsonNumber(): f64 {
  const t = numberToken();
  if (jsonBad) return 0;
  // Integers up to 15 digits are exact in f64: no need for the general conversion.
  if (t.len <= 15) {
    let v: f64 = 0;
    let neg = false;
    let i: usize = 0;
    if (load<u8>(t.ptr) == 45) {
      neg = true;
      i = 1;
    }
    let plain = true;
    for (; i < t.len; i++) {
      const c = load<u8>(t.ptr + i);
      if (c < 48 || c > 57) {
        plain = false;
        break;
      }
      v = v * 10 + <f64>(c - 48);
    }
    if (plain) return neg ? -v : v;
  }
  return parseDecimal(t);
}

/** General decimal -> f64, through AssemblyScript's string parser (allocates a GC string: cold path only). */
function parseDecimal(t: Str): f64 {
  markGcGarbage();
  return parseFloat(String.UTF8.decodeUnsafe(t.ptr, t.len));
}

/** Skips one value of any type. Iterative: a deeply nested state must not exhaust the wasm stack. */
export function jsonSkip(): void {
  // One byte per open container: 93 (']') or 125 ('}'), the closer it expects.
  const stack = buf(16);
  for (;;) {
    const c = jsonPeek();
    if (c == 123 || c == 91) {
      jsonEat(<u32>c);
      const close: u32 = c == 123 ? 125 : 93;
      if (jsonEat(close)) {
        if (!afterValue(stack)) return;
        continue;
      }
      putByte(stack, close);
      if (close == 125) {
        jsonString();
        jsonExpect(58);
      }
      if (jsonBad) return;
      continue;
    }
    if (c == 34) jsonString();
    else if (c == 116) literal('true');
    else if (c == 102) literal('false');
    else if (c == 110) literal('null');
    else numberToken();
    if (jsonBad || !afterValue(stack)) return;
  }
}

/** After a value inside the open containers: a comma (and the next key) or closers. False when done. */
function afterValue(stack: Buf): bool {
  for (;;) {
    if (jsonBad || stack.len == 0) return false;
    const close = <u32>load<u8>(stack.ptr + stack.len - 1);
    if (jsonEat(44)) {
      if (close == 125) {
        jsonString();
        jsonExpect(58);
      }
      return !jsonBad;
    }
    jsonExpect(close);
    stack.len--;
  }
  return false;
}

/** Consumes the ASCII word `w` (true, false, null). */
export function literal(w: string): bool {
  const n = <usize>w.length;
  if (p + n > end) return bad();
  for (let i: usize = 0; i < n; i++) {
    if (<u32>load<u8>(p + i) != <u32>load<u16>(changetype<usize>(w) + (i << 1))) return bad();
  }
  p += n;
  ws();
  return true;
}
