// A private swtpm (the TPM 2.0 reference implementation behind a socket) per test run: own free
// ports, own state dir, stopped by the pid in its pid file.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Swtpm {
  /** TCTI string for tpm2-tss (`Tss2_TctiLdr_Initialize`) and tpm2-tools (`TPM2TOOLS_TCTI`). */
  tcti: string;
  port: number;
  ctrlPort: number;
  stateDir: string;
  pid: number;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

function swtpmInstalled(): boolean {
  const r = spawnSync('swtpm', ['--version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, HOST, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr !== null ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

// tpm2-tss's swtpm TCTI has no ctrl-port option: it always talks to the control channel on port + 1.
async function freePortPair(): Promise<number | undefined> {
  const port = await listenOn(0);
  if (port === undefined || port >= 65535) return undefined;
  return (await listenOn(port + 1)) === undefined ? undefined : port;
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: READY_TIMEOUT_MS }, (err, _stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({
        code,
        stderr: `${stderr}${err !== null && typeof err.code !== 'number' ? err.message : ''}`,
      });
    });
  });
}

// TPM2_GetRandom(8) as raw bytes: the swtpm data port speaks plain TPM 2.0 commands, so a real
// response with TPM_RC_SUCCESS proves the TPM is up without needing the addon under test.
const GET_RANDOM = Buffer.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]);

function tpmAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: HOST, port });
    let got = Buffer.alloc(0);
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write(GET_RANDOM));
    sock.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 10) done(got.readUInt32BE(6) === 0);
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPid(pidFile: string): Promise<number | undefined> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (existsSync(pidFile)) {
      const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
      if (Number.isInteger(pid) && pid > 0) return pid;
    }
    await sleep(20);
  }
  return undefined;
}

async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (alive(pid) && Date.now() < deadline) await sleep(20);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * Starts a private swtpm and resolves once it answers a TPM command. Resolves null (with a message)
 * when swtpm is not installed, except under CI=true, where a TPM test must not silently skip.
 */
export async function startSwtpm(): Promise<Swtpm | null> {
  if (!swtpmInstalled()) {
    const msg = 'swtpm is not installed (Debian: apt-get install -y swtpm swtpm-tools)';
    if (process.env.CI === 'true') throw new Error(`${msg}; CI=true requires the TPM tests to run`);
    console.warn(`[swtpm harness] ${msg}: skipping TPM tests`);
    return null;
  }

  let lastError = '';
  // Another process can grab a port between our probe and swtpm's bind; retry with fresh ports.
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePortPair();
    if (port === undefined) continue;
    const ctrlPort = port + 1;
    const stateDir = await mkdtemp(join(tmpdir(), 'camos-swtpm-'));
    const pidFile = join(stateDir, 'swtpm.pid');
    const started = await run('swtpm', [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=${HOST}`,
      '--ctrl',
      `type=tcp,port=${ctrlPort},bindaddr=${HOST}`,
      '--flags',
      'not-need-init,startup-clear',
      '--daemon',
      '--pid',
      `file=${pidFile}`,
    ]);
    const pid = started.code === 0 ? await readPid(pidFile) : undefined;
    if (pid === undefined) {
      lastError = started.code === 0 ? `no pid file at ${pidFile}` : started.stderr.trim();
      await rm(stateDir, { recursive: true, force: true });
      continue;
    }

    // Once only: a second kill by the same pid could hit an unrelated process that reused it.
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= stopPid(pid).then(() => rm(stateDir, { recursive: true, force: true }));
      return stopping;
    };
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let ready = false;
    while (!ready && Date.now() < deadline && alive(pid)) {
      ready = await tpmAnswers(port);
      if (!ready) await sleep(25);
    }
    if (!ready) {
      await stop();
      lastError = `swtpm (pid ${pid}) on port ${port} did not answer TPM2_GetRandom within ${READY_TIMEOUT_MS} ms`;
      continue;
    }
    return { tcti: `swtpm:host=${HOST},port=${port}`, port, ctrlPort, stateDir, pid, stop };
  }
  throw new Error(`could not start swtpm after 10 attempts: ${lastError}`);
}
