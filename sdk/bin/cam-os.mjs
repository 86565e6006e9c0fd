#!/usr/bin/env node
// The `cam-os` command. The CLI is TypeScript compiled to sdk/dist by `npm run build`; this launcher is in the
// repository so that `npm install` links the command on a fresh clone, before anything is built.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('cam-os: the CLI is not built yet; run `npm run build` (or `npm start`) first\n');
  process.exit(1);
}
await import(main.href);
