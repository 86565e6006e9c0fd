/** What every CLI command shares: argument shapes, output, and the admin connection. */
import { AdminClient, resolveAddress } from '../admin-client.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
}

export interface Args {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  json: boolean;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  details?: string;
  options?: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; help: string }>;
  /** Exit code; -1 means "keep running" (the kernel). */
  run(args: Args, io: Io): Promise<number>;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function str(args: Args, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}

function admin(args: Args): AdminClient {
  return new AdminClient(resolveAddress({ address: str(args, 'address'), dataDir: str(args, 'data-dir') }));
}

export async function withAdmin<T>(args: Args, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const c = admin(args);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
