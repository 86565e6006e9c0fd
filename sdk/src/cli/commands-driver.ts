/**
 * `cam-os driver <new|build|test|sign|dev|types>`: the driver author's inner loop (see docs/drivers.md).
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildResult, type BuildStage, buildComponent } from '../build/build.js';
import { BuildError, type Diagnostic } from '../build/bundle.js';
import { buildDev } from '../build/dev.js';
import { typecheck } from '../build/typecheck.js';
import { type DriverProject, readDriverProject } from '../driver/project.js';
import { TEMPLATES } from '../driver/templates.js';
import type { Command, Io } from './shared.js';
import { type Args, str, UsageError } from './usage.js';

// Only what `driver build` needs is imported up front: this file is all `cam-os driver …` loads (see
// main.ts), and a warm build should cost little more than Node's start-up. Keys, signing, the kernel and
// the scaffolder are imported by the commands that use them.

const SDK_DIST = fileURLToPath(new URL('../', import.meta.url));

function project(args: Args): DriverProject {
  return readDriverProject(args.positionals[0] ?? '.');
}

/** `file:line:col: text` with the source line and a caret, the way compilers print it. */
function formatDiagnostic(d: Diagnostic): string {
  const head =
    d.line > 0 ? `${d.file}:${d.line}:${d.column}: error: ${d.text}` : `${d.file}: error: ${d.text}`;
  if (!d.lineText) return head;
  return `${head}\n  ${d.lineText}\n  ${' '.repeat(Math.max(0, d.column - 1))}^`;
}

function buildFailure(e: unknown): never {
  if (e instanceof BuildError && e.diagnostics.length > 0) {
    throw Object.assign(new Error(e.message), {
      details: e.diagnostics.map(formatDiagnostic).join('\n'),
      code: 'BUILD_ERROR',
    });
  }
  throw e;
}

/** Progress on stderr: one line per stage, and an elapsed-time ticker on a terminal while componentize runs. */
function progress(io: Io, enabled: boolean) {
  const t0 = performance.now();
  let ticker: NodeJS.Timeout | undefined;
  const tty = process.stderr.isTTY === true;
  const labels: Record<BuildStage | 'typecheck', string> = {
    typecheck: 'type-checking (tsc, skipped when unchanged)',
    bundle: 'bundling TypeScript (esbuild)',
    cached: 'component found in the build cache (inputs unchanged)',
    // The stage is called componentize for both toolchains (build.ts); only TypeScript drivers bundle first.
    componentize: 'building the WebAssembly component (componentize-js ~5-15 s, AssemblyScript ~3-7 s)',
    write: 'stamping the ABI and writing dist/',
  };
  return {
    onProgress(stage: BuildStage | 'typecheck') {
      if (!enabled) return;
      clearInterval(ticker);
      if (tty) process.stderr.write('\n');
      io.err(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${labels[stage]}`);
      if (stage === 'componentize' && tty) {
        ticker = setInterval(() => {
          process.stderr.write(`\r  … ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }, 250);
      }
    },
    done() {
      clearInterval(ticker);
      if (tty && ticker) process.stderr.write('\n');
    },
  };
}

async function publisherFrom(args: Args): Promise<string | undefined> {
  const keyFile = str(args, 'key');
  if (keyFile) {
    const { readPublicKeyFile, readSecretKeyFile } = await import('@cam-os/host/trust/keys.js');
    const raw = JSON.parse(await readFile(keyFile, 'utf8')) as { format?: string };
    return raw.format?.includes('secret')
      ? (await readSecretKeyFile(keyFile)).keyId
      : (await readPublicKeyFile(keyFile)).keyId;
  }
  const p = str(args, 'publisher');
  if (p !== undefined && !/^[0-9a-f]{32}$/.test(p))
    throw new UsageError('--publisher must be a key id (32 hex digits)');
  return p;
}

