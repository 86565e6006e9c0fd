/**
 * The committed guest declarations (sdk/generated/, referenced by the repository's drivers) are exactly
 * what jco generates from wit/ today: a WIT change without regenerating fails here, with the fix.
 */
import { readFileSync } from 'node:fs';
import { listWorlds, SUPPORTED_WIT_VERSIONS } from '@cam-os/host/wit/source.js';
import { describe, expect, it } from 'vitest';
import { guestTypes, typesFile } from './guest-types.js';

describe('generated guest types', () => {
  for (const v of SUPPORTED_WIT_VERSIONS) {
    for (const world of listWorlds(v).filter((w) => w !== 'kernel')) {
      it(`${world}@${v} matches wit/`, async () => {
        const fresh = await guestTypes(world, v);
        let committed = '';
        try {
          committed = readFileSync(typesFile(world, v), 'utf8');
        } catch {}
        expect(
          committed === fresh,
          `${typesFile(world, v)} is out of date: run \`npx tsc -b && node sdk/dist/wit/guest-types.js\``,
        ).toBe(true);
        // The world's imports and exports are all declared, as componentize-js names them.
        expect(fresh).toContain(`declare module 'cam:kernel/lifecycle@${v}'`);
      });
    }
  }

  it('refuses the kernel world and unknown worlds', async () => {
    await expect(guestTypes('kernel')).rejects.toThrow(/unknown component world 'kernel'/);
    await expect(guestTypes('nope')).rejects.toThrow(/unknown component world 'nope'/);
  });
});
