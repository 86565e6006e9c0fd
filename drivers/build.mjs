#!/usr/bin/env node
// Builds the system drivers (scheduler, arbitration, memory) into drivers/<name>/dist/<name>.wasm, plus an
// unsigned drivers/<name>/dist/manifest.json when a publisher key id is given (the signing step adds the
// signatures). Each driver is described by drivers/<name>/driver.json. Needs `npm run build` first (it uses
// sdk/dist and host/dist).
//
//   node drivers/build.mjs [--publisher <key id> | --publisher-key <public key file>] [--cache-dir <dir>] [name...]
//
// The publisher may also come from $CAM_OS_PUBLISHER. Unchanged drivers are served from the build cache
// (default drivers/.cache) in well under a second; a real build takes ~5-14 s with componentize-js and
// ~2-4 s with AssemblyScript (driver.json `toolchain`: memory is compiled with asc, the others are TS).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { importPublicKey } from '../host/dist/trust/keys.js';
import { buildComponent } from '../sdk/dist/build/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const ALL = ['scheduler', 'arbitration', 'memory', 'federation'];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    publisher: { type: 'string' },
    'publisher-key': { type: 'string' },
    'cache-dir': { type: 'string' },
  },
});

let publisher = values.publisher ?? process.env.CAM_OS_PUBLISHER;
if (values['publisher-key']) {
  const file = resolve(values['publisher-key']);
  publisher = importPublicKey(JSON.parse(readFileSync(file, 'utf8')), file).keyId;
}
const names = positionals.length > 0 ? positionals : ALL;
const unknown = names.filter((n) => !ALL.includes(n));
if (unknown.length > 0) {
  console.error(`unknown driver(s): ${unknown.join(', ')} (known: ${ALL.join(', ')})`);
  process.exit(2);
}
const cacheDir = resolve(values['cache-dir'] ?? join(here, '.cache'));

let failed = false;
for (const name of names) {
  const dir = join(here, name);
  const desc = JSON.parse(readFileSync(join(dir, 'driver.json'), 'utf8'));
  const t0 = performance.now();
  try {
    const r = await buildComponent({
      entry: join(dir, desc.entry),
      toolchain: desc.toolchain,
      world: desc.world,
      outDir: join(dir, 'dist'),
      cacheDir,
      name: desc.name,
      manifest: publisher
        ? {
            name: desc.name,
            version: desc.version,
            publisher,
            memoryMaxPages: desc.memoryMaxPages,
            deadlineMs: desc.deadlineMs,
            concurrency: desc.concurrency,
          }
        : undefined,
    });
    const ms = (performance.now() - t0).toFixed(0);
    console.log(
      `${name}: ${r.wasmPath} ${(r.size / 2 ** 20).toFixed(1)} MiB ${r.digest} ${r.toolchain} ${r.cached ? '(cached)' : '(built)'} ${ms} ms`,
    );
    console.log(`  imports: ${r.imports.join(', ')}`);
    if (r.manifestPath) console.log(`  manifest: ${r.manifestPath}`);
  } catch (e) {
    failed = true;
    console.error(`${name}: ${e?.message ?? e}`);
  }
}
if (!publisher) {
  console.log(
    'no publisher key id given (--publisher, --publisher-key or $CAM_OS_PUBLISHER): manifests not written',
  );
}
process.exit(failed ? 1 : 0);
