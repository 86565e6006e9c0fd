/**
 * The kernel's agent-facing gRPC services, as ServiceRegistrations for startKernel:
 *
 *   const services = gatewayServices();            // auth from <data-dir>/auth/auth.json
 *   const running = await startKernel(config, services);
 *
 * SyscallService (CAM-OS compatible), SessionService (streaming), grpc.health.v1 and reflection share
 * one Gateway per kernel (syscall table, authenticator, decision log, telemetry).
 */
import type { ServiceRegistration } from '../server/server.js';
import type { GatewayOptions } from './gateway.js';
import { type HealthHandle, healthService } from './health.js';
import { reflectionService } from './reflection.js';
import { sessionService } from './session-service.js';
import { syscallService } from './syscall-service.js';

export { requireAdmin } from './admin-guard.js';
export { deadlineOf, Gateway, type GatewayOptions } from './gateway.js';
export { HEALTH_SERVICE, HEALTH_SERVICES, type HealthHandle, healthService } from './health.js';
export { kernelPackageDefinition, REFLECTION_SERVICE, reflectionService } from './reflection.js';
export { SESSION_PROTO, SESSION_SERVICE, sessionField, sessionService } from './session-service.js';
export { SYSCALL_PROTO, SYSCALL_SERVICE, syscallService } from './syscall-service.js';

export function gatewayServices(opts: GatewayOptions = {}): ServiceRegistration[] & { health: HealthHandle } {
  const health = healthService();
  const list = [syscallService(opts), sessionService(opts), health, reflectionService()];
  return Object.assign(list, { health });
}
