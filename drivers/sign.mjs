#!/usr/bin/env node
// Signing of the system components built from this checkout.
//
//   node drivers/sign.mjs key    ensure the build key exists; print the public key file's path
//   node drivers/sign.mjs sign   sign drivers/<name>/dist/manifest.json in place (ML-DSA-65 + Ed25519)
//
// The key lives in .cam-os/ (git-ignored, secret file mode 0600): each checkout signs what it builds with its
// own key, and `cam-os up` trusts that key for the system components it loads from the same checkout (shown in
// status as "local build"). A release build would sign with the project's release key instead: pass
// CAM_OS_SYSTEM_KEY=<secret key file> to use another key.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  exportPublicKey,
  generatePublisherKeyPair,
  readSecretKeyFile,
  writePublicKeyFile,
  writeSecretKeyFile,
} from '../host/dist/trust/keys.js';
import { parseManifest } from '../host/dist/trust/manifest.js';
import { signAndAttach } from '../host/dist/trust/sign.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const keyDir = join(root, '.cam-os');
const secretPath = resolve(process.env.CAM_OS_SYSTEM_KEY ?? join(keyDir, 'system-publisher.key.json'));
const publicPath = join(keyDir, 'system-publisher.pub.json');
const DRIVERS = ['scheduler', 'arbitration', 'memory', 'federation'];

async function ensureKey() {
  if (!existsSync(secretPath)) {
    if (process.env.CAM_OS_SYSTEM_KEY)
      throw new Error(`CAM_OS_SYSTEM_KEY points at ${secretPath}, which does not exist`);
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    const pair = await generatePublisherKeyPair();
    await writeSecretKeyFile(secretPath, pair);
    console.log(`generated system build key ${pair.keyId} in ${secretPath}`);
  }
  const pair = await readSecretKeyFile(secretPath);
  const current = existsSync(publicPath) ? JSON.parse(readFileSync(publicPath, 'utf8')) : undefined;
  if (JSON.stringify(current) !== JSON.stringify(exportPublicKey(pair))) {
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    await writePublicKeyFile(publicPath, pair);
  }
  return pair;
}

const mode = process.argv[2];
if (mode === 'key') {
  await ensureKey();
  console.log(publicPath);
} else if (mode === 'sign') {
  const pair = await ensureKey();
  for (const name of DRIVERS) {
    const file = join(here, name, 'dist', 'manifest.json');
    if (!existsSync(file))
      throw new Error(`${file} is missing: build the drivers first (npm run build:drivers)`);
    const { signatures: _old, ...body } = parseManifest(JSON.parse(readFileSync(file, 'utf8')));
    if (body.publisher !== pair.keyId) {
      throw new Error(`${file} names publisher ${body.publisher}, but the build key is ${pair.keyId}`);
    }
    const signed = await signAndAttach(body, pair);
    writeFileSync(file, `${JSON.stringify(signed, null, 2)}\n`);
    console.log(`${name}: signed by ${pair.keyId}`);
  }
} else {
  console.error('usage: node drivers/sign.mjs key|sign');
  process.exit(2);
}
