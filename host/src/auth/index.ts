/** Authentication and authorisation of gRPC callers: config, identities, scopes, tokens, limits, certs. */
export * from './authenticator.js';
export * from './certs.js';
export * from './config.js';
export * from './decisions.js';
export * from './errors.js';
export * from './rate-limit.js';
export * from './scopes.js';
export * from './tokens.js';
