/**
 * Acceptance: for every template, `cam-os driver new` -> `driver build` -> `driver test` passes, in a fresh
 * temporary folder, through the real CLI. `driver test` runs the template's tests twice — against the
 * componentize-js component and on the dev path — so this also shows the two paths agree on each template.
 * A second `driver build` is served from the cache keyed by the inputs' digest.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEMPLATES } from '../../sdk/src/driver/scaffold.js';
import { cli, lastJson } from './cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-templates-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface TestOut {
  ok: boolean;
  results: Array<{ mode: string; ok: boolean; passed: number; failed: number }>;
}

describe('driver templates: new -> build -> test', () => {
  for (const t of TEMPLATES) {
    it(`${t.name}`, { timeout: 300_000 }, async () => {
      const name = `tpl-${t.name}`;
      const created = await cli(['driver', 'new', name, '--template', t.name, '--json'], { cwd: dir });
      expect(created.code, created.stderr).toBe(0);
      expect(lastJson(created)).toMatchObject({ ok: true, world: t.world });

      const built = await cli(['driver', 'build', name, '--json'], { cwd: dir });
      expect(built.code, built.stderr + built.stdout).toBe(0);
      const b = lastJson<{ wasmPath: string; cached: boolean; imports: string[] }>(built);
      expect(b.cached).toBe(false);
      expect(existsSync(b.wasmPath)).toBe(true);

      const again = await cli(['driver', 'build', name, '--json'], { cwd: dir });
      expect(lastJson(again)).toMatchObject({ cached: true, wasmPath: b.wasmPath });

      const tested = await cli(['driver', 'test', name, '--json'], { cwd: dir });
      const out = lastJson<TestOut>(tested);
      expect(
        out.results.map((r) => r.mode),
        tested.stderr,
      ).toEqual(['component', 'dev']);
      for (const r of out.results) {
        expect(r, `${r.mode} mode:\n${tested.stderr}`).toMatchObject({ ok: true, failed: 0 });
        expect(r.passed).toBeGreaterThan(0);
      }
      // The same test count in both modes: the same suite ran against both paths.
      expect(out.results[0]!.passed).toBe(out.results[1]!.passed);
      expect(tested.code).toBe(0);
    });
  }
});
