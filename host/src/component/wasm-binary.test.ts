import { parse } from '@bytecodealliance/jco-transpile/wasm-tools';
import { describe, expect, it } from 'vitest';
import { buildFixture } from '../testing/fixtures.js';
import {
  addCustomSection,
  capMemories,
  coreImports,
  customSections,
  WasmFormatError,
  wasmKind,
} from './wasm-binary.js';

describe('wasm-binary', () => {
  it('tells components from core modules and refuses non-wasm bytes', async () => {
    expect(wasmKind(await buildFixture('calc'))).toBe('component');
    expect(wasmKind(await parse('(module)'))).toBe('module');
    expect(() => wasmKind(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(WasmFormatError);
  });

  it('caps a memory without a maximum, and the cap is enforced by memory.grow', async () => {
    const mod = await parse(
      '(module (memory (export "m") 2) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))',
    );
    const capped = capMemories(mod, 5);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(capped as Uint8Array<ArrayBuffer>));
    const grow = inst.exports.grow as (n: number) => number;
    expect(grow(3)).toBe(2); // 2 -> 5 pages: allowed
    expect(grow(1)).toBe(-1); // 6 pages: refused by the cap
  });

  it('refuses a cap below the memory minimum, naming both', async () => {
    const mod = await parse('(module (memory 8))');
    expect(() => capMemories(mod, 4)).toThrow(/at least 8 pages .* cap is 4 pages/);
  });

  it('reads core imports and round-trips a custom section', async () => {
    const mod = await parse('(module (import "a:b/c@1.0.0" "f" (func)) (import "env" "m" (memory 1)))');
    expect(coreImports(mod)).toEqual([
      { module: 'a:b/c@1.0.0', name: 'f' },
      { module: 'env', name: 'm' },
    ]);
    const stamped = addCustomSection(await buildFixture('calc'), 'cam-os:abi', Buffer.from('0.1.0'));
    expect(Buffer.from(customSections(stamped).get('cam-os:abi')!).toString()).toBe('0.1.0');
  });
});
