// Child process for kv.crash.test.ts: writes into an embedded store as fast as it can and prints one line per
// acknowledged batch, only after its promise resolved. The test kill -9s this process mid-storm and then
// checks that every printed key is in the store.
//
// Runs the compiled backend (host/dist), which `npm test` builds first; run `npx tsc -b` before running the
// crash test on its own.
//
// usage: node crash-writer.mjs <store-dir> <first-seq> <concurrency>
import { openKv } from '../../../dist/kv/index.js';

const [dir, firstArg, concurrencyArg] = process.argv.slice(2);
if (!dir || !firstArg || !concurrencyArg) {
  process.stderr.write('usage: node crash-writer.mjs <store-dir> <first-seq> <concurrency>\n');
  process.exit(2);
}
let next = Number(firstArg);
const concurrency = Number(concurrencyArg);

const store = await openKv({ backend: 'embedded', path: dir });
// Writes to a pipe are synchronous on Linux: once write() returns, the line is in the pipe and survives
// this process being killed.
process.stdout.write('ready\n');

/** A value that names its key and has some bulk, so commits span several pages. */
function valueFor(seq) {
  const v = Buffer.alloc(700 + (seq % 300), seq & 0xff);
  v.write(`seq=${seq};`, 0);
  return v;
}

async function writer() {
  for (;;) {
    const seq = next++;
    const key = `k${String(seq).padStart(9, '0')}`;
    // Two keys per batch: after the crash both must exist or neither.
    await store.batch('storm', [
      { op: 'put', key, value: valueFor(seq) },
      { op: 'put', key: `m${key.slice(1)}`, value: valueFor(seq) },
    ]);
    process.stdout.write(`ack ${seq}\n`);
  }
}

await Promise.all(Array.from({ length: concurrency }, writer));
