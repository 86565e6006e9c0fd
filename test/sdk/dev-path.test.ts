/**
 * The development path through a real kernel: dev artifacts load through `Kernel.load` and swap through
 * `Kernel.swap` (grants, ABI check, workers, state handover), every value crossing the boundary is checked
 * against the WIT with the path named, the guest runs without Node's globals, and the watch loop keeps the
 * last good version when a save does not build.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildError } from '../../sdk/src/build/bundle.js';
import { buildDev } from '../../sdk/src/build/dev.js';
import { ComponentHarness } from '../../sdk/src/build/harness.js';
import { type DevEvent, DevSession } from '../../sdk/src/driver/dev-session.js';
import { readDriverProject } from '../../sdk/src/driver/project.js';

let dir: string;
let h: ComponentHarness;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const DRIVER = (version: string) => `import { batch, get } from 'cam:kernel/kv@0.1.0';
import { kernelError, lifecycle as life, utf8, fromUtf8 } from '@cam-os/sdk/guest';
let hits = 0;
export const lifecycle = life<{ hits: number }>({
  exportState: () => ({ hits }),
  importState: (s) => { hits = s.hits; },
});
export const handler = {
  handle(op: string, payload: Uint8Array): Uint8Array {
    hits++;
    if (op === 'version') return utf8('${version} ' + hits);
    if (op === 'globals') return utf8([typeof process, typeof require, typeof TextEncoder].join(','));
    if (op === 'bad-return') return { score: 'high' } as unknown as Uint8Array;
    if (op === 'bad-import') { batch('p', [{ tag: 'put', val: { key: 'k', value: 'text' as unknown as Uint8Array } }]); }
    if (op === 'bad-error') throw { tag: 'no-such-case', val: 'x' };
    if (op === 'store') { batch('p', [{ tag: 'put', val: { key: 'k', value: payload } }]); return payload; }
    if (op === 'load') { const v = get('p', 'k'); if (!v) throw kernelError('not-found', 'k'); return v; }
    throw kernelError('unimplemented', op);
  },
};
`;

async function project(name: string, source: string) {
  const d = join(dir, name);
  await mkdir(join(d, 'src'), { recursive: true });
  await writeFile(join(d, 'src', 'index.ts'), source);
  await writeFile(
    join(d, 'driver.json'),
    JSON.stringify({ name, version: '0.1.0', world: 'driver', entry: 'src/index.ts' }),
  );
  return readDriverProject(d);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-dev-'));
  h = await ComponentHarness.start();
});
afterAll(async () => {
  await h?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('dev artifacts in a real kernel', () => {
  it('load, serve, and check values at the boundary with the path named', async () => {
    const p = await project('checked', DRIVER('v1'));
    const artifact = await buildDev({
      entry: p.entry,
      world: p.world,
      outDir: join(p.distDir, 'dev'),
      name: p.name,
    });
    expect(artifact.imports).toEqual(['cam:kernel/kv@0.1.0']);
    const info = await h.loadDev({ name: 'checked', artifact });
    expect(info.abi).toBe('0.1.0');
    expect(info.exports).toEqual(['cam:kernel/lifecycle@0.1.0', 'cam:kernel/handler@0.1.0']);
    const call = (op: string, payload = new Uint8Array()) =>
      h.call<Uint8Array>('checked', 'cam:kernel/handler', 'handle', op, payload);

    expect(dec(await call('version'))).toBe('v1 1');
    // The guest sees no Node: like SpiderMonkey inside a component, only the encoding API.
    expect(dec(await call('globals'))).toBe('undefined,undefined,function');
    expect(dec(await call('store', enc('kept')))).toBe('kept');
    expect(dec(await call('load'))).toBe('kept');
    await expect(call('bad-return')).rejects.toMatchObject({
      code: 'KERNEL_ERR_COMPONENT_TRAP',
      message: expect.stringContaining(
        'export cam:kernel/handler#handle returned: expected list<u8> (a Uint8Array), got object',
      ),
    });
    await expect(call('bad-import')).rejects.toMatchObject({
      code: 'KERNEL_ERR_COMPONENT_TRAP',
      message: expect.stringContaining(
        'import cam:kernel/kv#batch argument ops [0]<put>.value: expected list<u8> (a Uint8Array), got string',
      ),
    });
    await expect(call('bad-error')).rejects.toMatchObject({
      code: 'KERNEL_ERR_COMPONENT_TRAP',
      message: expect.stringContaining(
        'export cam:kernel/handler#handle threw: expected variant kernel-error with tag',
      ),
    });
    // A typed error is not a trap: it reaches the caller with its case.
    await expect(call('nope')).rejects.toMatchObject({
      code: 'KERNEL_ERR_GUEST_ERROR',
      detail: { tag: 'unimplemented' },
    });
    // Arguments from the kernel side are checked too.
    await expect(
      h.call('checked', 'cam:kernel/handler', 'handle', 'version', 'not bytes'),
    ).rejects.toMatchObject({
      message: expect.stringContaining(
        'export cam:kernel/handler#handle argument payload: expected list<u8>',
      ),
    });
    // After the traps the supervisor re-instantiated a clean instance; durable data is still there.
    expect(dec(await call('load'))).toBe('kept');
    await h.kernel.unload('checked');
  });

  it('explains an ABI mismatch and refuses ungranted imports before anything runs', async () => {
    const p = await project('refused', DRIVER('v1'));
    const artifact = await buildDev({
      entry: p.entry,
      world: p.world,
      outDir: join(p.distDir, 'dev'),
      name: p.name,
    });
    await expect(
      h.loadDev({ name: 'refused', artifact: { ...artifact, abi: '0.9.0' } }),
    ).rejects.toMatchObject({
      code: 'KERNEL_ERR_COMPONENT_ABI',
      message: expect.stringContaining('built against cam:kernel@0.9.0; this kernel supports 0.1.0'),
    });
    await expect(
      h.loadDev({ name: 'refused', artifact, imports: ['cam:kernel/log@0.1.0'] }),
    ).rejects.toMatchObject({
      code: 'KERNEL_ERR_IMPORT_DENIED',
    });
    expect(h.kernel.has('refused')).toBe(false);
  });

  it('refuses at build time an import the world does not have, with the source line', async () => {
    const p = await project(
      'wrong-import',
      "import { sha256 } from 'cam:kernel/digest@0.1.0';\nexport const x = sha256;\n",
    );
    const e = await buildDev({
      entry: p.entry,
      world: p.world,
      outDir: join(p.distDir, 'dev'),
      name: p.name,
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BuildError);
    expect((e as Error).message).toContain(
      'imports cam:kernel/digest@0.1.0, which world driver does not import',
    );
  });
});

describe('DevSession (driver dev)', () => {
  it('swaps each save in with state kept, and keeps the last good version on a build error', async () => {
    const p = await project('live', DRIVER('v1'));
    const events: DevEvent[] = [];
    const session = new DevSession(p, h.kernel, (e) => events.push(e));
    await session.start();
    const call = () =>
      h.call<Uint8Array>('live', 'cam:kernel/handler', 'handle', 'version', new Uint8Array()).then(dec);
    expect(await call()).toBe('v1 1');

    await writeFile(p.entry, DRIVER('v2'));
    const swapped = await session.rebuild('src/index.ts');
    expect(swapped).toMatchObject({ kind: 'swapped', record: { result: 'swapped' } });
    expect(await call()).toBe('v2 2');

    await writeFile(p.entry, `${DRIVER('v3')}\nexport const broken = ;\n`);
    const failed = await session.rebuild('src/index.ts');
    expect(failed.kind).toBe('build-error');
    expect((failed as { message: string }).message).toMatch(/src\/index\.ts:\d+:\d+: Unexpected ";"/);
    expect(await call()).toBe('v2 3');

    // A version whose init fails is refused by the kernel's swap; the running one is untouched.
    await writeFile(p.entry, `${DRIVER('v4')}\nthrow new Error('boom at load');\n`);
    const refused = await session.rebuild('src/index.ts');
    expect(refused.kind).toBe('swap-error');
    expect(await call()).toBe('v2 4');

    await writeFile(p.entry, DRIVER('v5'));
    expect((await session.rebuild('src/index.ts')).kind).toBe('swapped');
    expect(await call()).toBe('v5 5');
    await session.stop();
    expect(events.map((e) => e.kind)).toEqual(['loaded', 'swapped', 'build-error', 'swap-error', 'swapped']);
  });

  it('rebuilds on file changes when watching', async () => {
    const p = await project('watched', DRIVER('w1'));
    let resolveSwap!: (e: DevEvent) => void;
    const swappedOnce = new Promise<DevEvent>((r) => (resolveSwap = r));
    const session = new DevSession(p, h.kernel, (e) => {
      if (e.kind === 'swapped') resolveSwap(e);
    });
    await session.start();
    session.watch();
    await writeFile(p.entry, DRIVER('w2'));
    const e = await swappedOnce;
    expect(e).toMatchObject({ kind: 'swapped', trigger: expect.stringContaining('index.ts') });
    expect(
      dec(await h.call<Uint8Array>('watched', 'cam:kernel/handler', 'handle', 'version', new Uint8Array())),
    ).toBe('w2 1');
    await session.stop();
  });
});
