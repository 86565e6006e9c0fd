#!/usr/bin/env node
/**
 * `cam-os`: run and operate a CAM-OS kernel. Every command takes --help and --json; errors go to stderr
 * as one line (or a JSON object with --json) and set a non-zero exit code.
 */
import { parseArgs } from 'node:util';
import { COMMANDS, type Command, type Io, UsageError } from './commands.js';

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'cam-os — the CAM-OS kernel and its tools',
    '',
    'Usage: cam-os <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options:',
    '  --json              machine-readable output',
    '  --data-dir <dir>    kernel state directory (default: $CAM_OS_DATA_DIR or ~/.local/share/cam-os)',
    '  --address <h:p>     talk to the kernel at this address instead of the one in <data-dir>/kernel.json',
    '  -h, --help          help for a command: cam-os <command> --help',
  ].join('\n');
}

function commandHelp(c: Command): string {
  const opts = Object.entries(c.options ?? {}).map(
    ([k, v]) => `  --${k}${v.type === 'string' ? ' <value>' : ''}  ${v.help}`,
  );
  return [
    `cam-os ${c.name} — ${c.summary}`,
    '',
    `Usage: cam-os ${c.usage}`,
    ...(c.details ? ['', c.details] : []),
    '',
    'Options:',
    ...opts,
    '  --json  machine-readable output',
    '  --data-dir <dir>  kernel state directory',
    '  --address <host:port>  kernel address (instead of <data-dir>/kernel.json)',
  ].join('\n');
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    const target = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.out(target ? commandHelp(target) : usage());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`cam-os: unknown command '${name}'. Run \`cam-os --help\` for the list of commands.`);
    return 2;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        'data-dir': { type: 'string' },
        address: { type: 'string' },
        ...Object.fromEntries(
          Object.entries(command.options ?? {}).map(([k, v]) => [
            k,
            {
              type: v.type,
              ...(v.short ? { short: v.short } : {}),
              ...(v.multiple ? { multiple: true } : {}),
            },
          ]),
        ),
      },
    });
  } catch (e) {
    io.err(`cam-os ${name}: ${(e as Error).message}. Run \`cam-os ${name} --help\`.`);
    return 2;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    io.out(commandHelp(command));
    return 0;
  }
  const json = values.json === true;
  try {
    return await command.run({ positionals: parsed.positionals, values, json }, io);
  } catch (e) {
    const err = e as Error & { code?: unknown; details?: string };
    const message =
      err instanceof UsageError
        ? `${err.message}. Run \`cam-os ${name} --help\`.`
        : err.details || err.message;
    if (json) io.out(JSON.stringify({ ok: false, error: message, code: err.code ?? err.name }));
    else io.err(`cam-os ${name}: ${message}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

const io: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

main(process.argv.slice(2), io).then(
  (code) => {
    // `up` keeps the process alive itself; every other command ends here.
    if (code !== -1) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`cam-os: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
