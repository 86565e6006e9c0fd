/**
 * `cam-os up`: everything a kernel on its embedded defaults needs, wired in one place — the server, the
 * gRPC services, the host interfaces and the system components. Each part is added here by the issue that
 * delivers it, so there is exactly one answer to "what does a default kernel run?".
 */
import { KERNEL_VERSION } from '../version.js';
import type { KernelConfig } from './config.js';
import { type RunningKernel, startKernel } from './server.js';

export interface BootedKernel extends RunningKernel {
  version: string;
}

export async function boot(config: KernelConfig): Promise<BootedKernel> {
  const running = await startKernel(config);
  return { ...running, version: KERNEL_VERSION };
}
