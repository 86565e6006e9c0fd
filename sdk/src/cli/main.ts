#!/usr/bin/env node
/**
 * `cam-os`: run and operate a CAM-OS kernel. Every command takes --help and --json; errors go to stderr
 * as one line (or a JSON object with --json) and set a non-zero exit code.
 */
import { parseArgs } from 'node:util';
import type { Command, Io } from './shared.js';
import { UsageError } from './usage.js';

/**
 * The command table, loaded for what is asked: `cam-os driver …` runs in an author's save loop and loads
 * only its own commands; everything else loads the full table (kernel, gRPC, storage).
 */
let COMMANDS: Command[] = [];
async function loadCommands(first: string | undefined): Promise<Command[]> {
  if (first === 'driver') return (await import('./commands-driver.js')).DRIVER_COMMANDS;
  return (await import('./commands.js')).COMMANDS;
}

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

/** Commands with a subcommand word (`driver new`): `cam-os driver` alone lists them. */
function groupHelp(group: string): string | undefined {
  const members = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  if (members.length === 0) return undefined;
  const width = Math.max(...members.map((c) => c.name.length));
  return [
    `Usage: cam-os ${group} <subcommand> [options]`,
    '',
    ...members.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Help for one: cam-os ${members[0]!.name} --help`,
  ].join('\n');
}

export async function main(argv: string[], io: Io): Promise<number> {
  COMMANDS = await loadCommands(argv[0]);
  const [first, ...afterFirst] = argv;
  // Two-word commands (`driver build`) are matched before one-word ones.
  const twoWord = first && afterFirst[0] ? `${first} ${afterFirst[0]}` : undefined;
  const isTwo = twoWord !== undefined && COMMANDS.some((c) => c.name === twoWord);
  const name = isTwo ? twoWord : first;
  const rest = isTwo ? afterFirst.slice(1) : afterFirst;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    const wanted = rest.slice(0, 2).join(' ');
    const target =
      name === 'help' ? COMMANDS.find((c) => c.name === wanted || c.name === rest[0]) : undefined;
    const group = name === 'help' && !target && rest[0] ? groupHelp(rest[0]) : undefined;
    io.out(target ? commandHelp(target) : (group ?? usage()));
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const group = groupHelp(name);
    if (group) {
      const sub = rest[0];
      if (sub && sub !== '-h' && sub !== '--help') {
        io.err(`cam-os ${name}: unknown subcommand '${sub}'.\n${group}`);
        return 2;
      }
      io.out(group);
      return sub ? 0 : 2;
    }
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
