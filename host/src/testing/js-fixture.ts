/**
 * A real JavaScript component built with componentize-js 0.23 (its JS API, WIT passed as a string — the
 * CLI path trips over preview2-shim's missing default preopen). A build takes ~12-14 s on this machine,
 * so the result is cached on disk by the digest of its inputs and the componentize-js version.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURE_WIT } from './fixtures.js';

export const JS_FIXTURE_SOURCE = `import { log } from 'test:fixtures/log@0.1.0';
export const calc = {
  add(a, b) { return (a + b) >>> 0; },
  echo(s) { return s; },
  sum(xs) { let t = 0n; for (const x of xs) t += BigInt(x); return t; },
  divide(a, b) {
    if (b === 0) { log('division by zero'); throw 'division by zero'; }
    return Math.floor(a / b);
  },
};
`;

export async function buildJsComponent(
  source: string,
  witSource: string,
  world: string,
  cacheDir?: string,
): Promise<Uint8Array> {
  const { componentize, version } = (await import('@bytecodealliance/componentize-js')) as unknown as {
    componentize: (
      src: string,
      wit: string,
      opts: Record<string, unknown>,
    ) => Promise<{ component: Uint8Array }>;
    version: string;
  };
  const key = createHash('sha256').update(`${version}\0${world}\0${witSource}\0${source}`).digest('hex');
  const dir = cacheDir ?? join(tmpdir(), 'cam-os-test-cache', 'componentize');
  const file = join(dir, `${key}.wasm`);
  if (existsSync(file)) return readFile(file);
  const { component } = await componentize(source, witSource, {
    worldName: world,
    sourceName: 'driver.js',
    // A pure component: no WASI at all, so the kernel grants nothing it does not have to.
    disableFeatures: ['random', 'stdio', 'clocks', 'http', 'fetch-event'],
  });
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, component);
  await rename(tmp, file);
  return component;
}

/** The JS twin of the WAT `calc` fixture (same WIT world). */
export function buildJsCalc(cacheDir?: string): Promise<Uint8Array> {
  return buildJsComponent(JS_FIXTURE_SOURCE, FIXTURE_WIT, 'calc-world', cacheDir);
}

/**
 * A stateful `cam:kernel` driver for hot-swap tests: a counter behind handler.handle('incr'|'get'),
 * handed over through lifecycle export-state/import-state. Its init config can make it misbehave:
 * `fail-init` (init returns an error), `throw-init` (init throws a TypeError), `reject-state`
 * (import-state refuses), `unhealthy` (health reports degraded).
 */
export const COUNTER_SOURCE = `
let count = 0n;
let cfg = {};
const enc = new TextEncoder();
const dec = new TextDecoder();
export const lifecycle = {
  init(config) {
    cfg = Object.fromEntries(config);
    if (cfg['fail-init']) throw { tag: 'failed-precondition', val: 'init refused by config' };
    if (cfg['throw-init']) { const o = undefined; o.boom(); }
  },
  health() {
    return cfg.unhealthy
      ? { status: 'degraded', detail: 'configured unhealthy', checks: [] }
      : { status: 'serving', detail: 'counter ' + count, checks: [['build', cfg.build ?? '']] };
  },
  exportState() { return enc.encode(String(count)); },
  importState(state) {
    if (cfg['reject-state']) throw { tag: 'invalid-argument', val: 'state refused by config' };
    count = BigInt(dec.decode(state));
  },
};
export const handler = {
  handle(op, payload) {
    if (op === 'incr') count += 1n;
    else if (op !== 'get') throw { tag: 'invalid-argument', val: 'unknown op ' + op };
    return enc.encode(String(count));
  },
};
`;

export async function buildCounterDriver(cacheDir?: string): Promise<Uint8Array> {
  const { witSource } = await import('../wit/source.js');
  return buildJsComponent(COUNTER_SOURCE, witSource(), 'driver', cacheDir);
}
