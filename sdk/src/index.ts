export { KERNEL_VERSION } from '@cam-os/host/version.js';
export { AdminClient, resolveAddress } from './admin-client.js';
export * from './client/index.js';
export { type DriverProject, readDriverProject } from './driver/project.js';
export {
  type DriverMode,
  driverModeFromEnv,
  driverModes,
  type StartDriverOptions,
  startDriver,
  TestDriver,
} from './driver/testing.js';
