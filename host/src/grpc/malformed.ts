/**
 * Requests that are not valid protobuf for their message type. grpc-js answers a decoding failure with
 * INTERNAL ("Error deserializing request") — the wrong code for the client's mistake — and, on a
 * bidirectional stream that has already sent messages, may never send the status at all. So the
 * kernel's services decode leniently: a failure becomes a MalformedRequest value, which the handlers
 * answer with INVALID_ARGUMENT naming the message type and the decoder's complaint.
 */
import type * as grpc from '@grpc/grpc-js';
import { KernelError } from '../errors.js';

export class MalformedRequest {
  constructor(
    readonly type: string,
    readonly reason: string,
  ) {}

  toError(): KernelError {
    return new KernelError(
      'KERNEL_ERR_REQUEST_INVALID',
      `the request is not a valid ${this.type} message (${this.reason.slice(0, 120)})`,
    );
  }
}

/** The same service definition with request decoding that never throws. */
export function lenientDefinition(
  def: grpc.ServiceDefinition,
  typeOf: (method: string) => string,
): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return m.requestDeserialize(bytes);
        } catch (e) {
          return new MalformedRequest(typeOf(name), e instanceof Error ? e.message : 'undecodable');
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
