// The WIT imports of this component, as componentize-js presents them (only what the driver uses).
declare module 'cam:kernel/clock@0.1.0' {
  export function nowMs(): bigint;
}
declare module 'cam:kernel/log@0.1.0' {
  export function log(
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error',
    message: string,
    fields: Array<[string, string]>,
  ): void;
}
declare module 'cam:kernel/kv@0.1.0' {
  export type Op = { tag: 'put'; val: { key: string; value: Uint8Array } } | { tag: 'delete'; val: string };
  export function get(partition: string, key: string): Uint8Array | undefined;
  export function batch(partition: string, ops: Op[]): void;
  export function scan(
    partition: string,
    prefix: string,
    after: string | undefined,
    limit: number,
    reverse: boolean,
  ): Array<{ key: string; value: Uint8Array }>;
}
declare module 'cam:kernel/digest@0.1.0' {
  export function sha256(data: Uint8Array): Uint8Array;
}

// StarlingMonkey (the JS engine inside the component) provides the WHATWG encoding API.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
