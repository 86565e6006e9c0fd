/**
 * Policy, audit and "why" commands: ask, audit, policy.
 *
 * `ask` and `audit` read the kernel's audit log file (<data-dir>/audit/audit.jsonl) directly, so they
 * work with the kernel running or not, and `audit verify` checks the file a kernel cannot vouch for
 * itself. `policy list|show` read the stored policy versions (<data-dir>/policies); `policy update`
 * sends PolicyUpdate to the running kernel.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ask, EntriesLog } from '@cam-os/host/audit/ask.js';
import { explain } from '@cam-os/host/audit/explain.js';
import { AUDIT_FILE, verifyAuditFile } from '@cam-os/host/audit/log.js';
import {
  type AuditEntry,
  DECISION_KINDS,
  type DecisionKind,
  EXPLAIN_LEVELS,
  type ExplainLevel,
} from '@cam-os/host/audit/types.js';
import { DEFAULT_RULES, POLICY_ID_RE, type PolicyVersionInfo } from '@cam-os/host/policy/engine.js';
import { defaultDataDir } from '@cam-os/host/server/config.js';
import { resolveAddress } from '../admin-client.js';
import { SyscallClient } from '../client/syscall-client.js';
import { type Args, type Command, str, UsageError } from './shared.js';

function dataDir(args: Args): string {
  return str(args, 'data-dir') ?? defaultDataDir();
}

function auditFile(args: Args): string {
  const f = str(args, 'file') ?? join(dataDir(args), 'audit', AUDIT_FILE);
  if (!existsSync(f)) {
    throw new Error(
      `no audit log at ${f} (a kernel writes it under <data-dir>/audit; pass --data-dir or --file)`,
    );
  }
  return f;
}

/** Entries of an audit file, oldest first (checkpoint lines skipped; unreadable lines are an error). */
export function readAuditEntries(file: string): AuditEntry[] {
  const out: AuditEntry[] = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new Error(`${file}: line ${i + 1} is not JSON (run \`cam-os audit verify\`)`);
    }
    if (v && typeof v === 'object' && !('checkpoint' in v)) out.push(v as AuditEntry);
  });
  return out;
}

function nowOf(args: Args): number {
  const n = str(args, 'now');
  if (n === undefined) return Date.now();
  const t = Date.parse(n);
  if (!Number.isFinite(t)) throw new UsageError(`--now '${n}' is not an ISO 8601 time`);
  return t;
}

const askCmd: Command = {
  name: 'ask',
  summary:
    'answer a question about the kernel\'s decisions from the audit log ("why was agent-b throttled last night?")',
  usage: 'ask "<question>" [--now <iso-time>] [--file <audit.jsonl>]',
  details:
    'A deterministic reader, no model: it looks for the shape of the question (why, who/which, how many, when,\n' +
    'was/did, what/list), decision words (throttled, denied, refused, chosen, assigned, scheduled, restarted,\n' +
    'swapped, rolled back, installed, loaded), names found in the log (agents, components, task ids, syscalls)\n' +
    'and a time (last night = 18:00-06:00 UTC, yesterday, today, this morning, in the last 2 hours, since 14:00,\n' +
    'between 22:00 and 23:00, on 2026-11-21). Every answer cites the audit entries it used. A question with no\n' +
    'decision word and no known name is not understood: the answer says so and the exit code is 2.',
  options: {
    now: { type: 'string', help: 'answer as if it were this time (ISO 8601; default: now)' },
    file: { type: 'string', help: 'audit log file (default: <data-dir>/audit/audit.jsonl)' },
  },
  async run(args, io) {
    const question = args.positionals.join(' ').trim();
    if (!question) throw new UsageError('missing "<question>"');
    const r = ask(question, readAuditEntries(auditFile(args)), { now: nowOf(args) });
    if (args.json) {
      io.out(
        JSON.stringify({
          understood: r.understood,
          intent: r.intent,
          kinds: r.kinds,
          names: r.names,
          syscalls: r.syscalls,
          since: r.since === undefined ? null : new Date(r.since).toISOString(),
          until: r.until === undefined ? null : new Date(r.until).toISOString(),
          entries: r.entries.map((e) => e.seq),
          answer: r.answer,
        }),
      );
    } else io.out(r.answer);
    return r.understood ? 0 : 2;
  },
};

