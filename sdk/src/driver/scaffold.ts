/**
 * `cam-os driver new`: a driver folder that builds and tests on the first try. The templates live in
 * `sdk/templates/<template>/` (sources and tests, with `__NAME__` for the driver's name); this adds
 * `driver.json`, the WIT declarations of the template's world (generated from `wit/`, see
 * wit/guest-types.ts), a tsconfig for editors, a .gitignore and a README. Nothing is written if the target
 * exists or the name is invalid.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SUPPORTED_WIT_VERSIONS } from '@cam-os/host/wit/source.js';
import { guestTypes } from '../wit/guest-types.js';
import { TEMPLATES, type Template } from './templates.js';

export { TEMPLATES, type Template } from './templates.js';

export const TEMPLATE_ROOT = fileURLToPath(new URL('../../templates/', import.meta.url));
const SDK_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class ScaffoldError extends Error {
  override name = 'ScaffoldError';
}

export interface ScaffoldResult {
  dir: string;
  template: string;
  world: string;
  files: string[];
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p, base)));
    else out.push(relative(base, p));
  }
  return out.sort();
}

function readme(name: string, t: Template): string {
  return `# ${name}

A CAM-OS driver from the \`${t.name}\` template: ${t.summary}.
It targets the world \`cam:kernel/${t.world}@${SUPPORTED_WIT_VERSIONS.at(-1)}\`.

${t.usage}

## Inner loop

\`\`\`sh
cam-os driver build            # TypeScript -> component (dist/${name}.wasm), cached by the inputs' digest
cam-os driver test             # test/*.test.ts against a real in-process kernel, as a component AND on the dev path
cam-os driver dev              # watch: every save is rebuilt and hot-swapped into a running kernel (state kept)
cam-os driver sign --key <publisher.key.json>   # dist/manifest.json, signed (ML-DSA-65 + Ed25519)
\`\`\`

- \`driver.json\`: name, version, world, entry, limits (\`memoryMaxPages\`, \`deadlineMs\`), \`config\` (passed to \`lifecycle.init\`).
- \`src/wit.d.ts\`: the world's types, generated from the kernel's WIT (\`cam-os driver types\` regenerates it).
- \`@cam-os/sdk/guest\`: lifecycle helper (init once, health, versioned export/import-state) and \`kernelError\`.

See docs/drivers.md in the CAM-OS repository for the whole path to a signed driver running in a kernel.
`;
}

export async function scaffold(target: string, templateName = 'plain'): Promise<ScaffoldResult> {
  const dir = resolve(target);
  const name = basename(dir);
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
    throw new ScaffoldError(
      `driver name '${name}' must be 1-63 chars of a-z, 0-9 and '-', starting with a letter (it names the folder and the component)`,
    );
  }
  const t = TEMPLATES.find((x) => x.name === templateName);
  if (!t) {
    throw new ScaffoldError(
      `unknown template '${templateName}' (templates: ${TEMPLATES.map((x) => x.name).join(', ')})`,
    );
  }
  if (existsSync(dir)) throw new ScaffoldError(`${dir} already exists; choose a new folder`);
  if (!existsSync(dirname(dir))) throw new ScaffoldError(`parent folder ${dirname(dir)} does not exist`);

  // Write into a sibling temp folder and rename at the end: a failure leaves nothing behind.
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    const src = join(TEMPLATE_ROOT, t.name);
    await cp(src, tmp, { recursive: true });
    for (const f of await listFiles(tmp)) {
      const p = join(tmp, f);
      const text = await readFile(p, 'utf8');
      if (text.includes('__NAME__')) await writeFile(p, text.replaceAll('__NAME__', name));
    }
    const witVersion = SUPPORTED_WIT_VERSIONS.at(-1)!;
    await mkdir(join(tmp, 'src'), { recursive: true });
    await writeFile(join(tmp, 'src', 'wit.d.ts'), await guestTypes(t.world, witVersion));
    const driverJson = {
      name,
      version: '0.1.0',
      world: t.world,
      witVersion,
      entry: 'src/index.ts',
      ...t.limits,
      config: {},
    };
    await writeFile(join(tmp, 'driver.json'), `${JSON.stringify(driverJson, null, 2)}\n`);
    const guestDts = join(SDK_ROOT, 'dist', 'guest', 'index.d.ts');
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        strict: true,
        noEmit: true,
        lib: ['ES2022'],
        types: [],
        paths: { '@cam-os/sdk/guest': [guestDts] },
      },
      include: ['src/**/*.ts'],
    };
    await writeFile(join(tmp, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
    await writeFile(join(tmp, '.gitignore'), 'dist/\n');
    await writeFile(join(tmp, 'README.md'), readme(name, t));
    const files = await listFiles(tmp);
    await rename(tmp, dir);
    return { dir, template: t.name, world: t.world, files };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