async function build(
  p: DriverProject,
  io: Io,
  json: boolean,
  publisher?: string,
  checkTypes = true,
): Promise<BuildResult> {
  const bar = progress(io, !json);
  try {
    if (checkTypes) {
      bar.onProgress('typecheck');
      await typecheck(p.dir, join(p.distDir, '.cache'));
    }
    return await buildComponent({
      entry: p.entry,
      world: p.world,
      witVersion: p.witVersion,
      outDir: p.distDir,
      cacheDir: join(p.distDir, '.cache'),
      name: p.name,
      onProgress: bar.onProgress,
      ...(publisher && {
        manifest: {
          name: p.name,
          version: p.version,
          publisher,
          memoryMaxPages: p.memoryMaxPages,
          deadlineMs: p.deadlineMs,
          concurrency: p.concurrency,
        },
      }),
    });
  } catch (e) {
    buildFailure(e);
  } finally {
    bar.done();
  }
}

const driverNew: Command = {
  name: 'driver new',
  summary: 'scaffold a driver that builds and tests on the first try',
  usage: `driver new <name|path> [--template ${TEMPLATES.map((t) => t.name).join('|')}]`,
  details: `Templates:\n${TEMPLATES.map((t) => `  ${t.name.padEnd(10)} ${t.summary} (world ${t.world})`).join('\n')}`,
  options: { template: { type: 'string', short: 't', help: 'template (default plain)' } },
  async run(args, io) {
    const [target] = args.positionals;
    if (!target) throw new UsageError('missing <name>');
    const { scaffold } = await import('../driver/scaffold.js');
    const r = await scaffold(target, str(args, 'template') ?? 'plain');
    if (args.json) io.out(JSON.stringify({ ok: true, ...r }));
    else {
      const rel = relative(process.cwd(), r.dir) || '.';
      io.out(`created ${rel} from template ${r.template} (world cam:kernel/${r.world}):`);
      for (const f of r.files) io.out(`  ${f}`);
      io.out(`\nnext: cam-os driver build ${rel} && cam-os driver test ${rel}`);
    }
    return 0;
  },
};

const driverBuild: Command = {
  name: 'driver build',
  summary: 'TypeScript -> bundled JS -> WebAssembly component (cached by the inputs’ digest)',
  usage: 'driver build [dir] [--key <key.json> | --publisher <key id>] [--dev]',
  details:
    'Type-checks the folder (tsc, when it has a tsconfig.json), then writes dist/<name>.wasm, stamped with the WIT\n' +
    'version it was built against. With --key or --publisher an\n' +
    'unsigned dist/manifest.json is written too (`driver sign` signs it). Bundling errors point at the source\n' +
    'line. --dev builds only the development artifact (what `driver dev` runs), in milliseconds.',
  options: {
    key: {
      type: 'string',
      help: 'publisher key file (secret or public) whose key id goes into the manifest',
    },
    publisher: { type: 'string', help: 'publisher key id for the manifest' },
    dev: { type: 'boolean', help: 'build the development artifact instead of the component' },
    'skip-typecheck': {
      type: 'boolean',
      help: 'do not run tsc on the folder (esbuild alone does not check types)',
    },
  },
  async run(args, io) {
    const p = project(args);
    const t0 = performance.now();
    if (args.values.dev === true) {
      const a = await buildDev({
        entry: p.entry,
        world: p.world,
        witVersion: p.witVersion,
        outDir: join(p.distDir, 'dev'),
        name: p.name,
      }).catch(buildFailure);
      const ms = Math.round(performance.now() - t0);
      io.out(
        args.json
          ? JSON.stringify({ ok: true, dev: true, path: a.jsPath, digest: a.digest, imports: a.imports, ms })
          : `dev artifact ${a.jsPath} (${a.digest}) in ${ms} ms`,
      );
      return 0;
    }
    const r = await build(
      p,
      io,
      args.json,
      await publisherFrom(args),
      args.values['skip-typecheck'] !== true,
    );
    const ms = Math.round(performance.now() - t0);
    if (args.json) io.out(JSON.stringify({ ok: true, ...r, ms }));
    else {
      io.out(
        `built ${relative(process.cwd(), r.wasmPath)} ${(r.size / 2 ** 20).toFixed(1)} MiB ${r.cached ? '(cached) ' : ''}in ${ms} ms`,
      );
      io.out(`  digest ${r.digest}  abi cam:kernel@${r.witVersion}`);
      io.out(`  imports ${r.imports.join(', ') || '-'}`);
      if (r.manifestPath)
        io.out(
          `  manifest ${relative(process.cwd(), r.manifestPath)} (unsigned: run \`cam-os driver sign\`)`,
        );
    }
    return 0;
  },
};