const auditCmd: Command = {
  name: 'audit',
  summary: 'the tamper-evident audit log: verify the hash chain and signed checkpoints, show entries',
  usage:
    'audit verify [--file <audit.jsonl>] | audit show [<seq>] [--level brief|detailed|technical|audit] [--kind <kind>] [--limit <n>]',
  details:
    'verify recomputes every entry hash, checks each entry links to the one before, and checks every checkpoint\n' +
    '(the chain head signed with the kernel audit key, ML-DSA-65 + Ed25519, and with the TPM where present)\n' +
    'against <dir>/audit-key.pub.json. A modified, removed or reordered entry fails verification (exit 1) with\n' +
    'the first bad entry named. Entries after the last checkpoint are chained but not yet signed (reported).\n' +
    'show lists the newest entries (default 20), or explains one entry at the level asked.',
  options: {
    file: { type: 'string', help: 'audit log file (default: <data-dir>/audit/audit.jsonl)' },
    level: { type: 'string', help: `explanation level for show <seq>: ${EXPLAIN_LEVELS.join(', ')}` },
    kind: { type: 'string', help: `only entries of this kind (${DECISION_KINDS.join(', ')})` },
    limit: { type: 'string', help: 'how many entries show lists (default 20)' },
  },
  async run(args, io) {
    const [sub, arg] = args.positionals;
    if (sub === 'verify') {
      const file = auditFile(args);
      const r = await verifyAuditFile(file);
      if (args.json) io.out(JSON.stringify({ file, ...r }));
      else if (r.ok) {
        io.out(
          `audit log OK: ${r.entries} entries, ${r.checkpoints} signed checkpoints${r.tpmSigned ? ` (${r.tpmSigned} TPM signatures)` : ''}; ${r.unsignedTail} entries after the last checkpoint`,
        );
      } else io.out(`audit log TAMPERED OR DAMAGED at entry ${r.firstBad}: ${r.reason}`);
      return r.ok ? 0 : 1;
    }
    if (sub === 'show') {
      const entries = readAuditEntries(auditFile(args));
      const log = new EntriesLog(entries);
      if (arg !== undefined) {
        if (!/^\d+$/.test(arg)) throw new UsageError(`'${arg}' is not an entry number`);
        const e = log.get(Number(arg));
        if (!e) throw new Error(`no audit entry ${arg} in the log`);
        const level = (str(args, 'level') ?? 'detailed') as ExplainLevel;
        if (!EXPLAIN_LEVELS.includes(level))
          throw new UsageError(`--level must be one of ${EXPLAIN_LEVELS.join(', ')}`);
        io.out(
          args.json
            ? JSON.stringify({ entry: e, explanation: explain(e, level, log) })
            : explain(e, level, log),
        );
        return 0;
      }
      const kind = str(args, 'kind');
      if (kind !== undefined && !DECISION_KINDS.includes(kind as DecisionKind)) {
        throw new UsageError(`--kind must be one of ${DECISION_KINDS.join(', ')}`);
      }
      const limitText = str(args, 'limit') ?? '20';
      if (!/^\d{1,6}$/.test(limitText)) throw new UsageError('--limit must be a number');
      const list = log.recent(Number(limitText), kind ? { kind: kind as DecisionKind } : {});
      if (args.json) io.out(JSON.stringify(list));
      else
        io.out(
          list.length
            ? list
                .map(
                  (e) =>
                    `#${e.seq} ${new Date(e.ts).toISOString()} ${e.kind} ${e.actor}${e.subject ? ` -> ${e.subject}` : ''}: ${e.outcome} (${e.cause})`,
                )
                .join('\n')
            : 'no entries',
        );
      return 0;
    }
    throw new UsageError('usage: audit verify | audit show [<seq>]');
  },
};

function storedVersions(dir: string, id: string): PolicyVersionInfo[] {
  const d = join(dir, id);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => /^v\d+\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(d, f), 'utf8')) as PolicyVersionInfo)
    .sort((a, b) => a.version - b.version);
}

