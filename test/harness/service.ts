/**
 * Small helpers shared by the harnesses that start real services (redis-server, swtpm) for tests:
 * free ports, private state dirs, waiting for readiness, stopping by pid, and the rule that a missing service
 * skips a test locally but fails it in CI.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export const inCI = process.env.CI === 'true';

/**
 * The absolute path of an executable on PATH, or undefined. Local runs skip tests whose service binary is
 * missing; in CI (CI=true) a missing binary throws instead, so a skipped suite never passes silently.
 */
export function requireBinary(name: string, purpose: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  serviceUnavailable(name, `'${name}' is not on PATH (needed for ${purpose})`);
  return undefined;
}

/** Reports a service that cannot be used: throws in CI, otherwise warns once and lets the caller skip. */
export function serviceUnavailable(service: string, reason: string): null {
  if (inCI) throw new Error(`${service} is required in CI but unavailable: ${reason}`);
  if (!warned.has(service)) {
    warned.add(service);
    console.warn(`[harness] skipping tests that need ${service}: ${reason}`);
  }
  return null;
}
const warned = new Set<string>();

/**
 * A TCP port that was free on 127.0.0.1 a moment ago (the OS picked it). `alsoFree` offsets must be free
 * too, e.g. 10000 for a Redis Cluster bus port. A service may still lose the race for it: callers retry.
 */
export async function freePort(opts: { alsoFree?: number[] } = {}): Promise<number> {
  const offsets = opts.alsoFree ?? [];
  const maxOffset = Math.max(0, ...offsets);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (port === undefined || port + maxOffset > 65535) continue;
    let ok = true;
    for (const off of offsets) {
      if ((await listenOnce(port + off)) === undefined) {
        ok = false;
        break;
      }
    }
    if (ok) return port;
  }
  throw new Error(`no free TCP port found on 127.0.0.1 (with offsets ${offsets.join(', ') || 'none'})`);
}

function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/** A new private directory under the OS temp dir. */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix.replace(/[^\w.-]/g, '_')}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * Polls `probe` until it returns a value other than undefined/false, or throws after `timeoutMs` with the
 * last probe error and whatever `explain` adds (e.g. the tail of the service's log).
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; explain?: () => Promise<string> | string } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const extra = opts.explain ? await opts.explain() : '';
  const why = lastError ? ` (last error: ${(lastError as Error).message ?? String(lastError)})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${extra ? `\n${extra}` : ''}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Whether a process still runs. A zombie counts as gone: a daemon reparented to a PID 1 that does not reap
 * stays a zombie forever, but it holds no port and no file lock.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 follows the parenthesised command name, which may itself contain spaces or parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function readPidFile(pidFile: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends `signal` to one process and waits until it is gone; escalates to SIGKILL after `timeoutMs`.
 * Never signals anything but the given pid.
 */
export async function stopPid(
  pid: number,
  opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<void> {
  const signal = opts.signal ?? 'SIGTERM';
  if (!isProcessAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
    throw e;
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() >= deadline) {
      if (signal === 'SIGKILL') throw new Error(`process ${pid} survived SIGKILL for ${timeoutMs} ms`);
      process.kill(pid, 'SIGKILL');
      await waitUntil(`process ${pid} to exit after SIGKILL`, () => !isProcessAlive(pid), {
        timeoutMs: 5_000,
      });
      return;
    }
    await sleep(10);
  }
}

/** Stops the process named by a pid file (a no-op when the file is missing or the process already gone). */
export async function stopByPidFile(
  pidFile: string,
  opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<void> {
  const pid = await readPidFile(pidFile);
  if (pid !== undefined) await stopPid(pid, opts);
}

/** The last `lines` lines of a log file, for error messages. */
export async function tailFile(path: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${path})`;
  }
}
