/**
 * Authorisation for the AdminService (owned by server.ts): in authenticated mode an admin call must come
 * from a principal holding `group:admin`; in development mode (loopback only) it passes. Meant to be
 * called first in each admin handler:
 *
 *   Status: unary(async (_req, call) => { await requireAdmin(ctx, call, 'Admin.Status'); ... })
 */
import type { CallTransport, Principal } from '../auth/authenticator.js';
import { permissionDenied } from '../auth/errors.js';
import { allowsGroup } from '../auth/scopes.js';
import type { KernelContext } from '../server/server.js';
import { Gateway } from './gateway.js';

export async function requireAdmin(
  ctx: KernelContext,
  call: CallTransport,
  action: string,
): Promise<Principal> {
  const gw = Gateway.for(ctx);
  const p = await gw.authenticate(call, action);
  if (p.method !== 'development' && !allowsGroup(p.scopes, 'admin')) {
    const reason = `${action}: '${p.id}' has no scope for the admin service (needs group:admin)`;
    gw.decisions.record({ kind: 'permission-denied', subject: p.id, peer: call.getPeer(), action, reason });
    throw permissionDenied(reason);
  }
  return p;
}
