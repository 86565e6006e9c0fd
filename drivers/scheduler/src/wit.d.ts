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

// StarlingMonkey (the JS engine inside the component) provides the WHATWG encoding API.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
