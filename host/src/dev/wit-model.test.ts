/** The WIT reader of the dev path, on the whole cam:kernel package and on what it refuses. */
import { describe, expect, it } from 'vitest';
import { listWorlds, witSource } from '../wit/source.js';
import { parseWitPackage, WitParseError, worldTypes } from './wit-model.js';

describe('parseWitPackage', () => {
  it('reads every interface and world of cam:kernel@0.1.0', () => {
    const pkg = parseWitPackage(witSource('0.1.0'));
    expect(pkg).toMatchObject({ name: 'cam:kernel', version: '0.1.0' });
    expect(Object.keys(pkg.worlds).sort()).toEqual(listWorlds('0.1.0').sort());
    const kv = pkg.interfaces.kv!;
    expect(kv.functions.map((f) => f.js)).toEqual(['get', 'getMany', 'batch', 'scan']);
    expect(kv.functions[0]!.result).toEqual({
      k: 'result',
      ok: { k: 'option', of: { k: 'list', of: { k: 'prim', name: 'u8' } } },
      err: { k: 'ref', iface: 'types', name: 'kernel-error' },
    });
    const w = worldTypes(pkg, 'memory-component');
    expect(w.imports).toEqual(['kv', 'log', 'clock', 'digest']);
    expect(w.exports).toEqual(['lifecycle', 'memory']);
    const memory = pkg.interfaces.memory!;
    expect(memory.functions.find((f) => f.name === 'version-list')!.js).toBe('versionList');
  });

  it('refuses what it does not check, with the line', () => {
    const src = 'package a:b@1.0.0;\ninterface i {\n  resource r;\n}\n';
    expect(() => parseWitPackage(src)).toThrow(WitParseError);
    expect(() => parseWitPackage(src)).toThrow(/line 3: resources/);
    expect(() => parseWitPackage('package a:b@1.0.0;\ninterface i {\n  f: func() -> nope;\n}\n')).toThrow(
      /unknown type 'nope'/,
    );
    expect(() => parseWitPackage('interface i {}\n')).toThrow(/no versioned package/);
  });
});
