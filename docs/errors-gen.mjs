// Regenerates the table in docs/errors.md from the catalogue in host/src/errors.ts (via host/dist).
import { readFileSync, writeFileSync } from 'node:fs';
import { ERROR_CATALOGUE, GrpcStatus } from '../host/dist/errors.js';

const file = new URL('./errors.md', import.meta.url);
const doc = readFileSync(file, 'utf8');
const rows = Object.entries(ERROR_CATALOGUE).map(
  ([code, e]) => `| \`${code}\` | ${e.status} (${GrpcStatus[e.status]}) | ${e.summary} |`,
);
const lines = doc.split('\n');
const first = lines.findIndex((l) => l.startsWith('| `'));
const last = lines.findLastIndex((l) => l.startsWith('| `'));
lines.splice(first, last - first + 1, ...rows);
writeFileSync(file, lines.join('\n'));
