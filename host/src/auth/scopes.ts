/**
 * Scopes: what an authenticated agent may do. Two kinds, both plain strings so they fit in a JWT claim
 * and in a grants file:
 *
 *   group:<g>      may call syscalls of group g (tasks, policy, context, security, observability, admin);
 *                  `group:*` every group
 *   ns:<name>      may read and write context namespace `name`; `ns:<prefix>*` every namespace starting
 *                  with prefix; `ns:*` every namespace
 *
 * An agent without an explicit grant gets `defaultScopes(id)`: every group except admin, and its own
 * namespaces (`<id>` and `<id>.*`). Reaching another agent's namespace always needs an `ns:` grant.
 */
import type { SyscallGroup } from '../dispatcher/dispatcher.js';
import { AuthConfigError } from './errors.js';

export const SYSCALL_GROUPS: readonly SyscallGroup[] = [
  'tasks',
  'policy',
  'context',
  'security',
  'observability',
  'admin',
];

const NAMESPACE_RE = /^[A-Za-z0-9._-]{1,128}$/;
const SCOPE_RE = /^(group:(\*|[a-z]+)|ns:([A-Za-z0-9._-]{0,128}\*?))$/;

/** Validate a list of scopes (from a token or the grants file); throws naming the first bad one. */
export function parseScopes(value: unknown, where: string): string[] {
  if (!Array.isArray(value)) throw new AuthConfigError(`${where}: scopes must be a list of strings`);
  const out: string[] = [];
  for (const s of value) {
    if (typeof s !== 'string' || !SCOPE_RE.test(s)) {
      throw new AuthConfigError(
        `${where}: '${String(s)}' is not a scope (expected group:<${SYSCALL_GROUPS.join('|')}|*>, ns:<namespace>, ns:<prefix>* or ns:*)`,
      );
    }
    if (s.startsWith('group:') && s !== 'group:*' && !SYSCALL_GROUPS.includes(s.slice(6) as SyscallGroup)) {
      throw new AuthConfigError(`${where}: unknown syscall group in '${s}'`);
    }
    if (s === 'ns:') throw new AuthConfigError(`${where}: 'ns:' names no namespace`);
    out.push(s);
  }
  return out;
}

export function defaultScopes(agentId: string): string[] {
  const scopes = SYSCALL_GROUPS.filter((g) => g !== 'admin').map((g) => `group:${g}`);
  if (NAMESPACE_RE.test(agentId)) scopes.push(`ns:${agentId}`, `ns:${agentId}.*`);
  return scopes;
}

/** undefined scopes = unrestricted (development mode, in-process callers). */
export function allowsGroup(scopes: readonly string[] | undefined, group: SyscallGroup): boolean {
  if (scopes === undefined) return true;
  return scopes.includes('group:*') || scopes.includes(`group:${group}`);
}

export function allowsNamespace(scopes: readonly string[] | undefined, namespace: string): boolean {
  if (scopes === undefined) return true;
  for (const s of scopes) {
    if (!s.startsWith('ns:')) continue;
    const pattern = s.slice(3);
    if (pattern.endsWith('*') ? namespace.startsWith(pattern.slice(0, -1)) : namespace === pattern)
      return true;
  }
  return false;
}