/** A vitest config for a driver folder: its tests, with `@cam-os/sdk` resolved to this SDK wherever the folder is. */
async function vitestConfig(p: DriverProject): Promise<string> {
  const file = join(p.distDir, 'vitest.config.mjs');
  const config = `// generated by cam-os driver test
export default {
  root: ${JSON.stringify(p.dir)},
  resolve: { alias: [{ find: /^@cam-os\\/sdk$/, replacement: ${JSON.stringify(join(SDK_DIST, 'index.js'))} }] },
  test: { include: ['test/**/*.test.ts'], testTimeout: 120000, hookTimeout: 180000, pool: 'forks', fileParallelism: false },
};
`;
  await mkdir(p.distDir, { recursive: true });
  await writeFile(file, config);
  return file;
}

interface ModeResult {
  mode: 'component' | 'dev';
  ok: boolean;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
}

async function runTests(
  p: DriverProject,
  mode: 'component' | 'dev',
  io: Io,
  json: boolean,
): Promise<ModeResult> {
  const config = await vitestConfig(p);
  const report = join(p.distDir, `vitest-${mode}.json`);
  await rm(report, { force: true });
  // vitest's exports map hides its CLI entry; it sits beside package.json.
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const t0 = performance.now();
  const code = await new Promise<number>((done, fail) => {
    const child = spawn(
      process.execPath,
      [
        vitest,
        'run',
        '--config',
        config,
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${report}`,
      ],
      {
        cwd: p.dir,
        env: { ...process.env, CAM_OS_DRIVER_MODE: mode, FORCE_COLOR: json ? '0' : process.env.FORCE_COLOR },
        stdio: ['ignore', json ? 'pipe' : 'inherit', json ? 'pipe' : 'inherit'],
      },
    );
    child.stdout?.on('data', (d: Buffer) => io.err(d.toString().trimEnd()));
    child.stderr?.on('data', (d: Buffer) => io.err(d.toString().trimEnd()));
    child.on('error', fail);
    child.on('exit', (c) => done(c ?? 1));
  });
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    const j = JSON.parse(await readFile(report, 'utf8')) as Record<string, number>;
    passed = j.numPassedTests ?? 0;
    failed = j.numFailedTests ?? 0;
    skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  } catch {
    failed = Math.max(failed, 1);
  }
  return {
    mode,
    ok: code === 0 && failed === 0 && passed > 0,
    passed,
    failed,
    skipped,
    ms: Math.round(performance.now() - t0),
  };
}

const driverTest: Command = {
  name: 'driver test',
  summary: 'run the driver’s tests against an in-process kernel: as a component and on the dev path',
  usage: 'driver test [dir] [--mode component|dev|both]',
  details:
    'Runs test/**/*.test.ts (vitest) once per mode; `startDriver()` from @cam-os/sdk builds the driver for the\n' +
    'mode and loads it into a real kernel (real host interfaces over an embedded store, real WIT typing at the\n' +
    'boundary). Both modes passing the same tests is what makes the fast dev path trustworthy. A test run with\n' +
    'no passing test fails.',
  options: { mode: { type: 'string', help: 'component, dev or both (default both)' } },
  async run(args, io) {
    const p = project(args);
    const m = str(args, 'mode') ?? 'both';
    if (!['component', 'dev', 'both'].includes(m))
      throw new UsageError(`--mode must be component, dev or both, not '${m}'`);
    const modes: Array<'component' | 'dev'> =
      m === 'both' ? ['component', 'dev'] : [m as 'component' | 'dev'];
    const results: ModeResult[] = [];
    for (const mode of modes) {
      if (!args.json)
        io.err(`\n== ${p.name}: tests as ${mode === 'dev' ? 'the dev path' : 'a component'} ==`);
      results.push(await runTests(p, mode, io, args.json));
    }
    const ok = results.every((r) => r.ok);
    if (args.json) io.out(JSON.stringify({ ok, results }));
    else
      for (const r of results)
        io.out(
          `${r.mode.padEnd(9)} ${r.ok ? 'PASS' : 'FAIL'}  ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped (${r.ms} ms)`,
        );
    if (!ok && args.json) return 1;
    if (!ok)
      throw new Error(
        `tests failed in ${results
          .filter((r) => !r.ok)
          .map((r) => r.mode)
          .join(' and ')} mode`,
      );
    return 0;
  },
};

const driverSign: Command = {
  name: 'driver sign',
  summary: 'build (cached) and sign dist/manifest.json with a publisher key (ML-DSA-65 + Ed25519)',
  usage: 'driver sign [dir] --key <secret.json> [--trust]',
  details:
    'The manifest pins the component’s digest and size and lists its imports and limits. --trust also adds the\n' +
    'public half of the key to the local trust store (<data-dir>/trust), so `cam-os up` on this machine accepts\n' +
    'the driver. Create a key with `cam-os keys generate --out <secret.json>`.',
  options: {
    key: { type: 'string', short: 'k', help: 'secret publisher key file' },
    trust: { type: 'boolean', help: 'trust the key in the local trust store' },
  },
  async run(args, io) {
    const p = project(args);
    const keyFile = str(args, 'key');
    if (!keyFile) throw new UsageError('missing --key <secret.json>');
    const { exportPublicKey, importPublicKey, readSecretKeyFile } = await import(
      '@cam-os/host/trust/keys.js'
    );
    const { parseManifest } = await import('@cam-os/host/trust/manifest.js');
    const { signAndAttach } = await import('@cam-os/host/trust/sign.js');
    const pair = await readSecretKeyFile(keyFile);
    const r = await build(p, io, args.json, pair.keyId);
    const manifestPath = r.manifestPath!;
    const { signatures: _s, ...body } = parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')));
    const signed = await signAndAttach(body, pair);
    await writeFile(manifestPath, `${JSON.stringify(signed, null, 2)}\n`);
    let trusted = false;
    if (args.values.trust === true) {
      const { TrustStore } = await import('@cam-os/host/trust/trust-store.js');
      const { defaultDataDir, loadConfig } = await import('@cam-os/host/server/config.js');
      const store = await TrustStore.open(
        join(str(args, 'data-dir') ?? loadConfig({}).dataDir ?? defaultDataDir(), 'trust'),
      );
      if (!store.list().some((k) => k.keyId === pair.keyId)) {
        await store.add(importPublicKey(exportPublicKey(pair), keyFile), {
          label: `driver author (${p.name})`,
        });
      }
      trusted = true;
    }
    if (args.json)
      io.out(
        JSON.stringify({
          ok: true,
          wasmPath: r.wasmPath,
          manifestPath,
          keyId: pair.keyId,
          digest: r.digest,
          trusted,
        }),
      );
    else {
      io.out(
        `signed ${relative(process.cwd(), manifestPath)} by ${pair.keyId} (${p.name}@${p.version}, ${r.digest})`,
      );
      if (trusted) io.out(`key ${pair.keyId} is in the local trust store`);
      io.out(
        `load it: cam-os load ${relative(process.cwd(), r.wasmPath)} --manifest ${relative(process.cwd(), manifestPath)}`,
      );
    }
    return 0;
  },
};

const driverDev: Command = {
  name: 'driver dev',
  summary: 'watch mode: every save is rebuilt and hot-swapped into a running kernel, state kept',
  usage: 'driver dev [dir] [--listen <host:port>] [--test]',
  details:
    'Starts a development kernel (gRPC on --listen, default 127.0.0.1:50151; data in dist/dev-kernel) with the\n' +
    'driver loaded on the dev path, then watches the folder. A save is bundled (esbuild) and swapped in through\n' +
    'the kernel’s hot-swap (export-state -> import-state) in well under a second; a build error or a refused swap\n' +
    'is shown and the last good version keeps running. --test runs `driver test --mode dev` after each swap.\n' +
    'Inspect it with `cam-os status --address <listen>`. Ctrl-C stops it.',
  options: {
    listen: { type: 'string', help: 'gRPC address of the dev kernel (default 127.0.0.1:50151)' },
    test: { type: 'boolean', help: 'run the tests on the dev path after each swap' },
  },
  async run(args, io) {
    const p = project(args);
    const { boot } = await import('@cam-os/host/server/boot.js');
    const { loadConfig } = await import('@cam-os/host/server/config.js');
    const { DevSession } = await import('../driver/dev-session.js');
    const listen = str(args, 'listen') ?? '127.0.0.1:50151';
    const config = loadConfig({ dataDir: join(p.distDir, 'dev-kernel'), listen, devMode: true });
    const k = await boot(config, { systemComponents: false, log: (line) => io.err(`log ${line}`) });
    const say = (o: Record<string, unknown>, text: string) => io.out(args.json ? JSON.stringify(o) : text);
    let testing = false;
    let typing = false;
    const session = new DevSession(p, k.kernel, (e) => {
      if (e.kind === 'loaded') say(e, `loaded ${p.name} (dev path) in ${e.ms.toFixed(0)} ms`);
      else if (e.kind === 'swapped') {
        say(
          {
            kind: e.kind,
            trigger: e.trigger,
            digest: e.digest,
            ms: e.ms,
            buildMs: e.buildMs,
            pausedMs: e.record.pausedMs,
          },
          `${e.trigger}: swapped in ${e.ms.toFixed(0)} ms (build ${e.buildMs.toFixed(0)} ms, calls held ${e.record.pausedMs ?? 0} ms, state kept)`,
        );
        if (!typing) {
          // Types are checked after the swap, off the save-to-running path: esbuild does not check them.
          typing = true;
          typecheck(p.dir, join(p.distDir, '.cache'))
            .catch((err: unknown) =>
              say(
                { kind: 'type-errors', message: (err as Error).message },
                `${(err as Error).message}\n(the new version is running; \`driver build\` refuses it until these are fixed)`,
              ),
            )
            .finally(() => {
              typing = false;
            });
        }
        if (args.values.test === true && !testing) {
          testing = true;
          runTests(p, 'dev', io, args.json)
            .then((r) =>
              say(
                { kind: 'test', ...r },
                `tests (dev path): ${r.ok ? 'PASS' : 'FAIL'} ${r.passed} passed, ${r.failed} failed`,
              ),
            )
            .finally(() => {
              testing = false;
            });
        }
      } else if (e.kind === 'unchanged') say(e, `${e.trigger}: no change in the bundle`);
      else
        say(
          e,
          `${e.trigger}: ${e.kind === 'build-error' ? 'BUILD ERROR' : 'SWAP REFUSED'} — the last good version keeps running\n${e.message}`,
        );
    });
    try {
      await session.start();
    } catch (e) {
      await k.stop();
      buildFailure(e);
    }
    session.watch();
    say(
      { kind: 'ready', address: k.address, dir: p.dir },
      `dev kernel on ${k.address}; watching ${resolve(p.dir)} (Ctrl-C to stop)`,
    );
    const stop = () => {
      void session
        .stop()
        .then(() => k.stop())
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return -1;
  },
};

const driverTypes: Command = {
  name: 'driver types',
  summary: 'regenerate src/wit.d.ts from the kernel’s WIT for the driver’s world',
  usage: 'driver types [dir]',
  async run(args, io) {
    const p = project(args);
    const file = join(p.dir, 'src', 'wit.d.ts');
    const { guestTypes } = await import('../wit/guest-types.js');
    await writeFile(file, await guestTypes(p.world, p.witVersion));
    io.out(
      args.json
        ? JSON.stringify({ ok: true, file })
        : `wrote ${relative(process.cwd(), file)} (world ${p.world})`,
    );
    return 0;
  },
};

export const DRIVER_COMMANDS: Command[] = [
  driverNew,
  driverBuild,
  driverTest,
  driverSign,
  driverDev,
  driverTypes,
];
