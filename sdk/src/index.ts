export { KERNEL_VERSION } from '@cam-os/host/version.js';
