#!/usr/bin/env node
// One command for every benchmark: `npm run bench` (or `node bench/run.mjs [suite...]`; `--render` only
// rewrites bench/RESULTS.md from bench/results/*.json, after its notes were edited).
// Each bench/<suite>.bench.ts exports `run(): Promise<BenchResult[]>`; this runner compiles them with
// esbuild (imports of host/src and sdk/src are redirected to the compiled dist so workers resolve), runs
// them one after another in this process, prints a table and rewrites bench/RESULTS.md, keeping the
// hand-written notes above the generated section.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const outDir = join(here, '.out');
mkdirSync(outDir, { recursive: true });

const renderOnly = process.argv[2] === '--render';
const wanted = process.argv.slice(2);
const suites = renderOnly
  ? []
  : readdirSync(here)
      .filter((f) => f.endsWith('.bench.ts'))
      .map((f) => f.replace(/\.bench\.ts$/, ''))
      .filter((s) => wanted.length === 0 || wanted.includes(s))
      .sort();
if (suites.length === 0 && !renderOnly) {
  console.error(`no benchmark suites match ${wanted.join(', ')}`);
  process.exit(2);
}

const toDist = {
  name: 'src-to-dist',
  setup(b) {
    b.onResolve({ filter: /\/(host|sdk)\/src\// }, (args) => {
      const abs = resolve(args.resolveDir, args.path);
      const js = abs.replace(/\/(host|sdk)\/src\//, '/$1/dist/').replace(/\.ts$/, '.js');
      return { path: js, external: true };
    });
  },
};

function machine() {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'} x${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/** A result against its baseline; three decimals where a target is judged on it (0.7994 is not 0.80). */
function ratio(r) {
  return (r.median / r.baseline.median).toFixed(r.target ? 3 : 2);
}

const all = [];
for (const suite of suites) {
  const file = join(outDir, `${suite}.mjs`);
  await build({
    entryPoints: [join(here, `${suite}.bench.ts`)],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    plugins: [toDist],
    logLevel: 'error',
  });
  process.stdout.write(`\n== ${suite}\n`);
  const t0 = Date.now();
  try {
    const mod = await import(pathToFileURL(file).href);
    const results = await mod.run();
    for (const r of results) {
      all.push(r);
      const base = r.baseline
        ? `  (baseline ${r.baseline.name}: ${r.baseline.median} ${r.unit}, ratio ${ratio(r)})`
        : '';
      const target = r.target ? `  target ${r.target}: ${r.met ? 'met' : 'NOT met'}` : '';
      console.log(
        `${r.name}: median ${r.median} ${r.unit}${r.p99 !== undefined ? `, p99 ${r.p99}` : ''}${base}${target}`,
      );
    }
  } catch (e) {
    console.error(`suite ${suite} failed: ${e?.stack ?? e}`);
    all.push({
      suite,
      name: 'suite failed',
      unit: '',
      median: Number.NaN,
      notes: String(e?.message ?? e).split('\n')[0],
    });
  }
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

// Each suite's latest run is kept in bench/results/<suite>.json, so running one suite does not drop the
// others from RESULTS.md; every section states its own date, commit and machine.
const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
let commit = 'uncommitted';
try {
  commit = execSync('git rev-parse --short HEAD', { cwd: root }).toString().trim();
} catch {}
for (const suite of suites) {
  const results = all.filter((r) => r.suite === suite || (r.name === 'suite failed' && r.suite === suite));
  writeFileSync(
    join(resultsDir, `${suite}.json`),
    `${JSON.stringify({ suite, date: new Date().toISOString(), commit, machine: machine(), results }, null, 2)}\n`,
  );
}
const resultsPath = join(here, 'RESULTS.md');
const MARK = '<!-- generated below by bench/run.mjs -->';
const head = existsSync(resultsPath)
  ? readFileSync(resultsPath, 'utf8').split(MARK)[0]
  : '# Benchmark results\n\n';
const fmt = (n) => (n === undefined || Number.isNaN(n) ? '' : String(n));
const sections = readdirSync(resultsDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')))
  .map((run) =>
    [
      `## ${run.suite}`,
      '',
      `Run ${run.date} — commit ${run.commit} — ${run.machine}`,
      '',
      '| benchmark | median | p99 | unit | baseline (same run) | ratio | target | notes |',
      '|---|---|---|---|---|---|---|---|',
      ...run.results.map(
        (r) =>
          `| ${r.name} | ${fmt(r.median)} | ${fmt(r.p99)} | ${r.unit} | ${r.baseline ? `${r.baseline.name}: ${r.baseline.median}` : ''} | ${r.baseline ? ratio(r) : ''} | ${r.target ? `${r.target} — ${r.met ? 'met' : '**not met**'}` : ''} | ${r.notes ?? ''} |`,
      ),
      '',
    ].join('\n'),
  );
writeFileSync(resultsPath, `${head.trimEnd()}\n\n${MARK}\n\n${sections.join('\n')}`);
console.log(`\nwrote ${resultsPath}`);
process.exit(0);
