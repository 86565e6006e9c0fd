/**
 * grpc.health.v1.Health (the `grpc-health-check` package), so load balancers, Kubernetes probes and
 * grpcurl can ask whether the kernel serves. It reports transport-level serving status per service;
 * the CAM-OS HealthCheck syscall carries the detailed view (components, missing services).
 */
import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { KernelContext, ServiceRegistration } from '../server/server.js';
import { SESSION_SERVICE } from './session-service.js';
import { SYSCALL_SERVICE } from './syscall-service.js';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';
/** '' is the whole server, by the health protocol's convention. */
export const HEALTH_SERVICES = ['', SYSCALL_SERVICE, SESSION_SERVICE, 'cam.admin.v1.AdminService'];

export interface HealthHandle {
  /** Mark every service SERVING or NOT_SERVING (e.g. NOT_SERVING at the start of a graceful stop). */
  setAll(status: ServingStatus): void;
}

export function healthService(): ServiceRegistration & HealthHandle {
  const impl = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, 'SERVING'])));
  return {
    name: HEALTH_SERVICE,
    register(server: grpc.Server, _ctx: KernelContext) {
      impl.addToServer(server as unknown as Parameters<HealthImplementation['addToServer']>[0]);
    },
    setAll(status: ServingStatus) {
      for (const s of HEALTH_SERVICES) impl.setStatus(s, status);
    },
  };
}
