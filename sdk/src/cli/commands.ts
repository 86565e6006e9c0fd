/**
 * The CLI's commands, one table. Each command validates its arguments, talks to the kernel through the
 * admin client (or runs it, for `up`), and prints either text for people or JSON for scripts.
 */
import { readFile } from 'node:fs/promises';
import { boot } from '@cam-os/host/server/boot.js';
import { loadConfig } from '@cam-os/host/server/config.js';
import type { ComponentInfoMsg, StatusMsg } from '../admin-client.js';
import { DRIVER_COMMANDS } from './commands-driver.js';
import { FEDERATION_COMMANDS } from './commands-federation.js';
import { loadInstalledAtStart, MARKETPLACE_COMMANDS } from './commands-marketplace.js';
import { POLICY_COMMANDS } from './commands-policy.js';
import { TRUST_COMMANDS } from './commands-trust.js';
import { type Command, str, UsageError, withAdmin } from './shared.js';

export { type Args, type Command, type Io, UsageError } from './shared.js';

const up: Command = {
  name: 'up',
  summary: 'start a kernel on its embedded defaults (no external server needed)',
  usage: 'up [--data-dir <dir>] [--listen <host:port>]',
  details:
    'Runs in the foreground until Ctrl-C. State (transpile cache, context memory, keys) lives under the data dir.\n' +
    'The kernel listens on loopback by default; plaintext is refused on any other address.',
  options: {
    listen: { type: 'string', help: 'gRPC listen address (default 127.0.0.1:50051, or $CAM_OS_LISTEN)' },
  },
  async run(args, io) {
    const config = loadConfig({ dataDir: str(args, 'data-dir'), listen: str(args, 'listen') });
    const k = await boot(config);
    // Drivers installed from the marketplace come back with the kernel (verified again on the way in).
    const installed = await loadInstalledAtStart(config.dataDir, k);
    for (const f of installed?.failed ?? [])
      k.warnings.push(`installed driver ${f.name}@${f.version} was refused: ${f.error}`);
    if (args.json) {
      io.out(
        JSON.stringify({
          ok: true,
          address: k.address,
          dashboard: k.dashboard?.url ?? null,
          dataDir: config.dataDir,
          pid: process.pid,
          warnings: k.warnings,
        }),
      );
    } else {
      io.out(`CAM-OS kernel ${k.version} listening on ${k.address} (gRPC, ${k.authMode} mode)`);
      io.out(`data dir: ${config.dataDir}`);
      if (k.dashboard)
        io.out(
          `dashboard: ${k.dashboard.url} (${k.authMode === 'development' ? `operator token in ${k.dashboard.tokenFile}` : 'sign in with an admin token'})`,
        );
      for (const c of k.kernel.list())
        io.out(`component ${c.name}${c.version ? `@${c.version}` : ''}: ${c.status.health}`);
      for (const w of k.warnings) io.out(`warning: ${w}`);
      io.out('press Ctrl-C to stop');
    }
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      if (!args.json) io.out(`\n${signal}: stopping the kernel…`);
      k.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    return -1;
  },
};

function formatComponent(c: ComponentInfoMsg): string {
  const err = c.last_error ? `  last error (${c.last_error_kind}, ${c.last_error_at}): ${c.last_error}` : '';
  return [
    `${c.name}${c.version ? `@${c.version}` : ''}  ${c.health}  restarts=${c.restarts} calls=${c.calls} failed=${c.failed_calls} instances=${c.instances} queued=${c.queued}`,
    `  digest ${c.digest}${c.abi ? `  abi ${c.abi}` : ''}  memory cap ${c.memory_max_pages} pages  deadline ${c.deadline_ms} ms`,
    `  query replica: ${c.replica_state}${c.replica_reason ? ` (${c.replica_reason})` : ''}  answered=${c.replica_calls} sent to worker=${c.replica_fallbacks}${c.replica_last_fallback ? ` (last: ${c.replica_last_fallback})` : ''}`,
    `  exports: ${c.exports.join(', ') || '-'}`,
    `  imports: ${c.imports.join(', ') || '-'}`,
    ...(err ? [err] : []),
  ].join('\n');
}

function formatStatus(s: StatusMsg): string {
  const lines = [
    `CAM-OS kernel ${s.version}  pid ${s.pid}  listening on ${s.listen}  (${s.auth_mode} mode)`,
    `up since ${new Date(s.started_at_ms).toISOString()}  rss ${(s.rss_bytes / 1048576).toFixed(1)} MiB  data ${s.data_dir}`,
  ];
  lines.push(
    `tuning: ${s.unary_calls_per_turn === 0 ? 'unary calls unpaced' : `${s.unary_calls_per_turn} unary calls started per event-loop turn`}  trace sample ratio ${s.trace_sample_ratio}`,
  );
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  lines.push('', s.components.length ? 'components:' : 'components: none loaded');
  for (const c of s.components) lines.push(formatComponent(c));
  const missing = s.syscalls.filter((m) => !m.available);
  if (s.syscalls.length) {
    lines.push('', `syscalls: ${s.syscalls.length - missing.length}/${s.syscalls.length} available`);
    for (const m of s.syscalls.filter((x) => x.calls > 0)) {
      lines.push(`  ${m.name}: ${m.calls} calls, p50 ${m.p50_us} us, p99 ${m.p99_us} us`);
    }
    for (const m of missing) lines.push(`  unavailable ${m.name}: ${m.missing}`);
  }
  return lines.join('\n');
}

const status: Command = {
  name: 'status',
  summary: 'show the running kernel: components, versions, health, restarts, syscalls',
  usage: 'status [--json]',
  async run(args, io) {
    const s = await withAdmin(args, (c) => c.status());
    io.out(args.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    return 0;
  },
};

const load: Command = {
  name: 'load',
  summary: 'load a component into the running kernel',
  usage: 'load <component.wasm> --manifest <manifest.json>',
  details:
    'The manifest (schema cam-os/manifest@1) names the component, pins its digest and size, and lists the imports\n' +
    'it may use and its limits (memoryMaxPages, deadlineMs, concurrency). Nothing is loaded if any check fails.',
  options: { manifest: { type: 'string', short: 'm', help: 'path of the manifest JSON' } },
  async run(args, io) {
    const [file] = args.positionals;
    const manifestPath = str(args, 'manifest');
    if (!file) throw new UsageError('missing <component.wasm>');
    if (!manifestPath) throw new UsageError('missing --manifest <manifest.json>');
    const [bytes, manifest] = await Promise.all([readFile(file), readFile(manifestPath, 'utf8')]);
    const info = await withAdmin(args, (c) => c.load(bytes, manifest));
    io.out(
      args.json
        ? JSON.stringify(info, null, 2)
        : `loaded ${info.name}${info.version ? `@${info.version}` : ''}\n${formatComponent(info)}`,
    );
    return 0;
  },
};

const unload: Command = {
  name: 'unload',
  summary: 'stop and remove a component from the running kernel',
  usage: 'unload <name>',
  async run(args, io) {
    const [name] = args.positionals;
    if (!name) throw new UsageError('missing <name>');
    await withAdmin(args, (c) => c.unload(name));
    io.out(args.json ? JSON.stringify({ ok: true, unloaded: name }) : `unloaded ${name}`);
    return 0;
  },
};

export const COMMANDS: Command[] = [
  up,
  status,
  load,
  unload,
  ...TRUST_COMMANDS,
  ...MARKETPLACE_COMMANDS,
  ...DRIVER_COMMANDS,
  ...FEDERATION_COMMANDS,
  ...POLICY_COMMANDS,
];
