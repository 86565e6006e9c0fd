/**
 * `cam-os driver …` through the real CLI: one-line errors that point at the source (syntax errors from
 * esbuild, type errors from tsc) with a non-zero exit, refusals of bad input, the dev build, and `driver
 * sign` producing a manifest that the kernel's trusted loader verifies against the trust store `--trust`
 * wrote, then runs.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostInterfaces } from '@cam-os/host/host-interfaces/index.js';
import { Kernel } from '@cam-os/host/kernel/kernel.js';
import { TrustedLoader } from '@cam-os/host/kernel/loader.js';
import { openKv } from '@cam-os/host/kv/index.js';
import { TrustStore } from '@cam-os/host/trust/trust-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, lastJson } from './cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-cli-'));
  const r = await cli(['driver', 'new', 'drv', '--json'], { cwd: dir });
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function edit(from: string, to: string): Promise<() => Promise<void>> {
  const file = join(dir, 'drv', 'src', 'index.ts');
  const original = await readFile(file, 'utf8');
  await writeFile(file, original.replace(from, to));
  return () => writeFile(file, original);
}

describe('cam-os driver (CLI)', () => {
  it('lists its subcommands and refuses unknown ones', async () => {
    const r = await cli(['driver', 'fly'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown subcommand 'fly'");
    expect(r.stderr).toContain('driver build');
  });

  it('refuses a bad name, an unknown template and an existing folder, leaving nothing behind', async () => {
    for (const [args, msg] of [
      [['driver', 'new', 'Bad_Name'], "driver name 'Bad_Name' must be"],
      [
        ['driver', 'new', 'x2', '--template', 'nope'],
        "unknown template 'nope' (templates: plain, scheduler, memory)",
      ],
      [['driver', 'new', 'drv'], 'already exists'],
    ] as const) {
      const r = await cli([...args], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(msg);
    }
    const none = await cli(['driver', 'build', 'x2'], { cwd: dir });
    expect(none.stderr).toContain('driver.json not found');
  });

  it('maps a syntax error to the source line and column', async () => {
    const restore = await edit("case 'echo':", "case 'echo' ::");
    try {
      const r = await cli(['driver', 'build', 'drv', '--json'], { cwd: dir });
      expect(r.code).toBe(1);
      const out = lastJson<{ ok: boolean; error: string; code: string }>(r);
      expect(out).toMatchObject({ ok: false, code: 'BUILD_ERROR' });
      // tsc runs first and reports it (esbuild would too, at the same place).
      expect(out.error).toMatch(/^drv\/src\/index\.ts:\d+:20: error: Statement expected/);
    } finally {
      await restore();
    }
  });

  it('maps a type error to the source line (tsc), before any componentize run', async () => {
    const restore = await edit('let calls = 0;', "let calls = 0;\nconst wrong: number = 'text';");
    try {
      const r = await cli(['driver', 'build', 'drv'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /drv\/src\/index\.ts:\d+:7: error: Type 'string' is not assignable to type 'number'\. \(TS2322\)/,
      );
      expect(r.stderr).not.toContain('building the WebAssembly component');
    } finally {
      await restore();
    }
  });

  it('builds the dev artifact in milliseconds', async () => {
    const r = await cli(['driver', 'build', 'drv', '--dev', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({
      ok: true,
      dev: true,
      imports: ['cam:kernel/kv@0.1.0', 'cam:kernel/log@0.1.0'],
    });
  });

  it('signs a driver that the trusted loader verifies and runs', { timeout: 240_000 }, async () => {
    const dataDir = join(dir, 'data');
    const key = join(dir, 'me.key.json');
    const gen = await cli(['keys', 'generate', '--out', key, '--json'], { cwd: dir });
    expect(gen.code, gen.stderr).toBe(0);
    const signed = await cli(
      ['driver', 'sign', 'drv', '--key', key, '--trust', '--data-dir', dataDir, '--json'],
      {
        cwd: dir,
      },
    );
    expect(signed.code, signed.stderr).toBe(0);
    const s = lastJson<{ wasmPath: string; manifestPath: string; keyId: string; trusted: boolean }>(signed);
    expect(s.trusted).toBe(true);

    const kv = await openKv({ backend: 'embedded', path: join(dir, 'kv') });
    const kernel = new Kernel({ dataDir: join(dir, 'kernel') });
    for (const iface of hostInterfaces({ kv, log: { sink: () => {} } })) kernel.provide(iface);
    try {
      const loader = new TrustedLoader({
        kernel,
        trustStore: await TrustStore.open(join(dataDir, 'trust')),
        policy: { allowedImports: ['cam:kernel/*'] },
      });
      const info = await loader.load(await readFile(s.wasmPath), await readFile(s.manifestPath, 'utf8'));
      expect(info).toMatchObject({ name: 'drv', version: '0.1.0', abi: '0.1.0' });
      expect(info.labels.trust).toContain('verified');
      const out = await kernel.call('drv', 'cam:kernel/handler', 'handle', [
        'echo',
        new TextEncoder().encode('hi'),
      ]);
      expect(new TextDecoder().decode(out as Uint8Array)).toBe('hi');
    } finally {
      await kernel.stop();
      await kv.close();
    }
  });
});
