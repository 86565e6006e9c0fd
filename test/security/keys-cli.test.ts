/**
 * The operator's key and trust-store lifecycle through the real CLI: generate, export, import, show,
 * trust add / list / revoke, and the refusals an operator should see.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { camOs } from './cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cam-keys-cli-'));
const data = join(dir, 'data');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cam-os keys and trust', () => {
  it('generates, exports, imports and shows a publisher key; trusts and revokes it', async () => {
    const secret = join(dir, 'k.json');
    const pub = join(dir, 'p.json');
    const gen = await camOs(['keys', 'generate', '--out', secret, '--tpm', 'none', '--json']);
    expect(gen.code).toBe(0);
    const { keyId } = JSON.parse(gen.stdout) as { keyId: string };
    expect(keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(statSync(secret).mode & 0o077).toBe(0);
    expect((await camOs(['keys', 'export', secret, '--out', pub])).code).toBe(0);
    expect((await camOs(['keys', 'show', pub])).stdout.trim()).toBe(keyId);
    const imp = await camOs(['keys', 'import', secret, '--data-dir', data, '--json']);
    expect(imp.code).toBe(0);
    const imported = JSON.parse(imp.stdout) as { file: string; secret: boolean };
    expect(imported.secret).toBe(true);
    expect(statSync(imported.file).mode & 0o077).toBe(0);
    expect((await camOs(['trust', 'add', pub, '--label', 'ci', '--data-dir', data])).code).toBe(0);
    const list = JSON.parse((await camOs(['trust', 'list', '--json', '--data-dir', data])).stdout) as Array<{
      keyId: string;
      revoked: unknown;
    }>;
    expect(list).toEqual([expect.objectContaining({ keyId, revoked: null })]);
    expect((await camOs(['trust', 'revoke', keyId, '--reason', 'rotated', '--data-dir', data])).code).toBe(0);
    const again = await camOs(['trust', 'add', pub, '--data-dir', data]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('revoked');
  });

  it('refuses malformed key files and explains usage errors', async () => {
    const bad = join(dir, 'bad.json');
    await import('node:fs/promises').then((f) => f.writeFile(bad, '{"format":"nope"}'));
    const r = await camOs(['keys', 'import', bad, '--data-dir', data]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/keyId|format/);
    const usage = await camOs(['keys', 'frobnicate']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('cam-os keys --help');
  });
});
