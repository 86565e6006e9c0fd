/**
 * Small policy modules for tests and benchmarks, built from WAT here (no third-party compiled policy):
 * a module that answers a fixed result set through OPA's wasm ABI 1.2, and malformed modules.
 */
import { parse } from '@bytecodealliance/jco-transpile/wasm-tools';

/** An OPA-ABI module whose one entrypoint (`cam/fixed`) answers `resultSet` (JSON text, < 200 bytes). */
export function fixedResultWat(resultSet: string): string {
  const bytes = Buffer.from(resultSet, 'utf8');
  if (bytes.length >= 200) throw new Error('fixed result set must be shorter than 200 bytes');
  const esc = (s: Buffer) => [...s].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
  return `(module
  (import "env" "memory" (memory 2))
  (global $heap (mut i32) (i32.const 4096))
  (global (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global (export "opa_wasm_abi_minor_version") i32 (i32.const 2))
  (data (i32.const 16) "{}")
  (data (i32.const 32) "${esc(Buffer.from('{"cam/fixed":0}'))}")
  (data (i32.const 512) "\\10\\00\\00\\00\\02\\00\\00\\00")
  (data (i32.const 520) "\\20\\00\\00\\00\\0f\\00\\00\\00")
  (data (i32.const 1024) "${esc(bytes)}\\00")
  (func $malloc (export "opa_malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (local.get $p))
  (func (export "opa_heap_ptr_get") (result i32) (global.get $heap))
  (func (export "opa_heap_ptr_set") (param i32) (global.set $heap (local.get 0)))
  (func (export "opa_json_parse") (param $p i32) (param $n i32) (result i32)
    (local $h i32)
    (local.set $h (call $malloc (i32.const 8)))
    (i32.store (local.get $h) (local.get $p))
    (i32.store offset=4 (local.get $h) (local.get $n))
    (local.get $h))
  (func (export "opa_json_dump") (param $h i32) (result i32)
    (local $d i32)
    (local.set $d (call $malloc (i32.add (i32.load offset=4 (local.get $h)) (i32.const 1))))
    (memory.copy (local.get $d) (i32.load (local.get $h)) (i32.load offset=4 (local.get $h)))
    (i32.store8 (i32.add (local.get $d) (i32.load offset=4 (local.get $h))) (i32.const 0))
    (local.get $d))
  (func (export "builtins") (result i32) (i32.const 512))
  (func (export "entrypoints") (result i32) (i32.const 520))
  (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32) (i32.const 1024)))`;
}

export function fixedResultModule(resultSet: string): Promise<Uint8Array> {
  return parse(fixedResultWat(resultSet));
}

/** A valid WebAssembly module that is not an OPA policy (no ABI exports). */
export function notAPolicyModule(): Promise<Uint8Array> {
  return parse('(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 1)))');
}

/** An OPA-looking module that also imports WASI (refused: only OPA's imports are allowed). */
export function foreignImportModule(): Promise<Uint8Array> {
  return parse(
    fixedResultWat('[{"result":true}]').replace(
      '(import "env" "memory" (memory 2))',
      '(import "env" "memory" (memory 2))\n  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
    ),
  );
}
