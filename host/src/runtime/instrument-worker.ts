/**
 * Instruments one core module for interruption (runtime/interrupt.ts) in a short-lived thread, so that
 * binaryen.js and its memory never load in the kernel's own heap. Answers `{ ok: bytes }` or `{ error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import binaryen from 'binaryen';

const { bytes, module } = workerData as { bytes: Uint8Array; module: string };
try {
  const m = binaryen.readBinary(bytes);
  try {
    m.setFeatures(binaryen.Features.All);
    // Without the argument the pass imports the logger from the module's first import module.
    binaryen.setPassArgument('log-execution', module);
    m.runPasses(['log-execution']);
    if (!m.validate()) throw new Error('the instrumented module does not validate');
    const out = m.emitBinary();
    parentPort!.postMessage({ ok: out }, [out.buffer as ArrayBuffer]);
  } finally {
    m.dispose();
  }
} catch (e) {
  parentPort!.postMessage({ error: e instanceof Error ? e.message : String(e) });
}
