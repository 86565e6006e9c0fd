/** What every CLI command shares: argument shapes, output, and the admin connection. */
import { AdminClient, resolveAddress } from '../admin-client.js';
import { type Args, str } from './usage.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
}

export { type Args, str, UsageError } from './usage.js';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  details?: string;
  options?: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; help: string }>;
  /** Exit code; -1 means "keep running" (the kernel). */
  run(args: Args, io: Io): Promise<number>;
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
