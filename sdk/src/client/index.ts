/** Typed clients for the kernel's agent API: the CAM-OS SyscallService and streaming sessions. */
export {
  CallError,
  type ConnectOptions,
  callMetadata,
  channelCredentials,
  channelOptions,
} from './connection.js';
export { SessionClient, type SessionResult, sessionField, type Welcome } from './session-client.js';
export { type CallOpts, SyscallClient } from './syscall-client.js';
export * from './types.js';
