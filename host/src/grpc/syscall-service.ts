/**
 * cam.syscall.SyscallService: the CAM-OS v1.1 wire-compatible unary API (proto/cam_syscall.proto).
 *
 * Errors: every failure is a gRPC status error (code from the kernel's catalogue, short sanitized
 * message, `cam-error-code` trailer). The responses' `error` / `status_code` fields are never filled —
 * the spec lets a compatible server fail the call instead, and clients see the same code either way;
 * a status error also works with every gRPC client's normal error handling and retries.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Principal } from '../auth/authenticator.js';
import { KernelError } from '../errors.js';
import { toServiceError } from '../server/grpc-errors.js';
import { type KernelContext, loadProto, type ServiceRegistration } from '../server/server.js';
import { SYSCALL_NAMES } from '../syscalls/index.js';
import { deadlineOf, Gateway, type GatewayOptions } from './gateway.js';
import { lenientDefinition, MalformedRequest } from './malformed.js';

export const SYSCALL_PROTO = 'cam_syscall.proto';
export const SYSCALL_SERVICE = 'cam.syscall.SyscallService';

export function syscallServiceDefinition(): grpc.ServiceDefinition {
  const pkg = loadProto(SYSCALL_PROTO) as unknown as {
    cam: { syscall: { SyscallService: grpc.ServiceClientConstructor } };
  };
  return lenientDefinition(pkg.cam.syscall.SyscallService.service, (m) => `cam.syscall.${m}Request`);
}

type UnaryCall = grpc.ServerUnaryCall<unknown, unknown>;

const CANCELLED_WHILE_WAITING = () =>
  new KernelError(
    'KERNEL_ERR_REQUEST_INVALID',
    'the call was cancelled by the client before it started',
    undefined,
    'CANCELLED',
  );

export function syscallService(opts: GatewayOptions = {}): ServiceRegistration {
  return {
    name: SYSCALL_SERVICE,
    register(server: grpc.Server, ctx: KernelContext) {
      const gw = Gateway.for(ctx, opts);
      const impl: grpc.UntypedServiceImplementation = {};
      for (const name of SYSCALL_NAMES) {
        impl[name] = (call: UnaryCall, callback: grpc.sendUnaryData<unknown>) => {
          if (call.request instanceof MalformedRequest) {
            callback(toServiceError(call.request.toError()));
            return;
          }
          const deadlineAt = deadlineOf(call);
          gw.turns.run(() => {
            const fail = (e: unknown) => callback(toServiceError(e));
            // A call the client gave up on while it waited for its turn is not started (its answer could not
            // be delivered); the status ends its span as cancelled.
            if (call.cancelled) {
              fail(CANCELLED_WHILE_WAITING());
              return;
            }
            const run = (principal: Principal) =>
              gw
                .invoke(principal, name, call.request, call.getPeer(), deadlineAt)
                .then((res) => callback(null, res), fail);
            // Authentication is synchronous unless a bearer token has to be verified: no promise hop for it.
            let principal: Principal | Promise<Principal>;
            try {
              principal = gw.authenticate(call, name);
            } catch (e) {
              fail(e);
              return;
            }
            if (principal instanceof Promise) principal.then(run, fail);
            else run(principal);
          });
        };
      }
      server.addService(syscallServiceDefinition(), impl);
    },
  };
}
