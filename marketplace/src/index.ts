/** @cam-os/marketplace: signed driver packages, registry index, install / upgrade / rollback. */
export const MARKETPLACE_PACKAGE_FORMAT = 'cam-os/package@1';
