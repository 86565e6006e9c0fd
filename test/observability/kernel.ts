/**
 * A kernel booted the way `cam-os up` boots it (boot(): gRPC, HTTP listener, host interfaces, signed
 * system components), its structured log lines captured, and a raw gRPC SyscallService client that can
 * send `traceparent` metadata.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type BootedKernel, boot } from '../../host/src/server/boot.js';
import { loadConfig } from '../../host/src/server/config.js';
import { loadProto } from '../../host/src/server/server.js';

type UnaryFn = (
  req: unknown,
  md: grpc.Metadata,
  cb: (e: grpc.ServiceError | null, r: unknown) => void,
) => void;

export interface ObservedKernel {
  booted: BootedKernel;
  /** http://127.0.0.1:<port>/ */
  url: string;
  logs: string[];
  dataDir: string;
  call(method: string, req: Record<string, unknown>, traceparent?: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function bootObserved(): Promise<ObservedKernel> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cam-obs-test-'));
  const config = loadConfig({ dataDir, listen: '127.0.0.1:0', tpm: 'none' }, {});
  const logs: string[] = [];
  const booted = await boot(config, { log: (l) => logs.push(l) });
  const missing = ['memory', 'scheduler', 'arbitration'].filter((n) => !booted.kernel.has(n));
  if (missing.length > 0 || !booted.dashboard) {
    await booted.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(
      `boot did not load ${missing.join(', ') || 'the dashboard'}: ${booted.warnings.join('; ')}`,
    );
  }
  const pkg = loadProto('cam_syscall.proto') as unknown as {
    cam: { syscall: { SyscallService: grpc.ServiceClientConstructor } };
  };
  const client = new pkg.cam.syscall.SyscallService(booted.address, grpc.credentials.createInsecure());
  return {
    booted,
    url: booted.dashboard.url,
    logs,
    dataDir,
    call(method, req, traceparent) {
      const md = new grpc.Metadata();
      if (traceparent) md.set('traceparent', traceparent);
      return new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, UnaryFn>)[method];
        if (!fn) throw new Error(`SyscallService has no method ${method}`);
        fn.call(client, { caller_id: 'obs-test', ...req }, md, (e, r) =>
          e ? reject(e) : resolve(r as Record<string, unknown>),
        );
      });
    },
    async stop() {
      client.close();
      await booted.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The value of one Prometheus sample line (0 when absent). */
export function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      got[p[1]!] = p[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}
