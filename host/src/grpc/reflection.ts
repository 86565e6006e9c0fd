/**
 * gRPC server reflection (`@grpc/reflection`, v1 and v1alpha), so grpcurl and other generic clients can
 * list and call the kernel's services without the .proto files.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { type KernelContext, PROTO_ROOT, type ServiceRegistration } from '../server/server.js';
import { SESSION_PROTO } from './session-service.js';
import { SYSCALL_PROTO } from './syscall-service.js';

export const REFLECTION_SERVICE = 'grpc.reflection.v1.ServerReflection';
const ADMIN_PROTO = 'cam/admin/v1/admin.proto';

/** Every proto the kernel serves, as one package definition (what reflection describes). */
export function kernelPackageDefinition(): protoLoader.PackageDefinition {
  const healthRoot = dirname(dirname(dirname(healthProtoPath)));
  const files = [SYSCALL_PROTO, SESSION_PROTO, ADMIN_PROTO]
    .filter((f) => existsSync(join(PROTO_ROOT, f)))
    .map((f) => join(PROTO_ROOT, f));
  return protoLoader.loadSync([...files, healthProtoPath], {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_ROOT, healthRoot],
  });
}

export function reflectionService(): ServiceRegistration {
  return {
    name: REFLECTION_SERVICE,
    register(server: grpc.Server, _ctx: KernelContext) {
      new ReflectionService(kernelPackageDefinition()).addToServer(server);
    },
  };
}
