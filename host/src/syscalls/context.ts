/**
 * Context syscalls (ContextRead, ContextWrite, ContextSnapshot / SnapshotContext, ContextRestore,
 * ContextVersionList) -> the component exporting cam:kernel/memory. The kernel checks the caller's
 * namespace scope before anything reaches the component, and the caller becomes the author of writes.
 */
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { checkKey, checkNamespace, Fields, mapToObject, msToWireSeconds, type StringMap } from './codec.js';
import { requireNamespace, type SyscallEnv } from './env.js';

/** Reads only: the kernel may answer from the component's query replica. */
const QUERY = { query: true } as const;

/** WIT limit on context data. */
export const MAX_CONTEXT_DATA = 4 * 1024 * 1024;

interface ContextEntry {
  data: Uint8Array;
  version: bigint;
  hash: string;
  timestampMs: bigint;
  metadata: StringMap;
}

interface VersionInfo {
  version: bigint;
  timestampMs: bigint;
  author: string;
  description: string;
  hash: string;
  size: bigint;
  tags: StringMap;
}

export function contextSyscalls(env: SyscallEnv): SyscallDef<never, unknown>[] {
  const memory = env.backends.memory;
  const unavailable = () => memory.missing();

  const read: SyscallDef<{ ns: string; key: string; version: number }, unknown> = {
    name: 'ContextRead',
    group: 'context',
    summary: 'Read a context key at a version (0 = latest).',
    unavailable,
    validate(req) {
      const f = new Fields('ContextRead', req);
      return {
        ns: checkNamespace(f),
        key: checkKey(f),
        version: f.int('version', 0, Number.MAX_SAFE_INTEGER),
      };
    },
    // Not async: the hottest syscall makes one promise of its own (a refusal throws, which the dispatcher
    // turns into the call's error like a rejection).
    handle(r, ctx) {
      requireNamespace(env, ctx, 'ContextRead', r.ns);
      return memory
        .call('read', [r.ns, r.key, r.version === 0 ? undefined : BigInt(r.version)], ctx, QUERY)
        .then((v) => {
          const e = v as ContextEntry;
          return {
            // The entry's bytes are the component's fresh copy (lifted by the bindings or cloned from the
            // worker): wrapped, not copied again.
            data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength),
            version: Number(e.version),
            hash: e.hash,
            timestamp: msToWireSeconds(e.timestampMs),
            metadata: mapToObject(e.metadata),
            // No TPM proof: the kernel does not sign context versions yet. Right without a TPM (the WIT's
            // `none when no TPM`); with one, the kernel's status carries a warning that says so.
            integrity_proof: null,
          };
        });
    },
  };

  const write: SyscallDef<{ ns: string; key: string; data: Uint8Array; metadata: StringMap }, unknown> = {
    name: 'ContextWrite',
    group: 'context',
    summary: 'Write a new immutable version of a context key.',
    unavailable,
    validate(req) {
      const f = new Fields('ContextWrite', req);
      return {
        ns: checkNamespace(f),
        key: checkKey(f),
        data: f.bytes('data', MAX_CONTEXT_DATA, true),
        metadata: f.map('metadata', { maxEntries: 256 }),
      };
    },
    async handle(r, ctx) {
      requireNamespace(env, ctx, 'ContextWrite', r.ns);
      const receipt = (await memory.call('write', [r.ns, r.key, r.data, r.metadata, ctx.callerId], ctx)) as {
        version: bigint;
        hash: string;
      };
      // No TPM proof yet, as for ContextRead.
      return { version: Number(receipt.version), hash: receipt.hash, write_proof: null };
    },
  };

  const snapshot = (name: string): SyscallDef<{ ns: string; description: string }, unknown> => ({
    name,
    group: 'context',
    summary:
      name === 'ContextSnapshot'
        ? 'Snapshot the latest version of every key of a namespace.'
        : 'Alias of ContextSnapshot (CAM-OS keeps both names).',
    unavailable,
    validate(req) {
      const f = new Fields(name, req);
      return { ns: checkNamespace(f), description: f.str('description', { maxBytes: 4096 }) };
    },
    async handle(r, ctx) {
      requireNamespace(env, ctx, name, r.ns);
      const inner = (await memory.call('snapshot', [r.ns, r.description, ctx.callerId], ctx)) as string;
      return { snapshot_id: env.snapshots.seal(r.ns, inner) };
    },
  });

  const restore: SyscallDef<{ id: string; ns: string; inner: string; force: boolean }, unknown> = {
    name: 'ContextRestore',
    group: 'context',
    summary: 'Restore a namespace to a snapshot (force overwrites newer data).',
    unavailable,
    validate(req) {
      const f = new Fields('ContextRestore', req);
      const id = f.str('snapshot_id', { required: true, maxBytes: 1024 });
      const opened = env.snapshots.open(id);
      if (!opened) {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          `ContextRestore: no snapshot with id '${clip(id)}'`,
          undefined,
          'NOT_FOUND',
        );
      }
      return { id, ...opened, ns: opened.namespace, force: f.bool('force') };
    },
    async handle(r, ctx) {
      requireNamespace(env, ctx, 'ContextRestore', r.ns);
      const res = (await memory.call('restore', [r.inner, r.force], ctx)) as {
        namespace: string;
        restoredItems: bigint;
      };
      return { namespace: res.namespace, restored_items: Number(res.restoredItems) };
    },
  };

  const versionList: SyscallDef<{ ns: string; key: string; limit: number; since: number }, unknown> = {
    name: 'ContextVersionList',
    group: 'context',
    summary: 'Page through the versions of a context key, oldest first.',
    unavailable,
    validate(req) {
      const f = new Fields('ContextVersionList', req);
      return {
        ns: checkNamespace(f),
        key: checkKey(f),
        limit: f.int('limit', 0, 2 ** 31 - 1),
        since: f.int('since_version', 0, Number.MAX_SAFE_INTEGER),
      };
    },
    async handle(r, ctx) {
      requireNamespace(env, ctx, 'ContextVersionList', r.ns);
      const page = (await memory.call(
        'version-list',
        [r.ns, r.key, Math.min(r.limit, 1000), r.since === 0 ? undefined : BigInt(r.since)],
        ctx,
        { query: true },
      )) as { versions: VersionInfo[]; hasMore: boolean; nextToken: string | undefined };
      return {
        versions: page.versions.map((v) => ({
          version: Number(v.version),
          timestamp: msToWireSeconds(v.timestampMs),
          author: v.author,
          description: v.description,
          hash: v.hash,
          size: Number(v.size),
          tags: mapToObject(v.tags),
        })),
        has_more: page.hasMore,
        next_token: page.nextToken ?? '',
      };
    },
  };

  return [
    read,
    write,
    snapshot('ContextSnapshot'),
    snapshot('SnapshotContext'),
    restore,
    versionList,
  ] as SyscallDef<never, unknown>[];
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
