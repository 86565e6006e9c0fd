import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRegistry, serveRegistry } from './server.js';

describe('marketplace serve: the HTTP face of a directory registry', () => {
  let dir: string;
  let reg: RunningRegistry;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cam-market-serve-'));
    writeFileSync(join(dir, 'secret.txt'), 'not for the web');
    reg = await serveRegistry(dir, { token: 'a-token-of-sixteen-chars' });
  });
  afterAll(async () => {
    await reg.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves an empty index for a fresh registry', async () => {
    const r = await fetch(new URL('index.json', reg.url));
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ format: 'cam-os/registry-index@1', packages: {} });
  });

  it('serves only the registry layout: no other files, no climbing out', async () => {
    for (const p of [
      'secret.txt',
      'packages/../secret.txt',
      '%2e%2e/%2e%2e/etc/passwd',
      'packages/a/b-1.0.0.campkg',
    ]) {
      const r = await fetch(`${reg.url}${p}`);
      expect(r.status, p).toBe(404);
    }
  });

  it('refuses to publish without the token, and refuses short tokens at start', async () => {
    const r = await fetch(new URL('publish', reg.url), { method: 'POST', body: 'x' });
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ ok: false, code: 'unauthorized' });
    const bad = await fetch(new URL('publish', reg.url), {
      method: 'POST',
      body: 'x',
      headers: { authorization: 'Bearer a-token-of-sixteen-charX' },
    });
    expect(bad.status).toBe(401);
    const junk = await fetch(new URL('publish', reg.url), {
      method: 'POST',
      body: 'not a package',
      headers: { authorization: 'Bearer a-token-of-sixteen-chars' },
    });
    expect(junk.status).toBe(400);
    expect(await junk.json()).toMatchObject({ code: 'malformed-package' });
    await expect(serveRegistry(dir, { token: 'short' })).rejects.toThrow(/16 characters/);
  });
});
