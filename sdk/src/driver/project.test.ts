/** driver.json validation: every bad field is named, with the file, before anything is built. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DriverProjectError, readDriverProject } from './project.js';

let dir: string;
const good = { name: 'd', version: '0.1.0', world: 'driver', entry: 'src/index.ts' };
async function withJson(json: unknown): Promise<string> {
  await writeFile(join(dir, 'driver.json'), typeof json === 'string' ? json : JSON.stringify(json));
  return dir;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-project-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.ts'), 'export {};\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('readDriverProject', () => {
  it('reads a valid driver.json with defaults', async () => {
    const p = readDriverProject(await withJson({ ...good, config: { a: 'b' }, deadlineMs: 100 }));
    expect(p).toMatchObject({
      name: 'd',
      world: 'driver',
      witVersion: '0.1.0',
      config: { a: 'b' },
      deadlineMs: 100,
    });
    expect(p.entry).toBe(join(dir, 'src', 'index.ts'));
  });

  it.each([
    [{ ...good, name: 'Bad_Name' }, '"name" must be 1-63 chars'],
    [{ ...good, version: 'one' }, '"version" must be a SemVer'],
    [{ ...good, world: 'kernel' }, '"world" must be one of scheduler-component'],
    [{ ...good, entry: 'src/missing.ts' }, '"entry" names a file that does not exist'],
    [{ ...good, deadlineMs: 0 }, '"deadlineMs" must be an integer from 1 to 3600000'],
    [{ ...good, config: { n: 1 } }, '"config" value of "n" must be a string'],
    [{ ...good, colour: 'red' }, '"colour" is not a known field'],
    [{ ...good, witVersion: '9.9.9' }, '"witVersion" must be one of 0.1.0'],
    ['{ not json', 'not valid JSON'],
  ])('refuses %j', async (json, message) => {
    const d = await withJson(json);
    expect(() => readDriverProject(d)).toThrow(DriverProjectError);
    expect(() => readDriverProject(d)).toThrow(message);
  });

  it('says how to create a driver when there is none', () => {
    expect(() => readDriverProject(join(dir, 'src'))).toThrow(/driver\.json not found.*cam-os driver new/);
  });
});
