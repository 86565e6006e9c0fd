/**
 * Small Map helpers for the kernel's per-call caches, which must not allocate on a hit (no key strings, no
 * closures).
 */

/** The Map under `key` in `m`, made empty on first use (one level of a nested-map index). */
export function innerMap<K, K2, V>(m: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let inner = m.get(key);
  if (!inner) {
    inner = new Map();
    m.set(key, inner);
  }
  return inner;
}

/**
 * `f` memoised per argument. For functions of names from a small fixed set (syscall names, WIT function
 * names); `cap` bounds the memo in case a caller passes arbitrary strings (beyond it, `f` just runs).
 */
export function memoized(f: (s: string) => string, cap: number): (s: string) => string {
  const memo = new Map<string, string>();
  return (s) => {
    let v = memo.get(s);
    if (v === undefined) {
      v = f(s);
      if (memo.size < cap) memo.set(s, v);
    }
    return v;
  };
}
