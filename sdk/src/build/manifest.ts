/**
 * The unsigned `cam-os/manifest@1` a build emits beside its component (schema: host/src/trust/manifest.ts).
 * The publisher's key id comes from the caller; signatures are added later by the signing step, which signs
 * the canonical body this file writes. The manifest is validated with the host's own validator before it is
 * written, so a build never leaves a manifest the kernel would refuse.
 */
import {
  formatIssues,
  MANIFEST_SCHEMA,
  type ManifestBody,
  type ManifestDependency,
  validateManifest,
} from '@cam-os/host/trust/manifest.js';
import { BuildError } from './bundle.js';

export interface ManifestInput {
  /** kebab-case component name. */
  name: string;
  /** SemVer of this build. */
  version: string;
  /** Key id of the publisher key that will sign the manifest (32 lowercase hex digits). */
  publisher: string;
  /** Linear-memory cap in 64 KiB pages. */
  memoryMaxPages?: number;
  deadlineMs?: number;
  concurrency?: number;
  dependencies?: ManifestDependency[];
}

export interface BuiltFacts {
  world: string;
  witVersion: string;
  digest: string;
  size: number;
  imports: string[];
}

export function manifestFor(input: ManifestInput, facts: BuiltFacts): ManifestBody {
  const capabilities: ManifestBody['capabilities'] = {
    imports: facts.imports,
    ...(input.memoryMaxPages !== undefined && { memoryMaxPages: input.memoryMaxPages }),
    ...(input.deadlineMs !== undefined && { deadlineMs: input.deadlineMs }),
    ...(input.concurrency !== undefined && { concurrency: input.concurrency }),
  };
  const body: ManifestBody = {
    schema: MANIFEST_SCHEMA,
    name: input.name,
    version: input.version,
    publisher: input.publisher,
    component: { digest: facts.digest, size: facts.size },
    world: `cam:kernel/${facts.world}`,
    abiVersion: facts.witVersion,
    capabilities,
    ...(input.dependencies !== undefined && { dependencies: input.dependencies }),
  };
  const checked = validateManifest(body);
  if (!checked.ok)
    throw new BuildError(
      `the manifest for '${input.name}' would be invalid: ${formatIssues(checked.issues)}`,
    );
  return body;
}
