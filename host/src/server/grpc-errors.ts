/**
 * KernelError -> gRPC status error. The only path by which a failure leaves the kernel over gRPC, so
 * every method of every service answers with a catalogue status and a sanitized one-line message.
 */
import { Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { sanitize } from '../errors.js';

export function toServiceError(e: unknown): Partial<StatusObject> & ServiceError {
  const err = sanitize(e);
  const metadata = new Metadata();
  metadata.set('cam-error-code', err.code);
  const se = Object.assign(new Error(err.message), {
    code: err.grpcCode,
    details: err.message,
    metadata,
  });
  return se as Partial<StatusObject> & ServiceError;
}

/** Wrap an async unary handler so any throw becomes a proper status. */
export function unary<Req, Res>(
  fn: (
    req: Req,
    call: { metadata: Metadata; getPeer(): string; getDeadline(): Date | number },
  ) => Promise<Res>,
) {
  return (
    call: { request: Req; metadata: Metadata; getPeer(): string; getDeadline(): Date | number },
    callback: (err: (Partial<StatusObject> & ServiceError) | null, res?: Res) => void,
  ): void => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (e: unknown) => callback(toServiceError(e)),
    );
  };
}
