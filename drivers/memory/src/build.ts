/**
 * The memory component as the tests load it: built from drivers/memory/assembly by the SDK pipeline, the
 * way `npm run build:drivers` builds it (cached in drivers/.cache, so only the first suite pays the build).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildResult, buildComponent } from '../../../sdk/src/build/index.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function buildMemory(outDir: string): Promise<BuildResult> {
  return buildComponent({
    entry: join(ROOT, 'drivers/memory/assembly/index.ts'),
    toolchain: 'assemblyscript',
    world: 'memory-component',
    outDir,
    cacheDir: join(ROOT, 'drivers/.cache'),
    name: 'memory',
  });
}
