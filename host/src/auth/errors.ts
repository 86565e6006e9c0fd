/**
 * The errors the auth layer raises. They are KernelErrors so they travel the one gRPC error path
 * (sanitize -> toServiceError) with the right status.
 *
 */
import { KernelError } from '../errors.js';

export function unauthenticated(message: string): KernelError {
  return new KernelError('KERNEL_ERR_AUTH_UNAUTHENTICATED', message, { auth: 'unauthenticated' });
}

export function permissionDenied(message: string): KernelError {
  return new KernelError('KERNEL_ERR_AUTH_DENIED', message, { auth: 'denied' });
}

export function rateLimited(message: string, retryAfterMs: number): KernelError {
  return new KernelError('KERNEL_ERR_RATE_LIMITED', message, { auth: 'rate-limited', retryAfterMs });
}

export class AuthConfigError extends Error {
  override name = 'AuthConfigError';
}
