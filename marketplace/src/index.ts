/** @cam-os/marketplace: signed driver packages, registry index, install / upgrade / rollback. */
export * from './errors.js';
export * from './lockfile.js';
export * from './marketplace.js';
export * from './open.js';
export * from './package.js';
export * from './package-format.js';
export * from './registry.js';
export * from './registry-index.js';
export * from './semver-range.js';
export * from './server.js';
export * from './sigstore.js';

export const MARKETPLACE_PACKAGE_FORMAT = 'cam-os/package@1';
