/**
 * How a client reaches a kernel: address, optional TLS (server CA, client certificate for mTLS), optional
 * bearer token, and a default caller_id. Tokens travel as per-call metadata so they also work on a
 * plaintext loopback channel (grpc-js refuses call credentials on insecure channels).
 */
import * as grpc from '@grpc/grpc-js';

export interface ConnectOptions {
  /** host:port */
  address: string;
  tls?: {
    /** PEM of the CA that signed the kernel's server certificate. */
    ca: Buffer;
    /** Client certificate and key (PEM) for mTLS. */
    cert?: Buffer;
    key?: Buffer;
    /** Name to check the server certificate against, when the address is not in it. */
    serverName?: string;
  };
  /** JWT from `token issue`; a function is asked on every call (rotation). */
  token?: string | (() => string);
  /** Filled into requests that leave caller_id empty. */
  callerId?: string;
  /** Largest message to send and receive; default 8 MiB (the kernel's default limit). */
  maxMessageBytes?: number;
}

export class CallError extends Error {
  override name = 'CallError';
  constructor(
    readonly code: number,
    readonly details: string,
    /** The kernel's catalogue code (KERNEL_ERR_...), when the kernel sent one. */
    readonly errorCode: string,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
  }

  static from(e: grpc.ServiceError): CallError {
    const ec = e.metadata?.get('cam-error-code')[0];
    return new CallError(e.code, e.details, typeof ec === 'string' ? ec : '');
  }
}

export function channelCredentials(opts: ConnectOptions): grpc.ChannelCredentials {
  if (!opts.tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(opts.tls.ca, opts.tls.key ?? null, opts.tls.cert ?? null);
}

export function channelOptions(opts: ConnectOptions): grpc.ChannelOptions {
  const max = opts.maxMessageBytes ?? 8 * 1024 * 1024;
  const o: grpc.ChannelOptions = {
    'grpc.max_send_message_length': max,
    'grpc.max_receive_message_length': max,
  };
  if (opts.tls?.serverName) o['grpc.ssl_target_name_override'] = opts.tls.serverName;
  return o;
}

export function callMetadata(opts: ConnectOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  const token = typeof opts.token === 'function' ? opts.token() : opts.token;
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}
