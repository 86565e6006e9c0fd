/**
 * A driver folder as the SDK sees it: `driver.json` (name, version, world, entry, limits, config) beside
 * the sources. Every command (`driver build|test|sign|dev`) starts by reading and validating it here, so a
 * bad field is reported once, with the file and the field, before anything is built.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listWorlds, SUPPORTED_WIT_VERSIONS } from '@cam-os/host/wit/source.js';

export const DRIVER_FILE = 'driver.json';

export interface DriverProject {
  /** Absolute folder of the driver. */
  dir: string;
  name: string;
  version: string;
  world: string;
  witVersion: string;
  /** Absolute path of the entry module. */
  entry: string;
  memoryMaxPages?: number;
  deadlineMs?: number;
  concurrency?: number;
  /** Passed to lifecycle.init on load. */
  config: Record<string, string>;
  /** `<dir>/dist`: component, manifest, build cache, dev artifacts. */
  distDir: string;
}

export class DriverProjectError extends Error {
  override name = 'DriverProjectError';
}

const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
const SEMVER_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export function readDriverProject(dirArg = '.'): DriverProject {
  const dir = resolve(dirArg);
  const file = join(dir, DRIVER_FILE);
  if (!existsSync(file)) {
    throw new DriverProjectError(
      `${file} not found: run this in a driver folder (or create one with \`cam-os driver new <name>\`)`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DriverProjectError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new DriverProjectError(`${file}: must be a JSON object`);
  const d = raw as Record<string, unknown>;
  const bad = (field: string, what: string): never => {
    throw new DriverProjectError(`${file}: "${field}" ${what} (got ${JSON.stringify(d[field])})`);
  };
  const known = new Set([
    'name',
    'version',
    'world',
    'witVersion',
    'entry',
    'memoryMaxPages',
    'deadlineMs',
    'concurrency',
    'config',
    'description',
  ]);
  for (const k of Object.keys(d))
    if (!known.has(k)) bad(k, `is not a known field (known: ${[...known].join(', ')})`);
  if (typeof d.name !== 'string' || !NAME_RE.test(d.name))
    bad('name', 'must be 1-63 chars of a-z, 0-9 and -, starting with a letter');
  if (typeof d.version !== 'string' || !SEMVER_RE.test(d.version))
    bad('version', 'must be a SemVer like 0.1.0');
  const witVersion = d.witVersion ?? SUPPORTED_WIT_VERSIONS.at(-1);
  if (typeof witVersion !== 'string' || !(SUPPORTED_WIT_VERSIONS as readonly string[]).includes(witVersion))
    bad('witVersion', `must be one of ${SUPPORTED_WIT_VERSIONS.join(', ')}`);
  const worlds = listWorlds(witVersion as string).filter((w) => w !== 'kernel');
  if (typeof d.world !== 'string' || !worlds.includes(d.world))
    bad('world', `must be one of ${worlds.join(', ')}`);
  if (typeof d.entry !== 'string' || d.entry.length === 0)
    bad('entry', 'must name the entry module (e.g. src/index.ts)');
  const entry = resolve(dir, d.entry as string);
  if (!existsSync(entry)) bad('entry', `names a file that does not exist (${entry})`);
  const int = (k: string, max: number): number | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      bad(k, `must be an integer from 1 to ${max}`);
    return v as number;
  };
  const config: Record<string, string> = {};
  if (d.config !== undefined) {
    if (d.config === null || typeof d.config !== 'object' || Array.isArray(d.config))
      bad('config', 'must be an object of string values');
    for (const [k, v] of Object.entries(d.config as Record<string, unknown>)) {
      if (typeof v !== 'string') bad('config', `value of "${k}" must be a string`);
      config[k] = v as string;
    }
  }
  const project: DriverProject = {
    dir,
    name: d.name as string,
    version: d.version as string,
    world: d.world as string,
    witVersion: witVersion as string,
    entry,
    config,
    distDir: join(dir, 'dist'),
  };
  const mem = int('memoryMaxPages', 65536);
  const deadline = int('deadlineMs', 3_600_000);
  const conc = int('concurrency', 64);
  if (mem !== undefined) project.memoryMaxPages = mem;
  if (deadline !== undefined) project.deadlineMs = deadline;
  if (conc !== undefined) project.concurrency = conc;
  return project;
}
