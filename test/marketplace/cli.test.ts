/**
 * Issue 7 through the operator's CLI (the built sdk/dist/cli/main.js as child processes): `marketplace
 * serve` on loopback, `marketplace pack`, authenticated `publish` over HTTP, `search`, `info`,
 * `install --yes`, consent refused without a TTY, `list`, `upgrade`, the shared `rollback`, `uninstall`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPublicKey } from '../../host/src/trust/keys.js';
import { MANIFEST_SCHEMA } from '../../host/src/trust/manifest.js';
import { signAndAttach } from '../../host/src/trust/sign.js';
import { sha256Digest, testKeyPair } from '../../host/src/trust/testing.js';
import { CLI, camOs } from '../security/cli.js';
import { chaosComponent, publisher, startWorld, tagged, type World } from './harness.js';

const TOKEN = 'cli-registry-token-0123456789abcdef';
/** The registry signs its index with this key; the operator trusts its public half. */
const registryKey = testKeyPair('marketplace-cli-registry');
let w: World;
let dir: string;
let serve: ChildProcess;
let url: string;

async function packVersion(version: string, imports: string[]): Promise<string> {
  const component = tagged(await chaosComponent(), `cli-driver@${version}`);
  const manifest = await signAndAttach(
    {
      schema: MANIFEST_SCHEMA,
      name: 'cli-driver',
      version,
      publisher: publisher.keyId,
      component: { digest: sha256Digest(component), size: component.byteLength },
      world: 'test:fixtures/chaos-world',
      abiVersion: '0.1.0',
      capabilities: { imports, memoryMaxPages: 32, deadlineMs: 500 },
      dependencies: [],
    },
    publisher,
  );
  const files = {
    wasm: join(dir, `cli-driver-${version}.wasm`),
    manifest: join(dir, `cli-driver-${version}.json`),
    out: join(dir, `cli-driver-${version}.campkg`),
  };
  writeFileSync(files.wasm, component);
  writeFileSync(files.manifest, JSON.stringify(manifest));
  const r = await camOs([
    'marketplace',
    'pack',
    files.wasm,
    '--manifest',
    files.manifest,
    '--key',
    join(dir, 'secret.json'),
    '--readme',
    join(dir, 'README.md'),
    '--license',
    join(dir, 'LICENSE'),
    '--out',
    files.out,
    '--json',
  ]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, name: 'cli-driver', version });
  return files.out;
}

