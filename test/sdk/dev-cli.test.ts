/**
 * `cam-os driver dev` as a process, the way an author runs it: it starts a development kernel with the
 * driver loaded, a save is swapped in (state kept), a broken save is reported while the last good version
 * keeps serving, and `cam-os status` sees the driver in that kernel.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli } from './cli.js';

let dir: string;
let dev: ChildProcess | undefined;
const lines: Array<Record<string, unknown>> = [];
let waiters: Array<() => void> = [];

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

function next(kind: string): Promise<Record<string, unknown>> {
  const seen = lines.length;
  return new Promise((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`no '${kind}' event from driver dev; got ${JSON.stringify(lines)}`)),
      60_000,
    );
    const check = () => {
      const hit = lines
        .slice(seen)
        .find((l) => l.kind === kind || (kind === 'swapped' && l.kind === 'build-error'));
      if (!hit) return;
      clearTimeout(timer);
      waiters = waiters.filter((w) => w !== check);
      done(hit);
    };
    waiters.push(check);
    check();
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-sdk-devcli-'));
  expect((await cli(['driver', 'new', 'live'], { cwd: dir })).code).toBe(0);
});
afterAll(async () => {
  if (dev && dev.exitCode === null) {
    const exited = new Promise((r) => dev!.once('exit', r));
    dev.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('cam-os driver dev', () => {
  it('runs the driver in a dev kernel and swaps each save in, keeping the last good version', {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    dev = spawn(process.execPath, [CLI, 'driver', 'dev', 'live', '--listen', address, '--json'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    dev.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {}
        for (const w of [...waiters]) w();
      }
    });
    const ready = await next('ready');
    expect(ready.address).toBe(address);

    const file = join(dir, 'live', 'src', 'index.ts');
    const original = await readFile(file, 'utf8');
    await writeFile(
      file,
      original.replace("case 'echo':", "case 'ping':\n        return utf8('pong');\n      case 'echo':"),
    );
    const swapped = await next('swapped');
    expect(swapped).toMatchObject({ kind: 'swapped', trigger: expect.stringContaining('index.ts') });

    await writeFile(file, `${original}\nexport const broken = ;\n`);
    const broken = await next('swapped');
    expect(broken.kind).toBe('build-error');
    expect(String(broken.message)).toMatch(/live\/src\/index\.ts:\d+:\d+: Unexpected ";"/);

    const status = await cli(['status', '--address', address, '--json'], { cwd: dir });
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as {
      components: Array<{ name: string; health: string; digest: string }>;
    };
    const live = s.components.find((c) => c.name === 'live');
    expect(live).toMatchObject({ health: 'healthy' });
    // Still the version from the good save, not the broken one.
    expect(live!.digest).toBe(swapped.digest);
    // The text form names the kernel's tuning (the defaults here).
    const text = await cli(['status', '--address', address], { cwd: dir });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /tuning: 4 unary calls started per event-loop turn {2}trace sample ratio 1\n/,
    );
  });
});
