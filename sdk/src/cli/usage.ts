/**
 * The argument helpers every command uses, in a module with no dependencies: `cam-os driver …` loads only
 * these and its own commands, so an author's warm `driver build` does not pay for gRPC and the kernel.
 */
export interface Args {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  json: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function str(args: Args, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}
