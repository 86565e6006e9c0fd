/**
 * The component build pipeline of the SDK: TypeScript entry -> bundled ES module -> componentize-js component
 * (or, for AssemblyScript drivers, asc -> core module -> component) stamped with its WIT version -> `.wasm`
 * (+ unsigned manifest). See build.ts. The test harness (a real
 * kernel for built components) is a separate entry point, `./harness.js`, so that building never loads the
 * kernel or a storage engine.
 */
export {
  type BuildOptions,
  type BuildResult,
  type BuildStage,
  buildComponent,
  TOOLCHAINS,
  type Toolchain,
} from './build.js';
export { BuildError, type Diagnostic, formatDiagnostics } from './bundle.js';
export { buildDev, type DevBuildOptions, type DevBuildResult } from './dev.js';
export { type BuiltFacts, type ManifestInput, manifestFor } from './manifest.js';