describe('cam-os marketplace commands', () => {
  // Each step starts the CLI as a process (~1-2 s each on this machine); generous limits, no timing asserted.
  beforeAll(async () => {
    w = await startWorld([publisher, registryKey]);
    dir = mkdtempSync(join(tmpdir(), 'cam-market-cli-'));
    const { exportSecretKey } = await import('../../host/src/trust/keys.js');
    writeFileSync(join(dir, 'secret.json'), JSON.stringify(exportSecretKey(publisher)), { mode: 0o600 });
    writeFileSync(join(dir, 'public.json'), JSON.stringify(exportPublicKey(publisher)));
    writeFileSync(join(dir, 'registry-secret.json'), JSON.stringify(exportSecretKey(registryKey)), {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'README.md'), '# cli-driver\n\nA driver published from the CLI test.\n');
    writeFileSync(join(dir, 'LICENSE'), 'Apache-2.0\n');
    serve = spawn(
      process.execPath,
      [
        CLI,
        'marketplace',
        'serve',
        w.registryDir,
        '--listen',
        '127.0.0.1:0',
        '--token',
        TOKEN,
        '--registry-key',
        join(dir, 'registry-secret.json'),
        '--json',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      serve.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n')) resolve((JSON.parse(line!) as { url: string }).url);
      });
      serve.once('exit', (code) => reject(new Error(`marketplace serve exited with ${code}`)));
    });
  });
  afterAll(async () => {
    if (serve?.pid) process.kill(serve.pid, 'SIGTERM');
    await w?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({ CAM_OS_DATA_DIR: w.dataDir, CAM_OS_ADDRESS: '', CAM_OS_REGISTRY: '' });

  it('packs, publishes over HTTP with the token (and not without), searches and shows info', async () => {
    const p1 = await packVersion('1.0.0', ['wasi:cli/exit@0.2.3']);
    const denied = await camOs(['publish', p1, '--registry', url, '--json'], env());
    expect(denied.code).toBe(1);
    expect(JSON.parse(denied.stdout)).toMatchObject({ ok: false, code: 'unauthorized' });
    const ok = await camOs(
      [
        'publish',
        p1,
        '--registry',
        url,
        '--token',
        TOKEN,
        '--registry-key',
        join(dir, 'registry-secret.json'),
        '--json',
      ],
      env(),
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      ok: true,
      name: 'cli-driver',
      version: '1.0.0',
      created: true,
    });
    const p2 = await packVersion('2.0.0', ['wasi:cli/exit@0.2.3', 'wasi:random/random@0.2.3']);
    expect(
      (await camOs(['publish', p2, '--registry', url], { ...env(), CAM_OS_REGISTRY_TOKEN: TOKEN })).code,
    ).toBe(0);
    const s = await camOs(['search', 'published from', '--registry', url, '--json'], env());
    expect(JSON.parse(s.stdout)).toEqual([
      {
        name: 'cli-driver',
        description: 'A driver published from the CLI test.',
        latest: '2.0.0',
        versions: 2,
      },
    ]);
    const i = await camOs(['info', 'cli-driver', '--registry', url], env());
    expect(i.stdout).toContain(`publisher ${publisher.keyId} (trusted: marketplace test publisher)`);
    expect(i.stdout).toContain('wasi:random/random@0.2.3');
  }, 120_000);

  it('install asks for consent: refused without a TTY and without --yes, nothing written', async () => {
    const r = await camOs(['install', 'cli-driver@1.0.0', '--registry', url], env());
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('imports: wasi:cli/exit@0.2.3');
    expect(r.stdout).toContain(`signed by ${publisher.keyId}`);
    expect(r.stderr).toContain('--yes');
    expect(r.stderr).toContain('MARKET_ERR_CONSENT_DECLINED');
    const l = await camOs(['list', '--json'], env());
    expect(JSON.parse(l.stdout)).toEqual([]);
  }, 120_000);

  it('install --yes loads it into the running kernel; list shows it running', async () => {
    const r = await camOs(['install', 'cli-driver@^1.0.0', '--registry', url, '--yes', '--json'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: true,
      loaded: true,
      changed: [{ name: 'cli-driver', version: '1.0.0' }],
    });
    expect(r.stderr).toContain('"phase":"download"');
    const lock = JSON.parse(readFileSync(join(w.dataDir, 'marketplace', 'lock.json'), 'utf8'));
    expect(lock.registries[url]).toEqual({ keyId: registryKey.keyId, serial: 2 });
    const l = JSON.parse((await camOs(['list', '--json'], env())).stdout) as Array<{
      name: string;
      running: string;
    }>;
    expect(l).toMatchObject([{ name: 'cli-driver', version: '1.0.0', running: '1.0.0' }]);
  }, 120_000);

  it('upgrade shows the permission diff; rollback and uninstall', async () => {
    const up = await camOs(['upgrade', '--yes'], env()); // registry remembered from the install
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('upgrade cli-driver 1.0.0 -> 2.0.0');
    expect(up.stdout).toContain('+ wasi:random/random@0.2.3   (new permission)');
    expect((await w.control.list())[0]).toEqual({ name: 'cli-driver', version: '2.0.0' });
    const rb = await camOs(['rollback', 'cli-driver', '--json'], env());
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ ok: true, from: '2.0.0', to: '1.0.0', swapped: true });
    expect((await w.control.list())[0]).toEqual({ name: 'cli-driver', version: '1.0.0' });
    const un = await camOs(['uninstall', 'cli-driver'], env());
    expect(un.code, un.stderr).toBe(0);
    expect(un.stdout).toBe('uninstalled cli-driver@1.0.0 (unloaded)\n');
    expect(await w.control.list()).toEqual([]);
  }, 120_000);
  it('rollback of a component the marketplace did not install is the kernel component rollback', async () => {
    const manifestFor = async (version: string, bytes: Uint8Array) =>
      JSON.stringify(
        await signAndAttach(
          {
            schema: MANIFEST_SCHEMA,
            name: 'plain-comp',
            version,
            publisher: publisher.keyId,
            component: { digest: sha256Digest(bytes), size: bytes.byteLength },
            world: 'test:fixtures/chaos-world',
            abiVersion: '0.1.0',
            capabilities: { imports: ['wasi:cli/exit@0.2.3'], memoryMaxPages: 32, deadlineMs: 500 },
            dependencies: [],
          },
          publisher,
        ),
      );
    const v1 = tagged(await chaosComponent(), 'plain-comp@1.0.0');
    const v2 = tagged(await chaosComponent(), 'plain-comp@1.1.0');
    await w.admin.load(v1, await manifestFor('1.0.0', v1));
    await w.admin.swap('plain-comp', v2, await manifestFor('1.1.0', v2));
    const r = await camOs(['rollback', 'plain-comp', '--json'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      name: 'plain-comp',
      to_version: '1.0.0',
      result: 'swapped',
    });
    await w.admin.unload('plain-comp');
  }, 120_000);
});
