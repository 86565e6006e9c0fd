#!/usr/bin/env node
// Builds the camos_tpm addon with node-gyp. Run from anywhere: `node host/native/tpm/build.mjs`.
//
// A machine without tpm2-tss (or without a C++ toolchain) must still install: the kernel then runs in
// its explicit no-TPM mode, so a missing prerequisite prints a loud notice and exits 0. When every
// prerequisite is present, a failing compile is a real bug and exits 1.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const addonPath = join(here, 'build', 'Release', 'camos_tpm.node');
const TSS_LIBS = ['tss2-esys', 'tss2-tctildr', 'tss2-rc', 'tss2-mu'];

function banner(lines) {
  const bar = '!'.repeat(100);
  console.warn(['', bar, ...lines.map((l) => `!!  ${l}`), bar, ''].join('\n'));
}

function notBuilt(why, hint) {
  banner([
    `TPM addon not built: ${why} — the kernel will run in no-TPM mode`,
    ...(hint ? [hint] : []),
    'Rebuild later with: node host/native/tpm/build.mjs',
  ]);
  process.exit(0);
}

function runs(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

if (process.env.CAMOS_TPM_ADDON === 'skip') {
  notBuilt('CAMOS_TPM_ADDON=skip is set');
}

if (!runs('pkg-config', ['--version'])) {
  notBuilt(
    'pkg-config missing (needed to locate libtss2)',
    'Debian/Ubuntu: apt-get install -y pkg-config libtss2-dev',
  );
}
const missing = TSS_LIBS.filter((lib) => !runs('pkg-config', ['--exists', lib]));
if (missing.length > 0) {
  notBuilt(
    `libtss2-dev missing (pkg-config finds no ${missing.join(', ')})`,
    'Debian/Ubuntu: apt-get install -y libtss2-dev',
  );
}
for (const [tool, args] of [
  ['make', ['--version']],
  ['c++', ['--version']],
  ['python3', ['--version']],
]) {
  if (!runs(tool, args)) notBuilt(`${tool} missing (node-gyp needs make, a C++ compiler and python3)`);
}

function findNodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // npm exports the path of its bundled node-gyp to every script it runs.
    const fromNpm = process.env.npm_config_node_gyp;
    return fromNpm && existsSync(fromNpm) ? fromNpm : undefined;
  }
}
const nodeGyp = findNodeGyp();
if (!nodeGyp) notBuilt('node-gyp not found (neither in node_modules nor bundled with npm)');

const args = [nodeGyp, 'rebuild'];
// Without a nodedir node-gyp downloads headers, which fails offline; a distro or tarball Node ships
// them under <prefix>/include/node.
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

console.log(`camos_tpm: building with node-gyp in ${here}`);
const build = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit' });
if (build.error !== undefined || build.status !== 0) {
  banner([
    'TPM addon build FAILED although libtss2-dev, make, c++ and python3 are present.',
    'This is a bug in host/native/tpm, not a missing dependency; see the compiler output above.',
  ]);
  process.exit(1);
}

// Load it once in a child so a link problem (e.g. a runtime libtss2 missing) shows up now, not at boot.
const load = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addonPath)})`], {
  encoding: 'utf8',
});
if (load.status !== 0) {
  banner([`TPM addon built but does not load: ${(load.stderr || '').trim().split('\n')[0]}`]);
  process.exit(1);
}
console.log(`camos_tpm: built ${addonPath}`);
