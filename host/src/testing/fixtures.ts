/**
 * Small real components for tests and benchmarks, built from WAT at run time with jco's wasm-tools
 * (parse -> componentEmbed with the WIT as a string -> componentNew). Each builds in well under 100 ms.
 *
 * For scalar-only WIT the canonical ABI is the identity, so a hand-written core export named
 * `pkg:ns/iface@ver#func` is the whole implementation; strings and lists follow the canonical ABI by hand
 * (pointer + length, a `cabi_realloc` export, results through a return area).
 */
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco-transpile/wasm-tools';

export const FIXTURE_WIT = `package test:fixtures@0.1.0;

/// Scalar, string and list exports used to measure binding overhead.
interface calc {
  add: func(a: u32, b: u32) -> u32;
  echo: func(s: string) -> string;
  sum: func(xs: list<u32>) -> u64;
  /// Fails with a typed error when b is zero.
  divide: func(a: u32, b: u32) -> result<u32, string>;
}

/// Misbehaviour on demand.
interface chaos {
  /// Never returns.
  spin: func();
  /// Grows memory one page at a time until memory.grow fails, then traps. Returns pages reached if it cannot fail.
  bomb: func() -> u32;
  /// Traps (unreachable).
  crash: func();
  /// Calls wasi:cli/exit.
  quit: func();
  ping: func() -> u32;
}

/// A host (or another component) provided interface.
interface log {
  log: func(msg: string);
}

/// Uses calc from another component, through the kernel.
interface relay {
  add-via: func(a: u32, b: u32) -> u32;
}

world calc-world {
  import log;
  export calc;
}

world chaos-world {
  import wasi:cli/exit@0.2.3;
  export chaos;
}

world relay-world {
  import calc;
  export relay;
}

package wasi:cli@0.2.3 {
  interface exit {
    exit: func(status: result);
  }
}
`;

const MEM_AND_REALLOC = `
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  ;; A bump allocator that restarts for every call: enough for these fixtures, whose values never outlive a call.
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))))
    (local.get $p))
  (func $reset (global.set $bump (i32.const 4096)))
`;

const WAT: Record<FixtureName, { world: string; wat: string }> = {
  calc: {
    world: 'calc-world',
    wat: `(module
  (import "test:fixtures/log@0.1.0" "log" (func $log (param i32 i32)))
  ${MEM_AND_REALLOC}
  (func (export "test:fixtures/calc@0.1.0#add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (func (export "test:fixtures/calc@0.1.0#echo") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 16) (local.get $p))
    (i32.store (i32.const 20) (local.get $n))
    (i32.const 16))
  (func (export "cabi_post_test:fixtures/calc@0.1.0#echo") (param i32) (call $reset))
  (func (export "test:fixtures/calc@0.1.0#sum") (param $p i32) (param $n i32) (result i64)
    (local $acc i64) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $acc (i64.add (local.get $acc)
        (i64.extend_i32_u (i32.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $reset)
    (local.get $acc))
  (func (export "test:fixtures/calc@0.1.0#divide") (param $a i32) (param $b i32) (result i32)
    (if (i32.eqz (local.get $b))
      (then
        ;; err("division by zero"): discriminant 1, then the string (ptr, len) at offset 4.
        (call $log (i32.const 64) (i32.const 16))
        (i32.store (i32.const 32) (i32.const 1))
        (i32.store (i32.const 36) (i32.const 64))
        (i32.store (i32.const 40) (i32.const 16))
        (return (i32.const 32))))
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.div_u (local.get $a) (local.get $b)))
    (i32.const 32))
  (data (i32.const 64) "division by zero")
)`,
  },
  chaos: {
    world: 'chaos-world',
    wat: `(module
  (import "wasi:cli/exit@0.2.3" "exit" (func $exit (param i32)))
  ${MEM_AND_REALLOC}
  (func (export "test:fixtures/chaos@0.1.0#spin") (loop $l (br $l)))
  (func (export "test:fixtures/chaos@0.1.0#bomb") (result i32)
    (loop $l
      (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1)) (then (br $l))))
    unreachable)
  (func (export "test:fixtures/chaos@0.1.0#crash") unreachable)
  (func (export "test:fixtures/chaos@0.1.0#quit") (call $exit (i32.const 1)))
  (func (export "test:fixtures/chaos@0.1.0#ping") (result i32) (i32.const 42))
)`,
  },
  relay: {
    world: 'relay-world',
    wat: `(module
  (import "test:fixtures/calc@0.1.0" "add" (func $add (param i32 i32) (result i32)))
  ${MEM_AND_REALLOC}
  (func (export "test:fixtures/relay@0.1.0#add-via") (param i32 i32) (result i32)
    (call $add (local.get 0) (local.get 1)))
)`,
  },
};

export type FixtureName = 'calc' | 'chaos' | 'relay';
export const FIXTURES: readonly FixtureName[] = ['calc', 'chaos', 'relay'];

const built = new Map<FixtureName, Promise<Uint8Array>>();

/** Build (once per process) a fixture component. */
export function buildFixture(name: FixtureName): Promise<Uint8Array> {
  let p = built.get(name);
  if (!p) {
    const { world, wat } = WAT[name];
    p = buildWat(wat, FIXTURE_WIT, world);
    built.set(name, p);
  }
  return p;
}

/** WAT core module + WIT world -> component bytes. */
export async function buildWat(wat: string, witSource: string, world: string): Promise<Uint8Array> {
  const core = await parse(wat);
  const embedded = await componentEmbed({ binary: core, witSource, world, stringEncoding: 'utf8' });
  return componentNew(embedded, []);
}

/** The core module of a fixture, un-componentized: the "raw wasm call" baseline for benchmarks. */
export async function fixtureCoreModule(name: FixtureName): Promise<Uint8Array> {
  return parse(WAT[name].wat);
}