const policyCmd: Command = {
  name: 'policy',
  summary: 'authorization and query policies (OPA wasm): list, show, update',
  usage:
    'policy list | policy show <id> [--version <n>] | policy update <id> <bundle.tar.gz|policy.wasm|data.json>',
  details:
    "Every syscall is authorized through the policy 'authz'; until one is installed the built-in default answers\n" +
    '(docs/policy.md lists its rules). update sends PolicyUpdate to the running kernel: an OPA bundle (tar.gz with\n' +
    'policy.wasm and optional data.json), a bare policy.wasm, or a JSON data document (new rules for the current\n' +
    'module). Each update is a new version; earlier versions stay stored. A malformed policy is refused and\n' +
    'nothing changes. list and show read the versions stored under <data-dir>/policies.',
  options: {
    version: { type: 'string', help: 'show this version (default: the newest)' },
    token: { type: 'string', help: 'bearer token (authenticated kernels; needs group:admin)' },
  },
  async run(args, io) {
    const [sub, id, file] = args.positionals;
    const dir = join(dataDir(args), 'policies');
    if (sub === 'list') {
      const ids = existsSync(dir)
        ? readdirSync(dir)
            .filter((d) => POLICY_ID_RE.test(d))
            .sort()
        : [];
      const rows = ids.map((p) => {
        const v = storedVersions(dir, p);
        const last = v[v.length - 1];
        return {
          id: p,
          versions: v.length,
          current: last?.version ?? 0,
          digest: last?.digest ?? '',
          encoding: last?.encoding ?? '',
        };
      });
      const builtin = !rows.some((r) => r.id === 'authz');
      if (args.json) io.out(JSON.stringify({ builtinAuthz: builtin, policies: rows }));
      else {
        const lines = rows.map(
          (r) => `${r.id}  v${r.current} (${r.versions} stored)  ${r.encoding}  ${r.digest.slice(0, 19)}`,
        );
        if (builtin) lines.unshift('authz  v1 built-in default (no authz policy installed)');
        io.out(lines.join('\n') || 'no policies');
      }
      return 0;
    }
    if (sub === 'show') {
      if (!id) throw new UsageError('usage: policy show <id> [--version <n>]');
      const versions = storedVersions(dir, id);
      const want = str(args, 'version');
      if (versions.length === 0 && id === 'authz') {
        const info = { id: 'authz', version: 1, source: 'built-in', data: { rules: DEFAULT_RULES } };
        io.out(
          args.json
            ? JSON.stringify(info)
            : `authz v1 (built-in)\n${DEFAULT_RULES.map((r, i) => `  ${i}: ${r.slice(0, 6).join(' ')} — ${r[6]}`).join('\n')}`,
        );
        return 0;
      }
      const v = want ? versions.find((x) => x.version === Number(want)) : versions[versions.length - 1];
      if (!v)
        throw new Error(`policy '${id}' has no ${want ? `version ${want}` : 'stored version'} in ${dir}`);
      io.out(
        args.json
          ? JSON.stringify(v)
          : `${v.id} v${v.version} (${v.encoding}, ${v.wasmBytes} bytes of wasm, ${v.digest}, ${new Date(v.createdAt).toISOString()})\nentrypoints: ${v.entrypoints.join(', ')}\ndata: ${JSON.stringify(v.data)}`,
      );
      return 0;
    }
    if (sub === 'update') {
      if (!id || !file) throw new UsageError('usage: policy update <id> <file>');
      const bytes = await readFile(file);
      const address = resolveAddress({ address: str(args, 'address'), dataDir: str(args, 'data-dir') });
      const token = str(args, 'token') ?? process.env.CAM_OS_TOKEN;
      const c = new SyscallClient({ address, ...(token ? { token } : {}) });
      try {
        const r = await c.call('PolicyUpdate', { policy_id: id, policy_data: bytes, metadata: { file } });
        io.out(args.json ? JSON.stringify(r) : `policy '${r.policy_id}' is now version ${r.version}`);
      } finally {
        c.close();
      }
      return 0;
    }
    throw new UsageError('usage: policy list | policy show <id> | policy update <id> <file>');
  },
};

export const POLICY_COMMANDS: Command[] = [askCmd, auditCmd, policyCmd];
